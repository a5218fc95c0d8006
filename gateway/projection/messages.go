package projection

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Messages is the read model of every message's current state: what arrived,
// where it was routed, whether it was delivered, and whether it needs triage.
type Messages struct{}

// Name implements Projection.
func (Messages) Name() string { return "messages" }

// Setup implements Projection.
func (Messages) Setup(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS messages (
		tenant TEXT NOT NULL,
		stream TEXT NOT NULL,
		channel TEXT NOT NULL DEFAULT '',
		sender TEXT NOT NULL DEFAULT '',
		subject TEXT NOT NULL DEFAULT '',
		received_at TEXT NOT NULL DEFAULT '',
		state TEXT NOT NULL,
		offices TEXT NOT NULL DEFAULT '',
		triage_reason TEXT NOT NULL DEFAULT '',
		events INTEGER NOT NULL DEFAULT 0,
		updated_at TEXT NOT NULL,
		PRIMARY KEY (tenant, stream)) STRICT`)
	return err
}

// Reset implements Projection.
func (Messages) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM messages`)
	return err
}

// Apply implements Projection.
func (Messages) Apply(ctx context.Context, tx Tx, e *eventstore.Event, p gateway.Payload) error {
	at := e.RecordedAt.UTC().Format(time.RFC3339Nano)
	upsert := func(set string, args ...any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO messages (tenant, stream, state, updated_at, events) VALUES (?, ?, 'unknown', ?, 0)
			ON CONFLICT (tenant, stream) DO NOTHING`, e.Tenant, e.Stream, at)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE messages SET `+set+`, updated_at = ?, events = events + 1 WHERE tenant = ? AND stream = ?`,
			append(args, at, e.Tenant, e.Stream)...)
		return err
	}
	switch m := p.(type) {
	case *gateway.MessageReceived:
		state := "received"
		if len(m.Problems) > 0 {
			state = "received-with-problems"
		}
		return upsert(`channel = ?, sender = ?, subject = ?, received_at = ?, state = ?`,
			string(m.Channel), m.From.Address, m.Subject, m.ReceivedAt.UTC().Format(time.RFC3339Nano), state)
	case *gateway.MessageRouted:
		return upsert(`state = 'routed', offices = ?, triage_reason = ''`, strings.Join(m.Offices, ","))
	case *gateway.RoutingFailed:
		return upsert(`state = 'triage', triage_reason = ?`, m.Reason)
	case *gateway.ProcessingFailed:
		return upsert(`state = 'triage', triage_reason = ?`, m.Handler+": "+m.Error)
	case *gateway.MessageDelivered:
		return upsert(`state = 'delivered'`)
	case *gateway.MessageAcknowledged:
		return upsert(`state = 'acknowledged'`)
	case *gateway.DeliveryEvidenceRecorded:
		if m.Unlinked != "" {
			// Evidence no message matched has a stream of its own.
			return upsert(`channel = ?, state = 'triage', triage_reason = ?`, string(m.Channel), "delivery evidence: "+m.Unlinked)
		}
		return upsert(`state = state`)
	default:
		return upsert(`state = state`)
	}
}

// MessageRow is one row of the messages read model.
type MessageRow struct {
	Tenant       string `json:"tenant"`
	Stream       string `json:"stream"`
	Channel      string `json:"channel"`
	Sender       string `json:"sender"`
	Subject      string `json:"subject"`
	ReceivedAt   string `json:"receivedAt"`
	State        string `json:"state"`
	Offices      string `json:"offices"`
	TriageReason string `json:"triageReason,omitempty"`
	Events       int    `json:"events"`
}

// ListMessages returns the newest messages first.
func ListMessages(ctx context.Context, db *sql.DB, limit int) ([]MessageRow, error) {
	rows, err := db.QueryContext(ctx, `SELECT tenant, stream, channel, sender, subject, received_at, state, offices, triage_reason, events
		FROM messages ORDER BY received_at DESC, stream LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MessageRow
	for rows.Next() {
		var r MessageRow
		if err := rows.Scan(&r.Tenant, &r.Stream, &r.Channel, &r.Sender, &r.Subject, &r.ReceivedAt, &r.State, &r.Offices, &r.TriageReason, &r.Events); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Dump renders the whole read model as JSON lines, in key order; comparing
// two dumps shows whether a rebuild reproduced the same state.
func Dump(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := ListMessages(ctx, db, 1<<30)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range rows {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String(), nil
}
