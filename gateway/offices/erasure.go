package offices

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Erasure is what an office sees of a message's ContentErased: when its
// contents were erased, under which retention rule and why.
type Erasure struct {
	At     time.Time `json:"at"`
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
}

// Hold is a legal hold (Sperrvermerk) on a message: it is not erased while
// the hold lasts.
type Hold struct {
	Since time.Time `json:"since"`
	// Case is the proceeding the hold is for (its Aktenzeichen), when the
	// person who set it gave one.
	Case string `json:"case,omitempty"`
}

// retentionColumnNames are the columns of inbox_received and office_messages
// that hold a message's erasure and legal hold. inbox_received keeps them
// for messages not yet routed, so that an office row made later copies
// them, as it copies the report.
var retentionColumnNames = []string{"erased_at", "erased_rule", "erased_reason", "hold_since", "hold_case"}

// retentionColumns is retentionColumnNames as a select or insert list.
const retentionColumns = `erased_at, erased_rule, erased_reason, hold_since, hold_case`

// retentionColumnsDDL declares retentionColumns in a CREATE TABLE.
const retentionColumnsDDL = `erased_at TEXT NOT NULL DEFAULT '', erased_rule TEXT NOT NULL DEFAULT '',
		erased_reason TEXT NOT NULL DEFAULT '', hold_since TEXT NOT NULL DEFAULT '', hold_case TEXT NOT NULL DEFAULT ''`

// retentionRow is retentionColumns as stored: empty strings when there is
// no erasure or hold.
type retentionRow struct {
	ErasedAt, ErasedRule, ErasedReason, HoldSince, HoldCase string
}

func (r *retentionRow) dest() []any {
	return []any{&r.ErasedAt, &r.ErasedRule, &r.ErasedReason, &r.HoldSince, &r.HoldCase}
}

func (r *retentionRow) erasure() *Erasure {
	if r.ErasedAt == "" {
		return nil
	}
	at, _ := time.Parse(time.RFC3339Nano, r.ErasedAt)
	return &Erasure{At: at, Rule: r.ErasedRule, Reason: r.ErasedReason}
}

func (r *retentionRow) hold() *Hold {
	if r.HoldSince == "" {
		return nil
	}
	since, _ := time.Parse(time.RFC3339Nano, r.HoldSince)
	return &Hold{Since: since, Case: r.HoldCase}
}

// addRetentionColumns adds retentionColumns to a state database made before
// them. Such a database may have folded erasures and holds without keeping
// them (the events came before this read model showed them), so the read
// model is emptied and its position reset: the runner folds the log again.
func addRetentionColumns(ctx context.Context, tx *sql.Tx) error {
	added := false
	for _, table := range []string{"inbox_received", "office_messages"} {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'erased_at'`, table).Scan(&n)
		if err != nil {
			return fmt.Errorf("offices: inspect %s: %w", table, err)
		}
		if n > 0 {
			continue
		}
		added = true
		for _, c := range retentionColumnNames {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+c+` TEXT NOT NULL DEFAULT ''`); err != nil {
				return fmt.Errorf("offices: add %s.%s: %w", table, c, err)
			}
		}
	}
	if !added {
		return nil
	}
	if err := (Inbox{}).Reset(ctx, tx); err != nil {
		return err
	}
	return resetInboxPosition(ctx, tx)
}

// resetInboxPosition makes the runner fold the log from its start into
// the inbox, in either order.
func resetInboxPosition(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM projection_positions WHERE name IN ('office-inbox', 'office-inbox/queued')`); err != nil {
		return fmt.Errorf("offices: reset the inbox position: %w", err)
	}
	return nil
}

// applyErased keeps a message's erasure. The time is the one the erasure
// was decided at, which the event carries; a payload without it takes the
// time the log recorded the event.
func applyErased(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.ContentErased) error {
	at := m.ErasedAt
	if at.IsZero() {
		at = e.RecordedAt
	}
	return setRetention(ctx, tx, e, `erased_at = ?, erased_rule = ?, erased_reason = ?`,
		at.UTC().Format(time.RFC3339Nano), m.Rule, m.Reason)
}

// applyHold keeps a message's legal hold; a second one replaces the first.
func applyHold(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.LegalHoldSet) error {
	since := m.SetAt
	if since.IsZero() {
		since = e.RecordedAt
	}
	return setRetention(ctx, tx, e, `hold_since = ?, hold_case = ?`, since.UTC().Format(time.RFC3339Nano), m.Case)
}

// setRetention sets retention columns (set is this file's constant SQL) of the event's message on its
// receipt, for office rows made later, and on the office rows made before.
func setRetention(ctx context.Context, tx projection.Tx, e *eventstore.Event, set string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO inbox_received (tenant, stream) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		e.Tenant, e.Stream); err != nil {
		return err
	}
	args = append(args, e.Tenant, e.Stream)
	for _, table := range []string{"inbox_received", "office_messages"} {
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET `+set+` WHERE tenant = ? AND stream = ?`, args...); err != nil {
			return err
		}
	}
	return nil
}
