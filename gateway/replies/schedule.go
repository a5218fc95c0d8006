package replies

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Reply states in the schedule.
const (
	StatePending = "pending" // requested, first attempt not recorded yet
	StateRetry   = "retry"   // failed temporarily, due again at RetryAt
	StateSent    = "sent"
	StateFailed  = "failed" // failed permanently; triage
)

// Schedule is the read model of every reply's state: the retry scheduler
// reads due replies from it, and the office API can show a reply's status.
// It is a projection (see gateway/projection): drop it and replay the log
// and it is the same again.
type Schedule struct{}

// Name implements projection.Projection.
func (Schedule) Name() string { return "reply-schedule" }

// Setup implements projection.Projection.
func (Schedule) Setup(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS reply_schedule (
		tenant TEXT NOT NULL,
		reply_id TEXT NOT NULL,
		stream TEXT NOT NULL,
		office TEXT NOT NULL DEFAULT '',
		channel TEXT NOT NULL DEFAULT '',
		state TEXT NOT NULL,
		attempt INTEGER NOT NULL DEFAULT 0,
		retry_at INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		channel_message_id TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (tenant, reply_id)) STRICT`)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS reply_schedule_due ON reply_schedule (state, retry_at)`)
	return err
}

// Reset implements projection.Projection.
func (Schedule) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM reply_schedule`)
	return err
}

// Apply implements projection.Projection.
func (Schedule) Apply(ctx context.Context, tx *sql.Tx, e *eventstore.Event, p gateway.Payload) error {
	var err error
	switch m := p.(type) {
	case *gateway.ReplyRequested:
		_, err = tx.ExecContext(ctx, `INSERT INTO reply_schedule (tenant, reply_id, stream, office, channel, state)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, reply_id) DO NOTHING`,
			e.Tenant, m.ReplyID, e.Stream, m.Office, string(m.Channel), StatePending)
	case *gateway.ReplySent:
		_, err = tx.ExecContext(ctx, `UPDATE reply_schedule SET state = ?, attempt = ?, retry_at = 0, channel_message_id = ?
			WHERE tenant = ? AND reply_id = ? AND attempt <= ?`,
			StateSent, m.Attempt, m.ChannelMessageID, e.Tenant, m.ReplyID, m.Attempt)
	case *gateway.ReplyFailed:
		state, at := StateRetry, m.RetryAt.UnixMilli()
		if m.Permanent {
			state, at = StateFailed, 0
		}
		// A later attempt never goes back to an earlier state, and a sent
		// reply stays sent.
		_, err = tx.ExecContext(ctx, `UPDATE reply_schedule SET state = ?, attempt = ?, retry_at = ?, last_error = ?
			WHERE tenant = ? AND reply_id = ? AND attempt < ? AND state != ?`,
			state, m.Attempt, at, m.Error, e.Tenant, m.ReplyID, m.Attempt, StateSent)
	}
	return err
}

// Status is one reply's row in the schedule.
type Status struct {
	Tenant           string `json:"tenant"`
	ReplyID          string `json:"replyId"`
	Stream           string `json:"stream"`
	Office           string `json:"office"`
	Channel          string `json:"channel"`
	State            string `json:"state"`
	Attempt          int    `json:"attempt"`
	RetryAtMillis    int64  `json:"retryAtMillis,omitempty"`
	LastError        string `json:"lastError,omitempty"`
	ChannelMessageID string `json:"channelMessageId,omitempty"`
}

const statusColumns = `tenant, reply_id, stream, office, channel, state, attempt, retry_at, last_error, channel_message_id`

func scanStatus(rows interface{ Scan(...any) error }) (Status, error) {
	var s Status
	err := rows.Scan(&s.Tenant, &s.ReplyID, &s.Stream, &s.Office, &s.Channel, &s.State, &s.Attempt, &s.RetryAtMillis, &s.LastError, &s.ChannelMessageID)
	return s, err
}

// ErrUnknownReply means the schedule has no such reply (yet).
var ErrUnknownReply = errors.New("replies: unknown reply")

// GetStatus returns one reply's state.
func GetStatus(ctx context.Context, db *sql.DB, tenant, replyID string) (Status, error) {
	s, err := scanStatus(db.QueryRowContext(ctx, `SELECT `+statusColumns+` FROM reply_schedule WHERE tenant = ? AND reply_id = ?`, tenant, replyID))
	if errors.Is(err, sql.ErrNoRows) {
		return Status{}, fmt.Errorf("%w %s", ErrUnknownReply, replyID)
	}
	if err != nil {
		return Status{}, fmt.Errorf("replies: read status of %s: %w", replyID, err)
	}
	return s, nil
}

// Due returns up to limit replies whose retry is due at nowMillis, earliest first.
func Due(ctx context.Context, db *sql.DB, nowMillis int64, limit int) ([]Status, error) {
	return query(ctx, db, `SELECT `+statusColumns+` FROM reply_schedule WHERE state = ? AND retry_at <= ?
		ORDER BY retry_at, tenant, reply_id LIMIT ?`, StateRetry, nowMillis, limit)
}

// Dump renders the schedule in key order, for rebuild comparisons.
func Dump(ctx context.Context, db *sql.DB) ([]Status, error) {
	return query(ctx, db, `SELECT `+statusColumns+` FROM reply_schedule ORDER BY tenant, reply_id`)
}

func query(ctx context.Context, db *sql.DB, q string, args ...any) ([]Status, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("replies: query schedule: %w", err)
	}
	defer rows.Close()
	var out []Status
	for rows.Next() {
		s, err := scanStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("replies: scan schedule: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
