package offices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// DefaultOverdueInterval is how often OverdueWatch looks for eEB tasks past
// their due date when the site sets nothing else.
const DefaultOverdueInterval = time.Minute

// overdueBatch caps the EEBOverdue events one round appends; the next round
// takes the rest.
const overdueBatch = 200

// OverdueWatch records, once per message, that an eEB task passed its due
// date unanswered (gateway.EEBOverdue), which the Inbox turns into the
// task's Overdue flag and a triage item. It reads the tasks from the
// Inbox's tables and appends to the log; the clock is Now, so tests move
// time instead of sleeping.
type OverdueWatch struct {
	Log eventstore.Log
	// State is the state database the Inbox projection writes.
	State *sql.DB
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Interval is the time between rounds (default DefaultOverdueInterval).
	Interval time.Duration
	// Owns limits the watch to the streams this process owns (several
	// gateways on one log); nil owns all. The event's id is derived from the
	// stream, so a second node recording it too would change nothing.
	Owns   func(tenant, stream string) bool
	Logger *slog.Logger
}

// Run checks every Interval until ctx ends.
func (w *OverdueWatch) Run(ctx context.Context) error {
	iv := w.Interval
	if iv <= 0 {
		iv = DefaultOverdueInterval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if _, err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.logger().Error("eEB overdue watch: round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *OverdueWatch) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default()
	}
	return w.Logger
}

// Check appends an EEBOverdue for every task awaiting a decision whose due
// date is not after Now and that has none folded yet, and reports how many
// it appended (those already in the log count as appended again only in
// the log's answer, not here).
func (w *OverdueWatch) Check(ctx context.Context) (int, error) {
	if w.Log == nil || w.State == nil {
		return 0, errors.New("offices: eEB overdue watch without Log or State")
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	rows, err := w.State.QueryContext(ctx, `SELECT e.tenant, e.stream, e.due,
			COALESCE((SELECT group_concat(office, ',') FROM (SELECT DISTINCT office FROM office_messages m
				WHERE m.tenant = e.tenant AND m.stream = e.stream ORDER BY office)), '')
		FROM office_eeb e WHERE e.status IN (?, ?) AND e.overdue_at = '' AND e.due <= ? ORDER BY e.due LIMIT ?`,
		EEBOpen, EEBFailed, now().UTC().Format(fixedTime), overdueBatch)
	if err != nil {
		return 0, fmt.Errorf("offices: eEB tasks past due: %w", err)
	}
	type late struct {
		tenant, stream string
		due            time.Time
		offices        []string
	}
	var found []late
	for rows.Next() {
		var l late
		var due, offices string
		if err := rows.Scan(&l.tenant, &l.stream, &due, &offices); err != nil {
			rows.Close()
			return 0, fmt.Errorf("offices: eEB tasks past due: %w", err)
		}
		l.due, _ = time.Parse(fixedTime, due)
		if offices != "" {
			l.offices = strings.Split(offices, ",")
		}
		found = append(found, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("offices: eEB tasks past due: %w", err)
	}
	n := 0
	for _, l := range found {
		if w.Owns != nil && !w.Owns(l.tenant, l.stream) {
			continue
		}
		ev, err := gateway.Encode(gateway.Meta{ID: gateway.EEBOverdueEventID(l.tenant, l.stream), Tenant: l.tenant, Stream: l.stream,
			CorrelationID: l.stream}, &gateway.EEBOverdue{Due: l.due, Offices: l.offices})
		if err != nil {
			return n, err
		}
		res, err := w.Log.Append(ctx, ev)
		if err != nil {
			return n, fmt.Errorf("offices: record eEB of %s overdue: %w", l.stream, err)
		}
		if len(res) == 1 && !res[0].Existing {
			n++
			w.logger().Warn("eEB overdue", "stream", l.stream, "due", l.due, "offices", l.offices)
		}
	}
	return n, nil
}

// EEBCount is how many eEB tasks of an office await its decision, and how
// many of them are overdue.
type EEBCount struct {
	Office  string
	Open    int
	Overdue int
}

// CountEEB returns the eEB tasks awaiting a decision per office the
// messages were routed to (a task routed to two offices counts for both),
// offices without any left out.
func CountEEB(ctx context.Context, db *sql.DB) ([]EEBCount, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.office, COUNT(*), SUM(e.overdue_at != '')
		FROM office_eeb e JOIN office_messages m ON m.tenant = e.tenant AND m.stream = e.stream
		WHERE e.status IN (?, ?) GROUP BY m.office ORDER BY m.office`, EEBOpen, EEBFailed)
	if err != nil {
		return nil, fmt.Errorf("offices: count eEB tasks: %w", err)
	}
	defer rows.Close()
	var out []EEBCount
	for rows.Next() {
		var c EEBCount
		if err := rows.Scan(&c.Office, &c.Open, &c.Overdue); err != nil {
			return nil, fmt.Errorf("offices: count eEB tasks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
