package offices

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// DefaultEEBDueAfter is the period after receipt an eEB task is due in when
// the site sets none. XJustiz carries no deadline for an eEB (§ 173 Abs. 3
// ZPO asks for it without one); three days is a site's policy, not the
// law's.
const DefaultEEBDueAfter = 72 * time.Hour

// The states of an eEB task.
const (
	// EEBOpen: the court asked and no answer is recorded.
	EEBOpen = "open"
	// EEBAnswering: the office decided; the answer is being sent (or
	// retried).
	EEBAnswering = "answering"
	// EEBSent: the EGVP channel accepted the answer.
	EEBSent = "sent"
	// EEBFailed: the answer failed for good; the office may answer again.
	EEBFailed = "failed"
)

// EEBTask is a court's request for an electronic acknowledgement of receipt
// (eEB) as an office works it: what was asked, by when the site wants it
// answered, and what became of the answer.
type EEBTask struct {
	// Requested is always true: a message without a request has no task.
	Requested bool `json:"requested"`
	// Documents are the XJustiz ids of the documents to acknowledge.
	Documents []string `json:"documents,omitempty"`
	// Due is the receipt time plus the site's period (Inbox.EEBDueAfter).
	Due time.Time `json:"due"`
	// Status is EEBOpen, EEBAnswering, EEBSent or EEBFailed.
	Status string `json:"status"`
	// Decision is the answer's (gateway.EEBAcknowledged, EEBRefused), once
	// there is one.
	Decision string `json:"decision,omitempty"`
	// ReplyID names the answer (its ReplyRequested); AnsweredBy is who
	// decided, for which office, AnsweredAt when.
	ReplyID        string     `json:"replyId,omitempty"`
	AnsweredBy     string     `json:"answeredBy,omitempty"`
	AnsweredOffice string     `json:"answeredOffice,omitempty"`
	AnsweredAt     *time.Time `json:"answeredAt,omitempty"`
	// SentAt is when the channel accepted the answer.
	SentAt *time.Time `json:"sentAt,omitempty"`
	// Error is the last failed attempt's.
	Error string `json:"error,omitempty"`
	// Overdue is set while the task awaits the office's decision after its
	// due date passed (an EEBOverdue is in the log: OverdueWatch records it).
	Overdue bool `json:"overdue,omitempty"`
	// OverdueSince is when the gateway recorded that the due date passed;
	// it stays once the office answered.
	OverdueSince *time.Time `json:"overdueSince,omitempty"`
}

// AwaitsDecision reports whether the office still has to decide: nothing
// answered yet, or the answer failed for good.
func (t *EEBTask) AwaitsDecision() bool {
	return t != nil && (t.Status == EEBOpen || t.Status == EEBFailed)
}

var eebSchema = []string{
	// One task per message, whichever offices it went to: a court gets one
	// eEB per request. Times are UTC in a fixed-width form, so that the
	// text orders as the time does.
	`CREATE TABLE IF NOT EXISTS office_eeb (
		tenant TEXT NOT NULL, stream TEXT NOT NULL,
		documents TEXT NOT NULL DEFAULT '[]', due TEXT NOT NULL, status TEXT NOT NULL,
		decision TEXT NOT NULL DEFAULT '', reply_id TEXT NOT NULL DEFAULT '',
		answered_by TEXT NOT NULL DEFAULT '', answered_office TEXT NOT NULL DEFAULT '', answered_at TEXT NOT NULL DEFAULT '',
		sent_at TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
		overdue_at TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (tenant, stream)) STRICT`,
	`CREATE INDEX IF NOT EXISTS office_eeb_reply ON office_eeb (reply_id)`,
	`CREATE INDEX IF NOT EXISTS office_eeb_due ON office_eeb (status, due)`,
}

// addOverdueColumn adds office_eeb.overdue_at to a state database made
// before it. No such database has an EEBOverdue folded (the event came with
// the column), so the empty default is what a rebuild would give.
func addOverdueColumn(ctx context.Context, tx *sql.Tx) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('office_eeb') WHERE name = 'overdue_at'`).Scan(&n)
	if err != nil {
		return fmt.Errorf("offices: inspect office_eeb: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE office_eeb ADD COLUMN overdue_at TEXT NOT NULL DEFAULT ''`); err != nil {
		return fmt.Errorf("offices: add office_eeb.overdue_at: %w", err)
	}
	return nil
}

// fixedTime is the stored form of the task's times.
const fixedTime = "2006-01-02T15:04:05.000000000Z"

func (in Inbox) eebDueAfter() time.Duration {
	if in.EEBDueAfter > 0 {
		return in.EEBDueAfter
	}
	return DefaultEEBDueAfter
}

// applyEEB folds what the eEB task of a message follows from: the request
// in the receipt, the office's answer, and what the channel made of it.
func (in Inbox) applyEEB(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		if m.Channel != gateway.ChannelEGVP || m.EGVP == nil || !m.EGVP.EEBRequested {
			return nil
		}
		docs, err := json.Marshal(m.EGVP.EEBDocuments)
		if err != nil {
			return err
		}
		due := m.ReceivedAt.UTC().Add(in.eebDueAfter()).Format(fixedTime)
		_, err = tx.ExecContext(ctx, `INSERT INTO office_eeb (tenant, stream, documents, due, status) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, stream) DO UPDATE SET documents = excluded.documents, due = excluded.due`,
			e.Tenant, e.Stream, string(docs), due, EEBOpen)
		return err
	case *gateway.ReplyRequested:
		if m.EEB == nil {
			return nil
		}
		// The first answer holds until it fails for good; the requester
		// refuses a second one before, so another here is a log written
		// around it, and the task keeps the one that is being sent.
		_, err := tx.ExecContext(ctx, `UPDATE office_eeb SET status = ?, decision = ?, reply_id = ?, answered_by = ?, answered_office = ?,
				answered_at = ?, sent_at = '', error = ''
			WHERE tenant = ? AND stream = ? AND (status IN (?, ?) OR reply_id = ?)`,
			EEBAnswering, m.EEB.Decision, m.ReplyID, m.Author, m.Office, e.RecordedAt.UTC().Format(fixedTime),
			e.Tenant, e.Stream, EEBOpen, EEBFailed, m.ReplyID)
		if err != nil {
			return err
		}
		// The office answered: the overdue item has done its job. An item
		// of another kind (an unrouted message, a failed answer) stays.
		_, err = tx.ExecContext(ctx, `UPDATE triage_items SET state = 'answered' WHERE tenant = ? AND stream = ? AND kind = ? AND state = 'open'`,
			e.Tenant, e.Stream, TriageEEBOverdue)
		return err
	case *gateway.EEBOverdue:
		// The time is kept whatever the task's state, so the watch does not
		// ask again; the task shows as overdue (and the item opens) only
		// while it awaits a decision: an answer the watch did not see yet
		// wins, and one that fails for good later opens its own item.
		var status string
		err := tx.QueryRowContext(ctx, `UPDATE office_eeb SET overdue_at = ? WHERE tenant = ? AND stream = ? AND overdue_at = '' RETURNING status`,
			e.RecordedAt.UTC().Format(fixedTime), e.Tenant, e.Stream).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && status != EEBOpen && status != EEBFailed) {
			return nil
		}
		if err != nil {
			return err
		}
		offices := "triage"
		if len(m.Offices) > 0 {
			offices = strings.Join(m.Offices, ", ")
		}
		reason := fmt.Sprintf("eEB overdue: the court's request was due %s (%s) and is not answered", m.Due.UTC().Format(time.RFC3339), offices)
		// A stream has one triage item. One already open for another cause
		// (unrouted, a failed answer) is what the mailroom must solve
		// first; it keeps its kind and says that the court waits too.
		res, err := tx.ExecContext(ctx, `UPDATE triage_items SET reason = reason || ' — ' || ? WHERE tenant = ? AND stream = ? AND state = 'open' AND kind != ?`,
			reason, e.Tenant, e.Stream, TriageEEBOverdue)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		return in.openTriage(ctx, tx, e, TriageEEBOverdue, reason, e.RecordedAt.UTC().Format(time.RFC3339Nano))
	case *gateway.ReplySent:
		_, err := tx.ExecContext(ctx, `UPDATE office_eeb SET status = ?, sent_at = ?, error = '' WHERE tenant = ? AND stream = ? AND reply_id = ?`,
			EEBSent, e.RecordedAt.UTC().Format(fixedTime), e.Tenant, e.Stream, m.ReplyID)
		return err
	case *gateway.ReplyFailed:
		status := EEBAnswering
		// An eEB that may have been sent is not failed: another answer
		// would reach the court under another id.
		if m.Permanent && !m.Uncertain {
			status = EEBFailed
		}
		_, err := tx.ExecContext(ctx, `UPDATE office_eeb SET status = ?, error = ? WHERE tenant = ? AND stream = ? AND reply_id = ? AND status != ?`,
			status, m.Error, e.Tenant, e.Stream, m.ReplyID, EEBSent)
		return err
	}
	return nil
}

// eebColumns are the task's columns in a query that joins office_eeb as e
// (LEFT JOIN: all empty without a task).
const eebColumns = `COALESCE(e.status, ''), COALESCE(e.documents, '[]'), COALESCE(e.due, ''), COALESCE(e.decision, ''),
	COALESCE(e.reply_id, ''), COALESCE(e.answered_by, ''), COALESCE(e.answered_office, ''), COALESCE(e.answered_at, ''),
	COALESCE(e.sent_at, ''), COALESCE(e.error, ''), COALESCE(e.overdue_at, '')`

// eebScan receives eebColumns.
type eebScan struct {
	status, docs, due, decision, replyID, by, office, answeredAt, sentAt, errText, overdueAt string
}

func (s *eebScan) dest() []any {
	return []any{&s.status, &s.docs, &s.due, &s.decision, &s.replyID, &s.by, &s.office, &s.answeredAt, &s.sentAt, &s.errText, &s.overdueAt}
}

func (s *eebScan) task() (*EEBTask, error) {
	if s.status == "" {
		return nil, nil
	}
	t := &EEBTask{Requested: true, Status: s.status, Decision: s.decision, ReplyID: s.replyID, AnsweredBy: s.by,
		AnsweredOffice: s.office, Error: s.errText}
	if err := json.Unmarshal([]byte(s.docs), &t.Documents); err != nil {
		return nil, fmt.Errorf("decode eEB documents: %w", err)
	}
	t.Due, _ = time.Parse(fixedTime, s.due)
	t.AnsweredAt, t.SentAt, t.OverdueSince = optTime(s.answeredAt), optTime(s.sentAt), optTime(s.overdueAt)
	t.Overdue = t.OverdueSince != nil && t.AwaitsDecision()
	return t, nil
}

func optTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(fixedTime, s)
	if err != nil {
		return nil
	}
	return &t
}

// GetEEB returns the eEB task of a message, nil when it asks for none.
func GetEEB(ctx context.Context, db *sql.DB, tenant, stream string) (*EEBTask, error) {
	var s eebScan
	err := db.QueryRowContext(ctx, `SELECT `+eebColumns+` FROM office_eeb e WHERE e.tenant = ? AND e.stream = ?`, tenant, stream).Scan(s.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offices: eEB task of %s: %w", stream, err)
	}
	return s.task()
}

// eebFilter is the WHERE clause an EEB query selects with, and its
// ordering: by due date, the most urgent first.
func eebFilter(q string) (where string, args []any, ok bool) {
	switch q {
	case "":
		return "", nil, true
	case EEBFilterOpen:
		return ` AND e.status IN (?, ?)`, []any{EEBOpen, EEBFailed}, true
	case EEBFilterOverdue:
		return ` AND e.status IN (?, ?) AND e.overdue_at != ''`, []any{EEBOpen, EEBFailed}, true
	case EEBFilterRequested:
		return ` AND e.status IS NOT NULL`, nil, true
	case EEBAnswering, EEBSent, EEBFailed:
		return ` AND e.status = ?`, []any{q}, true
	}
	return "", nil, false
}

// The values of Query.EEB besides the task states.
const (
	// EEBFilterOpen selects the tasks awaiting the office's decision: open
	// ones and those whose answer failed for good.
	EEBFilterOpen = "open"
	// EEBFilterRequested selects every message with an eEB task.
	EEBFilterRequested = "requested"
	// EEBFilterOverdue selects the tasks awaiting a decision whose due date
	// passed (EEBTask.Overdue).
	EEBFilterOverdue = "overdue"
)

// TriageEEBOverdue is the kind of the triage item an overdue eEB task opens.
const TriageEEBOverdue = "eeb-overdue"

// ValidEEBFilter reports whether v is a value of Query.EEB.
func ValidEEBFilter(v string) bool {
	_, _, ok := eebFilter(v)
	return ok
}
