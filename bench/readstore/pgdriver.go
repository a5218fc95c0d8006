package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens PostgreSQL behind database/sql with the projections'
// SQLite statements translated on the way in, so that the very Apply
// functions of gateway/projection and gateway/offices fold into it: the
// workload compared is the gateway's, not a rewrite of it.
func openPostgres(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg), sqls: &translations{}}), nil
}

// translations caches translated statements: the projections send a few
// dozen distinct strings, millions of times.
type translations struct{ m sync.Map }

var (
	integerWord = regexp.MustCompile(`\bINTEGER\b`)
	strictTable = regexp.MustCompile(`\)\s*STRICT\s*$`)
)

// tableInfoQuery is the SQLite catalogue query of the inbox (does
// office_messages.seq still have its old NOT NULL? is there an
// office_eeb.due?), in PostgreSQL's words, for the column the query names.
func tableInfoQuery(column string) string {
	return `SELECT CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END FROM information_schema.columns
	WHERE table_schema = current_schema() AND table_name = $1 AND column_name = '` + column + `'`
}

// columnCountQuery is the other catalogue question the read models ask
// (does office_eeb have overdue_at yet?): how many columns of that name a
// table has, with the table named in the statement.
func columnCountQuery(table, column string) string {
	return `SELECT COUNT(*) FROM information_schema.columns
	WHERE table_schema = current_schema() AND table_name = '` + table + `' AND column_name = '` + column + `'`
}

var (
	tableInfoColumn = regexp.MustCompile(`name = '(\w+)'`)
	tableInfoNamed  = regexp.MustCompile(`pragma_table_info\('(\w+)'\)`)
)

func (t *translations) get(q string) string {
	if v, ok := t.m.Load(q); ok {
		return v.(string)
	}
	out := translate(q)
	t.m.Store(q, out)
	return out
}

// translate turns a SQLite statement of the read models into PostgreSQL:
// placeholders ?, ?N become $N (SQLite's numbering: a bare ? is one more
// than the largest so far), STRICT goes, INTEGER becomes BIGINT (SQLite's
// integers are 64 bits).
func translate(q string) string {
	if strings.Contains(q, "pragma_table_info") {
		m := tableInfoColumn.FindStringSubmatch(q)
		if t := tableInfoNamed.FindStringSubmatch(q); t != nil && m != nil && strings.Contains(q, "COUNT(*)") {
			return columnCountQuery(t[1], m[1])
		}
		if m != nil {
			return tableInfoQuery(m[1])
		}
	}
	q = strictTable.ReplaceAllString(q, ")")
	q = integerWord.ReplaceAllString(q, "BIGINT")
	var b strings.Builder
	highest, inString := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			inString = !inString
		}
		if c != '?' || inString {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		n := 0
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			n = n*10 + int(q[j]-'0')
			j++
		}
		if j == i+1 {
			n = highest + 1
		}
		highest = max(highest, n)
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
		i = j - 1
	}
	return b.String()
}

type pgConnector struct {
	inner driver.Connector
	sqls  *translations
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn, sqls: c.sqls}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn passes everything to pgx's connection after translating the
// statement.
type pgConn struct {
	driver.Conn
	sqls *translations
}

var errUnsupported = errors.New("readstore: the pgx connection lacks an interface")

func (c *pgConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(c.sqls.get(q)) }

func (c *pgConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	p, ok := c.Conn.(driver.ConnPrepareContext)
	if !ok {
		return nil, errUnsupported
	}
	return p.PrepareContext(ctx, c.sqls.get(q))
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.Conn.(driver.ConnBeginTx)
	if !ok {
		return nil, errUnsupported
	}
	return b.BeginTx(ctx, opts)
}

func (c *pgConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return e.ExecContext(ctx, c.sqls.get(q), args)
}

func (c *pgConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	e, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return e.QueryContext(ctx, c.sqls.get(q), args)
}

func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *pgConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}
