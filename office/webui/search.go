package webui

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/poststelle/poststelle/gateway/offices"
)

// Query is a search. Empty fields do not restrict.
type Query struct {
	// Text is searched in sender, subject and file numbers; Sender, Subject
	// and FileNumber only in theirs. Words of Sender and FileNumber match
	// as prefixes, the others as whole words ("antr*" asks for a prefix).
	Text, Sender, Subject, FileNumber     string
	Channel, Office, Status, Verification string
	// From and To bound the receipt time: From ≤ received < To.
	From, To time.Time
	// Limit caps the hits (default 50, at most 500).
	Limit int
}

// Hit is one message a search found.
type Hit struct {
	ID           int64
	Tenant       string
	Stream       string
	ReceivedAt   time.Time
	Channel      string
	Sender       string
	Subject      string
	FileNumbers  string
	Offices      []string
	Status       string
	Verification string
}

// Scope restricts a search to what a principal may open: office members
// their offices' messages, the mailroom what was in triage, admins and
// auditors everything.
type Scope struct {
	All      bool
	Offices  []string
	Mailroom bool
}

// ScopeOf is the scope of a principal.
func ScopeOf(p offices.Principal) Scope {
	switch p.Role {
	case offices.RoleAdmin, offices.RoleAuditor:
		return Scope{All: true}
	case offices.RoleMailroom:
		return Scope{Mailroom: true}
	case offices.RoleOffice:
		return Scope{Offices: p.Offices}
	}
	return Scope{}
}

const hitColumns = `m.id, m.tenant, m.stream, m.received_at, m.channel, m.sender, m.subject, m.file_numbers, m.offices, m.status, m.verification`

// Search finds messages, newest first. It picks the table that narrows
// most as the one SQLite walks: the word index when there are words (in
// the order messages were recorded), one office's rows when one office is
// asked for, otherwise the receipt time index of the messages.
func Search(ctx context.Context, db *sql.DB, sc Scope, q Query) ([]Hit, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	var where []string
	var args []any
	from, order := "ui_messages m", "m.received_at DESC, m.id DESC"
	match := ftsQuery(q)
	office := q.Office
	if office == "" && len(sc.Offices) == 1 && !sc.All {
		office = sc.Offices[0]
	}
	switch {
	case match != "":
		from, order = "ui_text f JOIN ui_messages m ON m.id = f.rowid", "f.rowid DESC"
		where, args = append(where, "ui_text MATCH ?"), append(args, match)
		if office != "" {
			where, args = append(where, "EXISTS (SELECT 1 FROM ui_message_offices o WHERE o.id = m.id AND o.office = ?)"), append(args, office)
		}
	case office != "":
		from, order = "ui_message_offices o JOIN ui_messages m ON m.id = o.id", "o.received_at DESC, o.id DESC"
		where, args = append(where, "o.office = ?"), append(args, office)
		if !q.From.IsZero() {
			where, args = append(where, "o.received_at >= ?"), append(args, timeKey(q.From))
		}
		if !q.To.IsZero() {
			where, args = append(where, "o.received_at < ?"), append(args, timeKey(q.To))
		}
	}
	if office == "" || match != "" {
		if !q.From.IsZero() {
			where, args = append(where, "m.received_at >= ?"), append(args, timeKey(q.From))
		}
		if !q.To.IsZero() {
			where, args = append(where, "m.received_at < ?"), append(args, timeKey(q.To))
		}
	}
	for _, f := range []struct{ col, v string }{{"m.channel", q.Channel}, {"m.status", q.Status}, {"m.verification", q.Verification}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	switch {
	case sc.All:
	case sc.Mailroom:
		where = append(where, "EXISTS (SELECT 1 FROM triage_items t WHERE t.tenant = m.tenant AND t.stream = m.stream)")
	case len(sc.Offices) > 0:
		marks := strings.TrimSuffix(strings.Repeat("?,", len(sc.Offices)), ",")
		where = append(where, "EXISTS (SELECT 1 FROM ui_message_offices s WHERE s.id = m.id AND s.office IN ("+marks+"))")
		for _, o := range sc.Offices {
			args = append(args, o)
		}
	default:
		return nil, nil
	}
	stmt := "SELECT " + hitColumns + " FROM " + from
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " ORDER BY " + order + " LIMIT ?"
	rows, err := db.QueryContext(ctx, stmt, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("webui: search: %w", err)
	}
	defer rows.Close()
	var out []Hit
	for rows.Next() {
		h, err := scanHit(rows)
		if err != nil {
			return nil, fmt.Errorf("webui: search: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webui: search: %w", err)
	}
	return out, nil
}

func scanHit(s interface{ Scan(...any) error }) (Hit, error) {
	var h Hit
	var at, offs string
	if err := s.Scan(&h.ID, &h.Tenant, &h.Stream, &at, &h.Channel, &h.Sender, &h.Subject, &h.FileNumbers, &offs, &h.Status, &h.Verification); err != nil {
		return h, err
	}
	h.ReceivedAt, _ = time.Parse(time.RFC3339Nano, at)
	h.Offices = splitOffices(offs)
	return h, nil
}

// HitByStream returns the index row of one message, ok false when there is
// none.
func HitByStream(ctx context.Context, db *sql.DB, stream string) (Hit, bool, error) {
	h, err := scanHit(db.QueryRowContext(ctx, "SELECT "+hitColumns+" FROM ui_messages m WHERE m.stream = ?", stream))
	if err == sql.ErrNoRows {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("webui: message %s: %w", stream, err)
	}
	return h, true, nil
}

// HitsAfter returns the messages recorded after id that the scope may see,
// oldest first: what the live updates send.
func HitsAfter(ctx context.Context, db *sql.DB, sc Scope, id int64, limit int) ([]Hit, error) {
	where, args := "m.id > ? AND m.received_at != ''", []any{id}
	switch {
	case sc.All:
	case sc.Mailroom:
		where += " AND EXISTS (SELECT 1 FROM triage_items t WHERE t.tenant = m.tenant AND t.stream = m.stream)"
	case len(sc.Offices) > 0:
		where += " AND EXISTS (SELECT 1 FROM ui_message_offices s WHERE s.id = m.id AND s.office IN (" +
			strings.TrimSuffix(strings.Repeat("?,", len(sc.Offices)), ",") + "))"
		for _, o := range sc.Offices {
			args = append(args, o)
		}
	default:
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT "+hitColumns+" FROM ui_messages m WHERE "+where+" ORDER BY m.id LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("webui: live: %w", err)
	}
	defer rows.Close()
	var out []Hit
	for rows.Next() {
		h, err := scanHit(rows)
		if err != nil {
			return nil, fmt.Errorf("webui: live: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// LatestID is the newest message id in the index.
func LatestID(ctx context.Context, db *sql.DB) (int64, error) {
	var id int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM ui_messages`).Scan(&id); err != nil {
		return 0, fmt.Errorf("webui: latest: %w", err)
	}
	return id, nil
}

func timeKey(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ftsQuery builds the FTS5 query of the word fields: every word of the
// user's input quoted (so that no input is FTS syntax), all words required.
// Sender and file number words match as prefixes; other words match whole
// words unless the user ends one with '*'. A prefix of a common word makes
// FTS5 merge a long posting list, whole words do not (BenchmarkSearch).
func ftsQuery(q Query) string {
	var terms []string
	add := func(col, input string, prefix bool) {
		for _, w := range strings.FieldsFunc(input, func(r rune) bool {
			return unicode.IsSpace(r) || r == '"' || unicode.IsControl(r)
		}) {
			if len(terms) >= 16 || len(w) > 100 {
				return
			}
			star := prefix || strings.HasSuffix(w, "*")
			w = strings.Trim(w, "*")
			if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
				continue
			}
			t := `"` + w + `"`
			if star {
				t += "*"
			}
			if col != "" {
				t = col + " : " + t
			}
			terms = append(terms, t)
		}
	}
	add("", q.Text, false)
	add("sender", q.Sender, true)
	add("subject", q.Subject, false)
	add("file_numbers", q.FileNumber, true)
	return strings.Join(terms, " AND ")
}
