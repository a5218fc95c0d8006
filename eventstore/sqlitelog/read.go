package sqlitelog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

const selectEvent = `SELECT off, id, tenant, stream, stream_seq, type, version, message_key, correlation_id,
	causation_id, metadata, data, recorded_at, prev_hash FROM events `

// readCapacity is the most room a read starts with, in events (a poll
// that finds little should not allocate for a page); maxRead caps one read.
const (
	readCapacity = 256
	maxRead      = 10000
)

type rowScanner interface{ Scan(dest ...any) error }

func scanEvent(r rowScanner, extra ...any) (eventstore.Event, error) {
	var e eventstore.Event
	// The driver's copies of these two are only looked at, not kept.
	var meta, prev sql.RawBytes
	var recorded int64
	dest := append([]any{&e.Position.Offset, &e.ID, &e.Tenant, &e.Stream, &e.StreamSeq, &e.Type, &e.Version,
		&e.MessageKey, &e.CorrelationID, &e.CausationID, &meta, &e.Data, &recorded, &prev}, extra...)
	if err := r.Scan(dest...); err != nil {
		return e, err
	}
	if len(prev) != 32 {
		return e, fmt.Errorf("%w: event at offset %d has a %d-byte predecessor hash", errCorruptRow, e.Position.Offset, len(prev))
	}
	copy(e.PrevHash[:], prev)
	e.RecordedAt = time.Unix(0, recorded).UTC()
	m, err := decodeMetadata(meta)
	if err != nil {
		return e, fmt.Errorf("%w: event at offset %d: metadata: %v", errCorruptRow, e.Position.Offset, err)
	}
	e.Metadata = m
	return e, nil
}

func (l *Log) queryOne(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) (*eventstore.Event, error) {
	// Rows rather than Row: Row.Scan refuses the RawBytes scanEvent uses.
	rows, err := q.QueryContext(ctx, selectEvent+where, args...)
	if err != nil {
		return nil, fmt.Errorf("look up event: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look up event: %w", err)
		}
		return nil, nil
	}
	e, err := scanEvent(rows)
	if err != nil {
		return nil, fmt.Errorf("look up event: %w", err)
	}
	return &e, nil
}

// Read implements eventstore.Log.
func (l *Log) Read(ctx context.Context, partition int32, from int64, limit int) ([]eventstore.Event, error) {
	if partition != 0 {
		return nil, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	if limit <= 0 || limit > maxRead {
		limit = maxRead
	}
	stmt, err := l.readStatement(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, from, limit)
	return l.scanRows(rows, err, min(limit, readCapacity))
}

// readStatement is Read's statement, prepared on the first Read and kept:
// every pipeline handler and the projections read the log page by page, and
// parsing the statement for each page was 6 % of the gateway's CPU in the
// office benchmark (office/officeapi/bench, bench/notes.md).
func (l *Log) readStatement(ctx context.Context) (*sql.Stmt, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	if l.readStmt == nil {
		s, err := l.rdb.PrepareContext(ctx, selectEvent+`WHERE off >= ? ORDER BY off LIMIT ?`)
		if err != nil {
			return nil, fmt.Errorf("sqlitelog: prepare reading %s: %w", l.cfg.Path, err)
		}
		l.readStmt = s
	}
	return l.readStmt, nil
}

// ReadStream implements eventstore.Log.
func (l *Log) ReadStream(ctx context.Context, tenant, stream string) ([]eventstore.Event, error) {
	return l.query(ctx, 16, `WHERE tenant = ? AND stream = ? ORDER BY stream_seq`, tenant, stream)
}

// Lookup returns the event with the given id, or nil.
func (l *Log) Lookup(ctx context.Context, id string) (*eventstore.Event, error) {
	return l.queryOne(ctx, l.rdb, `WHERE id = ?`, id)
}

// query reads events with room for capacity of them to begin with.
func (l *Log) query(ctx context.Context, capacity int, where string, args ...any) ([]eventstore.Event, error) {
	rows, err := l.rdb.QueryContext(ctx, selectEvent+where, args...)
	return l.scanRows(rows, err, capacity)
}

// scanRows reads the events of a query's rows (or returns its error).
func (l *Log) scanRows(rows *sql.Rows, err error, capacity int) ([]eventstore.Event, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
	}
	defer rows.Close()
	// Growing a slice of events by doubling copied each event several
	// times over in a long read; a page-sized start avoids most of it.
	out := make([]eventstore.Event, 0, capacity)
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
	}
	return out, nil
}

// End implements eventstore.Log.
func (l *Log) End(ctx context.Context, partition int32) (int64, error) {
	if partition != 0 {
		return 0, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	var n sql.NullInt64
	if err := l.rdb.QueryRowContext(ctx, `SELECT max(off) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitelog: read end: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return n.Int64 + 1, nil
}

// Subscribe implements eventstore.Log. Subscribers of one group take turns:
// a second subscriber waits until the first ends, as a standby.
func (l *Log) Subscribe(ctx context.Context, group string, start eventstore.StartFunc, h eventstore.Handler) error {
	g := l.group(group)
	locked := make(chan struct{})
	go func() { g.Lock(); close(locked) }()
	select {
	case <-locked:
	case <-ctx.Done():
		go func() { <-locked; g.Unlock() }()
		return ctx.Err()
	}
	defer g.Unlock()
	off, err := start(ctx, 0)
	if err != nil {
		return fmt.Errorf("sqlitelog: subscription %s: start offset: %w", group, err)
	}
	for {
		wait := l.waitChan()
		evs, err := l.Read(ctx, 0, off, 512)
		if err != nil {
			return err
		}
		for i := range evs {
			if err := h(ctx, evs[i]); err != nil {
				return fmt.Errorf("sqlitelog: subscription %s at offset %d: %w", group, evs[i].Position.Offset, err)
			}
			off = evs[i].Position.Offset + 1
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.stop:
			return eventstore.ErrClosed
		}
	}
}

func (l *Log) group(name string) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, ok := l.groups[name]
	if !ok {
		g = &sync.Mutex{}
		l.groups[name] = g
	}
	return g
}

func encodeMetadata(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(m) // a map of strings always marshals; keys are sorted
	return b
}

func decodeMetadata(b []byte) (map[string]string, error) {
	if string(b) == "{}" {
		return nil, nil // what encodeMetadata writes for none: spares the JSON decoder
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func encodeFrontier(f *integrity.Frontier) []byte {
	nodes := f.Nodes()
	b := make([]byte, 0, 32*len(nodes))
	for _, n := range nodes {
		b = append(b, n[:]...)
	}
	return b
}

func decodeFrontier(size int64, b []byte) (*integrity.Frontier, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("sqlitelog: checkpoint at size %d has a malformed frontier", size)
	}
	nodes := make([][32]byte, len(b)/32)
	for i := range nodes {
		copy(nodes[i][:], b[32*i:])
	}
	f, err := integrity.RestoreFrontier(size, nodes)
	if err != nil {
		return nil, fmt.Errorf("sqlitelog: checkpoint at size %d: %w", size, err)
	}
	return f, nil
}
