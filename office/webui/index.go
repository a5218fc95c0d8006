package webui

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/routing"
)

// Index is the web UI's read model: one row per message with what the
// search and the overview filter on (channel, sender, subject, file
// numbers, offices, status, verification), b-tree indexes for the
// structured fields and an FTS5 index for the words, so that a search
// stays an indexed query at a million messages (BenchmarkSearch). It also
// keeps the last witnessed head. It is a projection of the log: dropping it
// and replaying rebuilds it. Register it with a projection.Runner.
type Index struct {
	// Notifier, when set, is told after every committed batch of changes
	// (the web UI's live updates wait on it).
	Notifier *offices.Notifier
}

// Name implements projection.Projection.
func (Index) Name() string { return "webui-index" }

var indexSchema = []string{
	`CREATE TABLE IF NOT EXISTS ui_messages (
		id INTEGER PRIMARY KEY,
		tenant TEXT NOT NULL, stream TEXT NOT NULL,
		received_at TEXT NOT NULL DEFAULT '',
		channel TEXT NOT NULL DEFAULT '', sender TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',
		file_numbers TEXT NOT NULL DEFAULT '', offices TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL DEFAULT 'received', verification TEXT NOT NULL DEFAULT 'pending',
		UNIQUE (tenant, stream)) STRICT`,
	`CREATE INDEX IF NOT EXISTS ui_messages_received ON ui_messages (received_at, id)`,
	`CREATE INDEX IF NOT EXISTS ui_messages_channel ON ui_messages (channel, received_at)`,
	`CREATE INDEX IF NOT EXISTS ui_messages_status ON ui_messages (status, received_at)`,
	`CREATE INDEX IF NOT EXISTS ui_messages_verification ON ui_messages (verification, received_at)`,
	`CREATE TABLE IF NOT EXISTS ui_message_offices (
		office TEXT NOT NULL, id INTEGER NOT NULL, received_at TEXT NOT NULL,
		PRIMARY KEY (office, id)) STRICT, WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS ui_message_offices_received ON ui_message_offices (office, received_at, id)`,
	`CREATE INDEX IF NOT EXISTS ui_message_offices_id ON ui_message_offices (id)`,
	// The words of sender, subject and file numbers; '-', '/', '.', '@' and
	// '_' belong to a word, so that "63-2026-117" and an address stay one
	// token each and a prefix search finds them.
	`CREATE VIRTUAL TABLE IF NOT EXISTS ui_text USING fts5(sender, subject, file_numbers,
		content='ui_messages', content_rowid='id', tokenize="unicode61 remove_diacritics 2 tokenchars '-/.@_'")`,
	`CREATE TABLE IF NOT EXISTS ui_heads (
		k INTEGER PRIMARY KEY CHECK (k = 1), recorded_at TEXT NOT NULL, head TEXT NOT NULL) STRICT`,
}

// Setup implements projection.Projection.
func (Index) Setup(ctx context.Context, tx *sql.Tx) error {
	for _, s := range indexSchema {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("webui: create index tables: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (Index) Reset(ctx context.Context, tx *sql.Tx) error {
	for _, s := range []string{`DELETE FROM ui_message_offices`, `DELETE FROM ui_messages`,
		`INSERT INTO ui_text (ui_text) VALUES ('delete-all')`, `DELETE FROM ui_heads`} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("webui: reset index: %w", err)
		}
	}
	return nil
}

// Message statuses in the index, in the order a message usually goes.
const (
	StatusReceived      = "received"
	StatusTriage        = "triage"
	StatusRouted        = "routed"
	StatusDelivered     = "delivered"
	StatusAcknowledged  = "acknowledged"
	StatusAnswerPending = "answer-pending"
	StatusAnswered      = "answered"
	StatusAnswerFailed  = "answer-failed"
)

// Verification results in the index.
const (
	VerifyPending       = "pending"
	VerifyUnsigned      = "unsigned"
	VerifyPassed        = "passed"
	VerifyFailed        = "failed"
	VerifyIndeterminate = "indeterminate"
)

// Statuses and Verifications list the values a search may ask for.
var (
	Statuses = []string{StatusReceived, StatusTriage, StatusRouted, StatusDelivered, StatusAcknowledged,
		StatusAnswerPending, StatusAnswered, StatusAnswerFailed}
	Verifications = []string{VerifyPending, VerifyUnsigned, VerifyPassed, VerifyFailed, VerifyIndeterminate}
)

// Apply implements projection.Projection.
func (ix Index) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	var err error
	switch m := p.(type) {
	case *gateway.MessageReceived:
		err = ix.received(ctx, tx, e, m)
	case *gateway.RoutingFailed, *gateway.ProcessingFailed:
		err = setStatus(ctx, tx, e, StatusTriage, "")
	case *gateway.MessageRouted:
		err = ix.routed(ctx, tx, e, m)
	case *gateway.MessageDelivered:
		err = setStatus(ctx, tx, e, StatusDelivered, StatusRouted)
	case *gateway.MessageAcknowledged:
		err = setStatus(ctx, tx, e, StatusAcknowledged, "")
	case *gateway.ReplyRequested:
		err = setStatus(ctx, tx, e, StatusAnswerPending, "")
	case *gateway.ReplySent:
		err = setStatus(ctx, tx, e, StatusAnswered, "")
	case *gateway.ReplyFailed:
		if m.Permanent {
			err = setStatus(ctx, tx, e, StatusAnswerFailed, "")
		}
	case *gateway.SignaturesVerified:
		err = ensureRow(ctx, tx, e)
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE ui_messages SET verification = ? WHERE tenant = ? AND stream = ?`,
				VerificationOf(m), e.Tenant, e.Stream)
		}
	case *gateway.HeadPublished:
		var j []byte
		if j, err = json.Marshal(m); err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO ui_heads (k, recorded_at, head) VALUES (1, ?, ?)
				ON CONFLICT (k) DO UPDATE SET recorded_at = excluded.recorded_at, head = excluded.head`,
				e.RecordedAt.UTC().Format(time.RFC3339Nano), string(j))
		}
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("webui: index %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// Committed implements projection.Committer: the live views wake once a
// batch is committed, and then see it.
func (ix Index) Committed() {
	if ix.Notifier != nil {
		ix.Notifier.Broadcast()
	}
}

// VerificationOf sums up a verification: passed when every signature
// passed, failed when any failed, unsigned without signatures, otherwise
// indeterminate.
func VerificationOf(m *gateway.SignaturesVerified) string {
	if len(m.Signatures) == 0 {
		return VerifyUnsigned
	}
	out := VerifyPassed
	for _, s := range m.Signatures {
		switch s.Indication {
		case "TOTAL_PASSED":
		case "TOTAL_FAILED":
			return VerifyFailed
		default:
			out = VerifyIndeterminate
		}
	}
	return out
}

func ensureRow(ctx context.Context, tx projection.Tx, e *eventstore.Event) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ui_messages (tenant, stream) VALUES (?, ?) ON CONFLICT DO NOTHING`, e.Tenant, e.Stream)
	return err
}

// setStatus sets a message's status; with only, only when the status is
// that one (a delivery does not undo an acknowledgement).
func setStatus(ctx context.Context, tx projection.Tx, e *eventstore.Event, status, only string) error {
	if err := ensureRow(ctx, tx, e); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE ui_messages SET status = ? WHERE tenant = ? AND stream = ? AND (? = '' OR status = ?)`,
		status, e.Tenant, e.Stream, only, only)
	return err
}

func (ix Index) received(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageReceived) error {
	if err := ensureRow(ctx, tx, e); err != nil {
		return err
	}
	at := ""
	if !m.ReceivedAt.IsZero() {
		at = m.ReceivedAt.UTC().Format(time.RFC3339Nano)
	}
	sender := strings.ToLower(m.From.Address)
	files := strings.Join(FileNumbers(m), " ")
	var id int64
	err := tx.QueryRowContext(ctx, `UPDATE ui_messages SET received_at = ?, channel = ?, sender = ?, subject = ?, file_numbers = ?
		WHERE tenant = ? AND stream = ? RETURNING id`, at, string(m.Channel), sender, m.Subject, files, e.Tenant, e.Stream).Scan(&id)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE ui_message_offices SET received_at = ? WHERE id = ?`, at, id); err != nil {
		return err
	}
	// A stream has one MessageReceived, so its words are added once.
	_, err = tx.ExecContext(ctx, `INSERT INTO ui_text (rowid, sender, subject, file_numbers) VALUES (?, ?, ?, ?)`,
		id, sender+" "+m.From.Name, m.Subject, files)
	return err
}

func (ix Index) routed(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageRouted) error {
	if err := setStatus(ctx, tx, e, StatusRouted, ""); err != nil {
		return err
	}
	var id int64
	var at, list string
	if err := tx.QueryRowContext(ctx, `SELECT id, received_at, offices FROM ui_messages WHERE tenant = ? AND stream = ?`,
		e.Tenant, e.Stream).Scan(&id, &at, &list); err != nil {
		return err
	}
	all := splitOffices(list)
	for _, o := range m.Offices {
		if slices.Contains(all, o) {
			continue
		}
		all = append(all, o)
		if _, err := tx.ExecContext(ctx, `INSERT INTO ui_message_offices (office, id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			o, id, at); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE ui_messages SET offices = ? WHERE id = ?`, strings.Join(all, ","), id)
	return err
}

func splitOffices(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// fileNumberPattern finds what looks like a file number (Aktenzeichen) in a
// subject: a run of letters and digits joined by '-', '/' or '.', holding at
// least one digit and one separator ("63-2026-117", "BA-2026/17").
var fileNumberPattern = regexp.MustCompile(`\b[\p{L}\d]+(?:[-/.][\p{L}\d]+)+\b`)

// FileNumbers returns the file numbers a message states (the channel's
// fileNumbers metadata) and those its subject seems to carry.
func FileNumbers(m *gateway.MessageReceived) []string {
	var out []string
	for _, f := range strings.FieldsFunc(m.Metadata[routing.MetaFileNumbers], func(r rune) bool { return r == '\n' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	for _, f := range fileNumberPattern.FindAllString(m.Subject, 20) {
		if strings.ContainsAny(f, "0123456789") && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
