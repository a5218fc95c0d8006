package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Model is the read model the scheduler finds due messages in: every
// message with its offices, time of receipt, hold and erasure, and every
// blob the log names with the streams that name it, so that a blob a
// retained message shares is kept. Like every projection it can be dropped
// and rebuilt from the log.
//
// Tables: retention_messages (one row per message), retention_sets (each
// tenant's sets of offices messages were routed to, so that a round asks
// per set for the oldest messages, whose rule is one), retention_blobs
// (blob, stream, and whether it is the stream's content, erased with it,
// or evidence such as a timestamp token, which is never erased and so
// keeps an equal content blob of any message).
type Model struct{}

// Name implements projection.Projection.
func (Model) Name() string { return "retention" }

var schema = []string{
	`CREATE TABLE IF NOT EXISTS retention_messages (
		tenant TEXT NOT NULL, stream TEXT NOT NULL, received_ms INTEGER NOT NULL,
		offices TEXT NOT NULL DEFAULT '', held INTEGER NOT NULL DEFAULT 0, erased INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tenant, stream)) STRICT, WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS retention_due ON retention_messages (tenant, offices, received_ms, stream)
		WHERE erased = 0 AND held = 0`,
	`CREATE TABLE IF NOT EXISTS retention_sets (
		tenant TEXT NOT NULL, offices TEXT NOT NULL, PRIMARY KEY (tenant, offices)) STRICT, WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS retention_blobs (
		sha256 TEXT NOT NULL, tenant TEXT NOT NULL, stream TEXT NOT NULL, content INTEGER NOT NULL,
		size INTEGER NOT NULL, PRIMARY KEY (sha256, tenant, stream, content)) STRICT, WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS retention_blobs_stream ON retention_blobs (tenant, stream)`,
}

// Setup implements projection.Projection.
func (Model) Setup(ctx context.Context, tx *sql.Tx) error {
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("retention: create tables: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (Model) Reset(ctx context.Context, tx *sql.Tx) error {
	for _, t := range []string{"retention_messages", "retention_sets", "retention_blobs"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
			return fmt.Errorf("retention: reset %s: %w", t, err)
		}
	}
	return nil
}

// Apply implements projection.Projection.
func (Model) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	if err := applyBlobs(ctx, tx, e, p); err != nil {
		return err
	}
	var err error
	switch m := p.(type) {
	case *gateway.MessageReceived:
		_, err = tx.ExecContext(ctx, `INSERT INTO retention_messages (tenant, stream, received_ms) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, e.Tenant, e.Stream, receivedAt(e, m).UnixMilli())
		if err == nil {
			err = addSet(ctx, tx, e.Tenant, "")
		}
	case *gateway.MessageRouted:
		set := joinOffices(m.Offices)
		_, err = tx.ExecContext(ctx, `UPDATE retention_messages SET offices = ? WHERE tenant = ? AND stream = ?`, set, e.Tenant, e.Stream)
		if err == nil {
			err = addSet(ctx, tx, e.Tenant, set)
		}
	case *gateway.LegalHoldSet:
		err = setFlag(ctx, tx, e, "held", 1)
	case *gateway.LegalHoldReleased:
		err = setFlag(ctx, tx, e, "held", 0)
	case *gateway.ContentErased:
		if err = setFlag(ctx, tx, e, "erased", 1); err == nil {
			// The message no longer keeps its contents; another that
			// shares one still does through its own row.
			_, err = tx.ExecContext(ctx, `DELETE FROM retention_blobs WHERE tenant = ? AND stream = ? AND content = 1`, e.Tenant, e.Stream)
		}
	}
	if err != nil {
		return fmt.Errorf("retention: apply %s of %s: %w", e.Type, e.Stream, err)
	}
	return nil
}

func addSet(ctx context.Context, tx projection.Tx, tenant, set string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO retention_sets (tenant, offices) VALUES (?, ?) ON CONFLICT DO NOTHING`, tenant, set)
	return err
}

func setFlag(ctx context.Context, tx projection.Tx, e *eventstore.Event, column string, v int) error {
	_, err := tx.ExecContext(ctx, `UPDATE retention_messages SET `+column+` = ? WHERE tenant = ? AND stream = ?`, v, e.Tenant, e.Stream)
	return err
}

// applyBlobs records every blob the event names: its contents as the
// stream's, everything else (timestamp tokens, delivery evidence) as kept
// for good. A content blob named after its stream's erasure is recorded
// too; it is not erased (the erasure is done), but it keeps an equal blob
// of another message.
func applyBlobs(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	contents := contentRefs(p)
	for _, r := range p.BlobRefs() {
		content := 0
		for _, c := range contents {
			if c == r {
				content = 1
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO retention_blobs (sha256, tenant, stream, content, size) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, r.SHA256, e.Tenant, e.Stream, content, r.Size)
		if err != nil {
			return fmt.Errorf("retention: record blob %s of %s: %w", r.SHA256, e.Stream, err)
		}
	}
	return nil
}

// sharedElsewhere reports whether a blob is named by anything but the
// stream's contents: another message that still keeps it, or evidence.
func sharedElsewhere(ctx context.Context, db *sql.DB, sha256, tenant, stream string) (bool, error) {
	var one int
	err := db.QueryRowContext(ctx, `SELECT 1 FROM retention_blobs WHERE sha256 = ?
		AND NOT (tenant = ? AND stream = ? AND content = 1) LIMIT 1`, sha256, tenant, stream).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("retention: look up blob %s: %w", sha256, err)
	}
	return true, nil
}

// candidate is a message the read model says may be due.
type candidate struct {
	tenant, stream string
	receivedMS     int64
}

// set is a tenant's set of offices.
type set struct {
	tenant, offices string
}

func sets(ctx context.Context, db *sql.DB) ([]set, error) {
	rows, err := db.QueryContext(ctx, `SELECT tenant, offices FROM retention_sets ORDER BY tenant, offices`)
	if err != nil {
		return nil, fmt.Errorf("retention: list office sets: %w", err)
	}
	defer rows.Close()
	var out []set
	for rows.Next() {
		var s set
		if err := rows.Scan(&s.tenant, &s.offices); err != nil {
			return nil, fmt.Errorf("retention: list office sets: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// oldest returns up to limit messages of a set that are neither held nor
// erased, oldest first, after the key (receivedMS, stream) given.
func oldest(ctx context.Context, db *sql.DB, s set, after candidate, limit int) ([]candidate, error) {
	rows, err := db.QueryContext(ctx, `SELECT stream, received_ms FROM retention_messages
		WHERE tenant = ? AND offices = ? AND erased = 0 AND held = 0 AND (received_ms, stream) > (?, ?)
		ORDER BY received_ms, stream LIMIT ?`, s.tenant, s.offices, after.receivedMS, after.stream, limit)
	if err != nil {
		return nil, fmt.Errorf("retention: list messages of %q: %w", s.offices, err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		c := candidate{tenant: s.tenant}
		if err := rows.Scan(&c.stream, &c.receivedMS); err != nil {
			return nil, fmt.Errorf("retention: list messages of %q: %w", s.offices, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
