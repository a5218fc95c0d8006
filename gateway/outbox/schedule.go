package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Schedule is the read model of one kind of effect: the Scheduler reads due
// retries from it and the office side can show an effect's state. It is a
// projection (see gateway/projection): drop it and replay the log and it is
// the same again. Every kind keeps its rows in one table, apart by kind.
type Schedule struct {
	Effect Effect
}

// Name implements projection.Projection.
func (s Schedule) Name() string { return "outbox/" + s.Effect.Kind() }

// Setup implements projection.Projection.
func (Schedule) Setup(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS outbox_schedule (
		kind TEXT NOT NULL,
		tenant TEXT NOT NULL,
		effect_id TEXT NOT NULL,
		stream TEXT NOT NULL,
		state TEXT NOT NULL,
		attempt INTEGER NOT NULL DEFAULT 0,
		retry_at INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (kind, tenant, effect_id)) STRICT`)
	if err != nil {
		return fmt.Errorf("outbox: create schedule: %w", err)
	}
	_, err = tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS outbox_schedule_due ON outbox_schedule (kind, state, retry_at)`)
	return err
}

// Reset implements projection.Projection.
func (s Schedule) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM outbox_schedule WHERE kind = ?`, s.Effect.Kind())
	return err
}

// Apply implements projection.Projection.
func (s Schedule) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	kind := s.Effect.Kind()
	for _, st := range s.Effect.Steps(e, p) {
		var err error
		switch st.State {
		case StatePending:
			_, err = tx.ExecContext(ctx, `INSERT INTO outbox_schedule (kind, tenant, effect_id, stream, state)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, kind, e.Tenant, st.ID, e.Stream, StatePending)
		default:
			at := int64(0)
			if st.State == StateRetry {
				at = st.RetryAt.UnixMilli()
			}
			// An effect may be attempted before its request is seen (a
			// webhook has none), so the row is made here if need be. A
			// later attempt never goes back to an earlier state, and a
			// done effect stays done; a retry at the attempt of a
			// permanent failure reopens it (see reopens).
			_, err = tx.ExecContext(ctx, `INSERT INTO outbox_schedule (kind, tenant, effect_id, stream, state, attempt, retry_at, last_error)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (kind, tenant, effect_id) DO UPDATE SET state = excluded.state, attempt = excluded.attempt,
					retry_at = excluded.retry_at, last_error = CASE WHEN excluded.state = ? THEN last_error ELSE excluded.last_error END
				WHERE outbox_schedule.state != ? AND (outbox_schedule.attempt < excluded.attempt
					OR (outbox_schedule.attempt = excluded.attempt AND excluded.state = ?)
					OR (outbox_schedule.attempt = excluded.attempt AND outbox_schedule.state = ? AND excluded.state = ?))`,
				kind, e.Tenant, st.ID, e.Stream, st.State, st.Attempt, at, st.Error, StateDone, StateDone, StateDone, StateFailed, StateRetry)
		}
		if err != nil {
			return fmt.Errorf("outbox: schedule %s %s: %w", kind, st.ID, err)
		}
	}
	return nil
}

// Status is one effect's row in the schedule.
type Status struct {
	Kind          string `json:"kind"`
	Tenant        string `json:"tenant"`
	ID            string `json:"id"`
	Stream        string `json:"stream"`
	State         string `json:"state"`
	Attempt       int    `json:"attempt"`
	RetryAtMillis int64  `json:"retryAtMillis,omitempty"`
	LastError     string `json:"lastError,omitempty"`
}

const statusColumns = `kind, tenant, effect_id, stream, state, attempt, retry_at, last_error`

func scanStatus(row interface{ Scan(...any) error }) (Status, error) {
	var s Status
	err := row.Scan(&s.Kind, &s.Tenant, &s.ID, &s.Stream, &s.State, &s.Attempt, &s.RetryAtMillis, &s.LastError)
	return s, err
}

// ErrUnknown means the schedule has no such effect (yet).
var ErrUnknown = errors.New("outbox: unknown effect")

// GetStatus returns one effect's state.
func GetStatus(ctx context.Context, db *sql.DB, kind, tenant, id string) (Status, error) {
	s, err := scanStatus(db.QueryRowContext(ctx, `SELECT `+statusColumns+` FROM outbox_schedule
		WHERE kind = ? AND tenant = ? AND effect_id = ?`, kind, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Status{}, fmt.Errorf("%w: %s %s", ErrUnknown, kind, id)
	}
	if err != nil {
		return Status{}, fmt.Errorf("outbox: read status of %s %s: %w", kind, id, err)
	}
	return s, nil
}

// Due returns up to limit effects of a kind whose retry is due at nowMillis,
// earliest first.
func Due(ctx context.Context, db *sql.DB, kind string, nowMillis int64, limit int) ([]Status, error) {
	return query(ctx, db, `SELECT `+statusColumns+` FROM outbox_schedule WHERE kind = ? AND state = ? AND retry_at <= ?
		ORDER BY retry_at, tenant, effect_id LIMIT ?`, kind, StateRetry, nowMillis, limit)
}

// Dump renders a kind's schedule in key order, for rebuild comparisons.
func Dump(ctx context.Context, db *sql.DB, kind string) ([]Status, error) {
	return query(ctx, db, `SELECT `+statusColumns+` FROM outbox_schedule WHERE kind = ? ORDER BY tenant, effect_id`, kind)
}

func query(ctx context.Context, db *sql.DB, q string, args ...any) ([]Status, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: query schedule: %w", err)
	}
	defer rows.Close()
	var out []Status
	for rows.Next() {
		s, err := scanStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: scan schedule: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
