package portal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// The reply watch. The sender's side writes accept-reply or reject-reply
// into the case's event log when it has taken or refused an answer, long
// after the answer was sent; the platform announces new events by callback
// only where the destination registered one, and not to every node. So the
// inbound reads the event logs of the cases whose answers have no such
// event yet, records each new SET about the answer once as delivery
// evidence, and stops at accept-reply or reject-reply, or after
// reply_horizon: then it records that no acknowledgement came (evidence of
// kind expired), and the answer goes to triage.
//
// Which answers are waiting is folded from the log (SentReplies), so the
// watch resumes after a restart and on any node; only the backoff between
// two looks at one case lives in memory, and a restart merely looks once
// more.

const (
	// maxReplyChecks caps the event logs read in one round, so that a
	// backlog of answers neither floods the platform nor holds the round
	// up; the rest wait for the next round.
	maxReplyChecks = 50
	// replyPage is how many waiting answers are read from the state
	// database at a time.
	replyPage = 200
	// maxReplyBackoff caps the wait between two looks at one answer.
	maxReplyBackoff = time.Hour
)

// SentReplies is the read model of the answers sent through FIT-Connect and
// what the event log told of them: a portal MessageReceived names its case,
// a ReplySent on the portal channel (its ChannelMessageID the platform's
// reply id) makes the answer waiting, and a DeliveryEvidenceRecorded about
// the answer of a final kind (retrieved: accept-reply; not-delivered:
// reject-reply; expired: no acknowledgement within the horizon) ends the
// wait. It can be dropped and rebuilt from the log like every projection.
type SentReplies struct{}

// Name implements projection.Projection.
func (SentReplies) Name() string { return "portal-replies" }

// Setup implements projection.Projection.
func (SentReplies) Setup(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS portal_cases (
			tenant TEXT NOT NULL, stream TEXT NOT NULL, case_id TEXT NOT NULL,
			PRIMARY KEY (tenant, stream)) STRICT, WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS portal_replies (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			tenant TEXT NOT NULL, reply_id TEXT NOT NULL, stream TEXT NOT NULL DEFAULT '',
			platform_reply_id TEXT NOT NULL DEFAULT '', case_id TEXT NOT NULL DEFAULT '',
			sent_at TEXT NOT NULL DEFAULT '', final TEXT NOT NULL DEFAULT '',
			UNIQUE (tenant, reply_id)) STRICT`,
		`CREATE INDEX IF NOT EXISTS portal_replies_waiting ON portal_replies (final, seq)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("portal: set up the reply watch: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (SentReplies) Reset(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{`DELETE FROM portal_replies`, `DELETE FROM portal_cases`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements projection.Projection.
func (SentReplies) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		if m.Channel != gateway.ChannelPortal || m.Portal == nil || m.Portal.CaseID == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO portal_cases (tenant, stream, case_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			e.Tenant, e.Stream, m.Portal.CaseID)
		if err != nil {
			return fmt.Errorf("portal: case of %s: %w", e.Stream, err)
		}
	case *gateway.ReplySent:
		if m.Channel != gateway.ChannelPortal || m.ChannelMessageID == "" {
			return nil
		}
		var caseID string
		err := tx.QueryRowContext(ctx, `SELECT case_id FROM portal_cases WHERE tenant = ? AND stream = ?`, e.Tenant, e.Stream).Scan(&caseID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // an answer to a message that did not come through FIT-Connect
		}
		if err != nil {
			return fmt.Errorf("portal: case of %s: %w", e.Stream, err)
		}
		// The outbound records the events it finds at sending before the
		// Sender records ReplySent, so the row may exist already, final.
		_, err = tx.ExecContext(ctx, `INSERT INTO portal_replies (tenant, reply_id, stream, platform_reply_id, case_id, sent_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, reply_id) DO UPDATE SET stream = excluded.stream,
			platform_reply_id = excluded.platform_reply_id, case_id = excluded.case_id, sent_at = excluded.sent_at
			WHERE portal_replies.sent_at = ''`,
			e.Tenant, m.ReplyID, e.Stream, m.ChannelMessageID, caseID, stamp(e.RecordedAt))
		if err != nil {
			return fmt.Errorf("portal: answer %s sent: %w", m.ReplyID, err)
		}
	case *gateway.DeliveryEvidenceRecorded:
		if m.Channel != gateway.ChannelPortal || m.ReplyID == "" || !finalReplyKind(m.Kind) {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO portal_replies (tenant, reply_id, final) VALUES (?, ?, ?)
			ON CONFLICT (tenant, reply_id) DO UPDATE SET final = excluded.final WHERE portal_replies.final = ''`,
			e.Tenant, m.ReplyID, string(m.Kind))
		if err != nil {
			return fmt.Errorf("portal: answer %s %s: %w", m.ReplyID, m.Kind, err)
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// waitingReply is an answer sent and not yet acknowledged.
type waitingReply struct {
	seq             int64
	replyID         string
	platformReplyID string
	caseID          string
	sentAt          time.Time
}

// waitingReplies lists the tenant's waiting answers after seq, in the order
// they were sent.
func waitingReplies(ctx context.Context, db *sql.DB, tenant string, after int64, limit int) ([]waitingReply, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, reply_id, platform_reply_id, case_id, sent_at FROM portal_replies
		WHERE final = '' AND sent_at != '' AND tenant = ? AND seq > ? ORDER BY seq LIMIT ?`, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("portal: the waiting answers: %w", err)
	}
	defer rows.Close()
	var out []waitingReply
	for rows.Next() {
		var w waitingReply
		var at string
		if err := rows.Scan(&w.seq, &w.replyID, &w.platformReplyID, &w.caseID, &at); err != nil {
			return nil, err
		}
		if w.sentAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("portal: answer %s: sent at %q: %w", w.replyID, at, err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// replyWatch reads the event logs of waiting answers.
type replyWatch struct {
	in      *Inbound
	runner  *projection.Runner
	db      *sql.DB
	rec     replyEvidence
	horizon time.Duration
	base    time.Duration

	mu sync.Mutex
	// next is when each waiting answer is due again and the wait before
	// that; answers no longer waiting are dropped every round, so it holds
	// at most the waiting answers.
	next map[string]watchState
}

type watchState struct {
	due  time.Time
	wait time.Duration
}

// newReplyWatch is nil without the log, the state database or the evidence
// recorder (most tests of the intake).
func newReplyWatch(in *Inbound, rec replyEvidence) *replyWatch {
	d := in.deps
	if d.Log == nil || d.State == nil || d.Evidence == nil {
		return nil
	}
	return &replyWatch{in: in, db: d.State, rec: rec, horizon: in.cfg.replyHorizon(), base: in.cfg.pollInterval(),
		runner: &projection.Runner{Log: d.Log, DB: d.State, Registry: gateway.NewRegistry(), Logger: d.Logger},
		next:   map[string]watchState{}}
}

// run looks every poll_interval until ctx ends.
func (w *replyWatch) run(ctx context.Context) error {
	if err := w.runner.Setup(ctx, SentReplies{}); err != nil {
		return fmt.Errorf("portal: reply watch: %w", err)
	}
	for {
		if _, err := w.Round(ctx); err != nil && ctx.Err() == nil {
			w.in.log.Warn("watching the answers' event logs", "err", err)
		}
		t := time.NewTimer(w.base)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Round catches SentReplies up with the log and reads the event log of
// every waiting answer that is due, at most maxReplyChecks; it returns how
// many it read.
func (w *replyWatch) Round(ctx context.Context) (int, error) {
	if err := w.runner.CatchUp(ctx, SentReplies{}); err != nil {
		return 0, fmt.Errorf("portal: reply watch: %w", err)
	}
	now := w.in.deps.Now()
	waiting := map[string]bool{}
	checks := 0
	var errs []error
	for after := int64(0); ; {
		page, err := waitingReplies(ctx, w.db, w.in.deps.Tenant, after, replyPage)
		if err != nil {
			return checks, err
		}
		for _, r := range page {
			after = r.seq
			waiting[r.replyID] = true
			if checks >= maxReplyChecks || !w.due(r, now) {
				continue
			}
			checks++
			final, err := w.check(ctx, r)
			w.reschedule(r.replyID, now)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !final && now.Sub(r.sentAt) >= w.horizon {
				if err := w.expire(ctx, r); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if len(page) < replyPage {
			break
		}
	}
	w.mu.Lock()
	for id := range w.next {
		if !waiting[id] {
			delete(w.next, id)
		}
	}
	w.mu.Unlock()
	return checks, errors.Join(errs...)
}

// due: the first look one poll interval after sending (the outbound looked
// at sending), then after each wait; past the horizon, once more.
func (w *replyWatch) due(r waitingReply, now time.Time) bool {
	w.mu.Lock()
	st, ok := w.next[r.replyID]
	w.mu.Unlock()
	if !ok {
		return !now.Before(r.sentAt.Add(w.base)) || now.Sub(r.sentAt) >= w.horizon
	}
	return !now.Before(st.due)
}

// reschedule doubles the wait after each look, from poll_interval to at
// most maxReplyBackoff, and never past the horizon's end.
func (w *replyWatch) reschedule(replyID string, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.next[replyID]
	st.wait = min(max(w.base, 2*st.wait), maxReplyBackoff)
	st.due = now.Add(st.wait)
	w.next[replyID] = st
}

// check reads the answer's case and records what is new; final reports an
// accept-reply or reject-reply.
func (w *replyWatch) check(ctx context.Context, r waitingReply) (bool, error) {
	events, err := w.in.eventLog(ctx, r.caseID)
	if err != nil {
		return false, fmt.Errorf("answer %s (reply %s): reading case %s: %w", r.replyID, r.platformReplyID, r.caseID, err)
	}
	keys, keysErr := w.in.platformKeys(ctx, false)
	n, final := w.rec.record(ctx, r.replyID, r.platformReplyID, events, keys, keysErr)
	if n > 0 {
		w.in.log.Info("new events of an answer", "replyId", r.replyID, "fitconnectReplyId", r.platformReplyID, "recorded", n, "final", final)
	}
	return final, nil
}

// expire records that no acknowledgement came within the horizon; the
// evidence (kind expired, about the answer) opens a triage item.
func (w *replyWatch) expire(ctx context.Context, r waitingReply) error {
	ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelPortal, Kind: gateway.EvidenceExpired,
		References: []gateway.EvidenceReference{{Kind: "replyId", Value: r.replyID}, {Kind: "fitconnectReplyId", Value: r.platformReplyID}},
		Attester:   gateway.Attester{Role: "portal", Name: "FIT-Connect event log", ID: "case:" + r.caseID},
		AttestedAt: r.sentAt.Add(w.horizon).UTC(), EvidenceID: "fitconnect:no-acknowledgement:" + r.platformReplyID,
		Reason: fmt.Sprintf("no acknowledgement of the reply: neither accept-reply nor reject-reply in the case's event log within %s of sending",
			w.horizon)}
	rc, err := w.rec.evidence.Record(ctx, w.in.deps.Tenant, ev)
	if err != nil {
		return fmt.Errorf("answer %s: recording that no acknowledgement came: %w", r.replyID, err)
	}
	w.in.log.Warn("no acknowledgement of the reply within the horizon; the answer goes to triage", "replyId", r.replyID,
		"fitconnectReplyId", r.platformReplyID, "horizon", w.horizon, "linked", rc.Linked)
	return nil
}
