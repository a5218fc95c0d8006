package offices

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Inbox is the read model of the office queues and the triage queue: a
// projection of MessageReceived, MessageRouted, RoutingFailed,
// ProcessingFailed, MessageDelivered, MessageAcknowledged, the Reply* events,
// WebhookDelivered, WebhookFailed, DeliveryEvidenceRecorded, EEBOverdue,
// ContentErased, LegalHoldSet and LegalHoldReleased, with the eEB
// tasks of EGVP messages that ask for one (EEBTask). Dropping its tables and
// replaying the log rebuilds it identically (see Dump). Register it with a
// projection.Runner.
type Inbox struct {
	// Notifier, when set, is told after every committed batch of changes,
	// so that long polls and event streams wake without polling the
	// database.
	Notifier *Notifier
	// QueuedOrder takes each message's place in an office's queue from its
	// MessageQueued event in the office's stream (its StreamSeq), and lists
	// a message once both that and its MessageRouted are folded. A log of
	// several partitions needs it: events of different partitions reach
	// each gateway in another order, so an order of arrival would give each
	// gateway other positions and IMAP UIDs. Without it (the embedded log,
	// one partition, one total order) a message takes the next place when
	// its MessageRouted is folded, as logs from before MessageQueued expect.
	// The triage queue likewise: with QueuedOrder an item's place is its
	// first TriageQueued's StreamSeq (TriageQueue appends them), without it
	// the next place when the item is opened.
	QueuedOrder bool
	// EEBDueAfter is the site's period after receipt in which an eEB task is
	// due (default DefaultEEBDueAfter). A task's due date is fixed when its
	// receipt is folded: a changed period applies to messages received
	// afterwards, and to all once the read model is rebuilt.
	EEBDueAfter time.Duration
}

// Name implements projection.Projection.
func (in Inbox) Name() string {
	if in.QueuedOrder {
		return "office-inbox/queued"
	}
	return "office-inbox"
}

var inboxSchema = []string{
	// The receipt of every message, kept until it is routed: the office
	// rows copy it, so that an inbox listing is one indexed query.
	`CREATE TABLE IF NOT EXISTS inbox_received (
		tenant TEXT NOT NULL, stream TEXT NOT NULL, received TEXT NOT NULL DEFAULT '{}',
		report TEXT NOT NULL DEFAULT '',
		` + retentionColumnsDDL + `,
		PRIMARY KEY (tenant, stream)) STRICT`,
	`CREATE TABLE IF NOT EXISTS office_messages (
		office TEXT NOT NULL, tenant TEXT NOT NULL, stream TEXT NOT NULL,
		seq INTEGER,
		received_at TEXT NOT NULL DEFAULT '', channel TEXT NOT NULL DEFAULT '',
		sender TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',
		state TEXT NOT NULL,
		routed_at TEXT NOT NULL, routing TEXT NOT NULL,
		delivered_via TEXT NOT NULL DEFAULT '',
		acknowledged_by TEXT NOT NULL DEFAULT '', acknowledged_via TEXT NOT NULL DEFAULT '',
		acknowledged_at TEXT NOT NULL DEFAULT '',
		received TEXT NOT NULL DEFAULT '{}', report TEXT NOT NULL DEFAULT '',
		` + retentionColumnsDDL + `,
		PRIMARY KEY (office, tenant, stream)) STRICT`,
	`CREATE UNIQUE INDEX IF NOT EXISTS office_messages_seq ON office_messages (office, seq)`,
	`CREATE INDEX IF NOT EXISTS office_messages_stream ON office_messages (tenant, stream)`,
	// The places MessageQueued gave (QueuedOrder), whichever of it and the
	// MessageRouted was folded first.
	`CREATE TABLE IF NOT EXISTS office_queue (
		office TEXT NOT NULL, seq INTEGER NOT NULL, tenant TEXT NOT NULL, stream TEXT NOT NULL,
		PRIMARY KEY (office, seq), UNIQUE (office, tenant, stream)) STRICT`,
	// seq is NULL until the item's place is folded (QueuedOrder): an
	// item without one is not listed yet.
	`CREATE TABLE IF NOT EXISTS triage_items (
		tenant TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER,
		kind TEXT NOT NULL, reason TEXT NOT NULL, since TEXT NOT NULL,
		state TEXT NOT NULL, assigned_to TEXT NOT NULL DEFAULT '', assigned_by TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (tenant, stream)) STRICT`,
	// The places TriageQueued gave (QueuedOrder); an item's seq is the
	// first of its places, whichever of them and the item was folded first.
	`CREATE TABLE IF NOT EXISTS triage_queue (
		seq INTEGER NOT NULL PRIMARY KEY, tenant TEXT NOT NULL, stream TEXT NOT NULL, cause TEXT NOT NULL) STRICT`,
	`CREATE INDEX IF NOT EXISTS triage_queue_stream ON triage_queue (tenant, stream)`,
	`CREATE TABLE IF NOT EXISTS office_replies (
		reply_id TEXT NOT NULL PRIMARY KEY, tenant TEXT NOT NULL, stream TEXT NOT NULL,
		office TEXT NOT NULL, author TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL,
		subject TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
		error TEXT NOT NULL DEFAULT '', requested_at TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT`,
	`CREATE INDEX IF NOT EXISTS office_replies_stream ON office_replies (tenant, stream)`,
	// Delivery evidence about a message or its answers, in the order it
	// was recorded.
	`CREATE TABLE IF NOT EXISTS office_evidence (
		tenant TEXT NOT NULL, stream TEXT NOT NULL, event_id TEXT NOT NULL,
		part INTEGER NOT NULL, pos INTEGER NOT NULL,
		recorded_at TEXT NOT NULL, evidence TEXT NOT NULL,
		PRIMARY KEY (tenant, stream, event_id)) STRICT`,
}

// Setup implements projection.Projection.
func (Inbox) Setup(ctx context.Context, tx *sql.Tx) error {
	if err := dropOldSchema(ctx, tx); err != nil {
		return err
	}
	for _, s := range append(slices.Clone(inboxSchema), eebSchema[0]) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("offices: create inbox tables: %w", err)
		}
	}
	if err := addOverdueColumn(ctx, tx); err != nil {
		return err
	}
	if err := addRetentionColumns(ctx, tx); err != nil {
		return err
	}
	for _, s := range eebSchema[1:] {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("offices: create inbox tables: %w", err)
		}
	}
	return nil
}

// inboxTables are every table of the read model.
var inboxTables = []string{"inbox_received", "office_messages", "office_queue", "triage_items", "triage_queue", "office_replies", "office_evidence", "office_eeb"}

// dropOldSchema drops the tables of a state database made before queue
// places could come from MessageQueued (office_messages.seq NOT NULL) or
// triage places from TriageQueued (triage_items.seq NOT NULL), or before the
// eEB tasks (office_messages without office_eeb), and their positions, so
// that the read model is rebuilt from the log.
func dropOldSchema(ctx context.Context, tx *sql.Tx) error {
	old := false
	for _, table := range []string{"office_messages", "triage_items"} {
		var notNull int
		err := tx.QueryRowContext(ctx, `SELECT "notnull" FROM pragma_table_info(?) WHERE name = 'seq'`, table).Scan(&notNull)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("offices: inspect the inbox schema: %w", err)
		}
		old = old || (err == nil && notNull != 0)
		if table == "office_messages" && err == nil {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT "notnull" FROM pragma_table_info(?) WHERE name = 'due'`, "office_eeb").Scan(&n)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("offices: inspect the inbox schema: %w", err)
			}
			old = old || errors.Is(err, sql.ErrNoRows)
		}
	}
	if !old {
		return nil
	}
	for _, t := range inboxTables {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return fmt.Errorf("offices: drop old %s: %w", t, err)
		}
	}
	return resetInboxPosition(ctx, tx)
}

// Reset implements projection.Projection.
func (Inbox) Reset(ctx context.Context, tx *sql.Tx) error {
	for _, t := range inboxTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
			return fmt.Errorf("offices: reset %s: %w", t, err)
		}
	}
	return nil
}

// Message states in an office queue.
const (
	StateNew          = "new"
	StateDelivered    = "delivered"
	StateAcknowledged = "acknowledged"
)

// Apply implements projection.Projection.
func (in Inbox) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	at := e.RecordedAt.UTC().Format(time.RFC3339Nano)
	if err := in.applyEEB(ctx, tx, e, p); err != nil {
		return fmt.Errorf("offices: inbox: eEB task: %s %s: %w", e.Type, e.ID, err)
	}
	var err error
	switch m := p.(type) {
	case *gateway.MessageReceived:
		err = applyReceived(ctx, tx, e, m)
	case *gateway.MessageRouted:
		err = applyRouted(ctx, tx, e, m, at, in.QueuedOrder)
	case *gateway.MessageQueued:
		err = applyQueued(ctx, tx, e, m, in.QueuedOrder)
	case *gateway.TriageQueued:
		err = applyTriageQueued(ctx, tx, e, m, in.QueuedOrder)
	case *gateway.RoutingFailed:
		err = in.openTriage(ctx, tx, e, "routing", m.Reason, at)
	case *gateway.ProcessingFailed:
		err = in.openTriage(ctx, tx, e, "processing", m.Handler+": "+m.Error, at)
	case *gateway.MessageDelivered:
		err = applyDelivered(ctx, tx, e, m)
	case *gateway.WebhookDelivered:
		err = applyDelivered(ctx, tx, e, &gateway.MessageDelivered{Office: m.Office, Via: "webhook", Target: m.URL})
	case *gateway.WebhookFailed:
		// A case system that never got the message must not be missed: the
		// message stays in the office's queue, and the mailroom sees the
		// failed push in triage.
		err = in.openTriage(ctx, tx, e, "webhook", fmt.Sprintf("webhook %s of office %s failed: %s", m.URL, m.Office, m.Error), at)
	case *gateway.SignaturesVerified:
		err = applyVerified(ctx, tx, e, m)
	case *gateway.MessageAcknowledged:
		_, err = tx.ExecContext(ctx, `UPDATE office_messages SET state = ?, acknowledged_by = ?, acknowledged_via = ?, acknowledged_at = ?
			WHERE office = ? AND tenant = ? AND stream = ? AND state != ?`,
			StateAcknowledged, m.By, m.Via, at, m.Office, e.Tenant, e.Stream, StateAcknowledged)
	case *gateway.ReplyRequested:
		_, err = tx.ExecContext(ctx, `INSERT INTO office_replies (reply_id, tenant, stream, office, author, channel, recipient, subject, state, requested_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?) ON CONFLICT (reply_id) DO NOTHING`,
			m.ReplyID, e.Tenant, e.Stream, m.Office, m.Author, string(m.Channel), m.To.Address, m.Subject, at, at)
	case *gateway.ReplySent:
		_, err = tx.ExecContext(ctx, `UPDATE office_replies SET state = 'sent', attempts = ?, error = '', updated_at = ? WHERE reply_id = ?`,
			m.Attempt, at, m.ReplyID)
		if err == nil {
			err = resolveUncertain(ctx, tx, e)
		}
	case *gateway.ReplyResendOrdered:
		_, err = tx.ExecContext(ctx, `UPDATE office_replies SET state = 'retrying', updated_at = ? WHERE reply_id = ? AND state != 'sent'`, at, m.ReplyID)
		if err == nil {
			err = resolveUncertain(ctx, tx, e)
		}
	case *gateway.ReplyFailed:
		state := "retrying"
		if m.Permanent {
			state = "failed"
		}
		_, err = tx.ExecContext(ctx, `UPDATE office_replies SET state = ?, attempts = ?, error = ?, updated_at = ? WHERE reply_id = ? AND state != 'sent'`,
			state, m.Attempt, m.Error, at, m.ReplyID)
		switch {
		case err == nil && m.Uncertain:
			// Not sent again blindly: the mailroom checks the peer and
			// marks it sent or orders a resend.
			err = in.openTriage(ctx, tx, e, TriageReplyUncertain, m.Error, at)
		case err == nil && m.Permanent:
			// An answer that cannot be sent must not fail silently: the
			// mailroom sees it in triage and takes another way.
			err = in.openTriage(ctx, tx, e, "reply", fmt.Sprintf("answer %s could not be sent: %s", m.ReplyID, m.Error), at)
		}
	case *gateway.DeliveryEvidenceRecorded:
		err = in.applyEvidence(ctx, tx, e, m, at)
	case *gateway.ContentErased:
		err = applyErased(ctx, tx, e, m)
	case *gateway.LegalHoldSet:
		err = applyHold(ctx, tx, e, m)
	case *gateway.LegalHoldReleased:
		err = setRetention(ctx, tx, e, `hold_since = '', hold_case = ''`)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("offices: inbox: %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// TriageReplyUncertain is the kind of the triage item of an answer that may
// have been sent (ReplyFailed with Uncertain): its state becomes "resolved"
// when it is marked sent or a resend is ordered.
const TriageReplyUncertain = "reply-uncertain"

// resolveUncertain closes the stream's open item about an answer that may
// have been sent, once a person decided.
func resolveUncertain(ctx context.Context, tx projection.Tx, e *eventstore.Event) error {
	_, err := tx.ExecContext(ctx, `UPDATE triage_items SET state = 'resolved' WHERE tenant = ? AND stream = ? AND kind = ? AND state = 'open'`,
		e.Tenant, e.Stream, TriageReplyUncertain)
	return err
}

// Committed implements projection.Committer: long polls, event streams and
// IMAP sessions wake once a batch is committed, so that what they read
// then includes it.
func (in Inbox) Committed() {
	if in.Notifier != nil {
		in.Notifier.Broadcast()
	}
}

func applyReceived(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageReceived) error {
	j, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO inbox_received (tenant, stream, received) VALUES (?, ?, ?)
		ON CONFLICT (tenant, stream) DO UPDATE SET received = excluded.received`, e.Tenant, e.Stream, string(j))
	return err
}

// applyVerified keeps the verification summary for the office queues; it
// may arrive before or after the routing decision.
func applyVerified(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.SignaturesVerified) error {
	j, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO inbox_received (tenant, stream, report) VALUES (?, ?, ?)
		ON CONFLICT (tenant, stream) DO UPDATE SET report = excluded.report`, e.Tenant, e.Stream, string(j)); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE office_messages SET report = ? WHERE tenant = ? AND stream = ?`, string(j), e.Tenant, e.Stream)
	return err
}

func applyRouted(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageRouted, at string, queued bool) error {
	received, report := "{}", ""
	var ret retentionRow
	err := tx.QueryRowContext(ctx, `SELECT received, report, `+retentionColumns+` FROM inbox_received WHERE tenant = ? AND stream = ?`,
		e.Tenant, e.Stream).Scan(append([]any{&received, &report}, ret.dest()...)...)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var rec gateway.MessageReceived
	if err := gateway.UnmarshalReceived([]byte(received), &rec); err != nil {
		return fmt.Errorf("decode stored receipt: %w", err)
	}
	routing, err := json.Marshal(Routing{Rule: m.Rule, RulesVersion: m.RulesVersion, DecidedBy: m.DecidedBy, Reason: m.Reason, EventID: e.ID})
	if err != nil {
		return err
	}
	receivedAt := ""
	if !rec.ReceivedAt.IsZero() {
		receivedAt = rec.ReceivedAt.UTC().Format(time.RFC3339Nano)
	}
	place := `(SELECT COALESCE(MAX(seq), 0) + 1 FROM office_messages WHERE office = ?1)`
	if queued {
		place = `(SELECT seq FROM office_queue WHERE office = ?1 AND tenant = ?2 AND stream = ?3)`
	}
	for _, office := range m.Offices {
		_, err := tx.ExecContext(ctx, `INSERT INTO office_messages (office, tenant, stream, seq, received_at, channel, sender, subject,
				state, routed_at, routing, received, report, `+retentionColumns+`)
			VALUES (?1, ?2, ?3, `+place+`, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
			ON CONFLICT (office, tenant, stream) DO NOTHING`,
			office, e.Tenant, e.Stream, receivedAt, string(rec.Channel), rec.From.Address, rec.Subject,
			StateNew, at, string(routing), received, report, ret.ErasedAt, ret.ErasedRule, ret.ErasedReason, ret.HoldSince, ret.HoldCase)
		if err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE triage_items SET state = 'assigned', assigned_to = ?, assigned_by = ? WHERE tenant = ? AND stream = ?`,
		strings.Join(m.Offices, ","), m.DecidedBy, e.Tenant, e.Stream)
	return err
}

// applyQueued keeps the place a MessageQueued gave and sets it on the
// office's row when the MessageRouted came first.
func applyQueued(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageQueued, queued bool) error {
	if !queued {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO office_queue (office, seq, tenant, stream) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, m.Office, e.StreamSeq, e.Tenant, m.Stream); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE office_messages SET seq = ? WHERE office = ? AND tenant = ? AND stream = ? AND seq IS NULL`,
		e.StreamSeq, m.Office, e.Tenant, m.Stream)
	return err
}

// openTriage opens (or reopens) the triage item of the event's stream. An
// item keeps the place it got first. With QueuedOrder that place is the
// first TriageQueued of the stream (none yet: not listed until it is
// folded); otherwise the next place in the order of folding, which on a
// log of one partition is the log's order.
func (in Inbox) openTriage(ctx context.Context, tx projection.Tx, e *eventstore.Event, kind, reason, at string) error {
	place := `(SELECT COALESCE(MAX(seq), 0) + 1 FROM triage_items)`
	if in.QueuedOrder {
		place = `(SELECT MIN(seq) FROM triage_queue WHERE tenant = ?1 AND stream = ?2)`
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO triage_items (tenant, stream, seq, kind, reason, since, state)
		VALUES (?1, ?2, `+place+`, ?3, ?4, ?5, 'open')
		ON CONFLICT (tenant, stream) DO UPDATE SET kind = excluded.kind, reason = excluded.reason, state = 'open',
			assigned_to = '', assigned_by = ''`,
		e.Tenant, e.Stream, kind, reason, at)
	return err
}

// applyTriageQueued keeps the place a TriageQueued gave and lowers the
// item's seq to it, so that the item's place is its first TriageQueued's
// whatever order the node folds them in.
func applyTriageQueued(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.TriageQueued, queued bool) error {
	if !queued {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO triage_queue (seq, tenant, stream, cause) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, e.StreamSeq, e.Tenant, m.Stream, m.Cause); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE triage_items SET seq = ?1 WHERE tenant = ?2 AND stream = ?3 AND (seq IS NULL OR seq > ?1)`,
		e.StreamSeq, e.Tenant, m.Stream)
	return err
}

func applyDelivered(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.MessageDelivered) error {
	var via string
	err := tx.QueryRowContext(ctx, `SELECT delivered_via FROM office_messages WHERE office = ? AND tenant = ? AND stream = ?`,
		m.Office, e.Tenant, e.Stream).Scan(&via)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // delivered to an office the message was not routed to: nothing to show
	}
	if err != nil {
		return err
	}
	vias := splitList(via)
	if !contains(vias, m.Via) {
		vias = append(vias, m.Via)
	}
	_, err = tx.ExecContext(ctx, `UPDATE office_messages SET delivered_via = ?,
		state = CASE WHEN state = ? THEN ? ELSE state END WHERE office = ? AND tenant = ? AND stream = ?`,
		strings.Join(vias, ","), StateNew, StateDelivered, m.Office, e.Tenant, e.Stream)
	return err
}

// applyEvidence keeps linked evidence for the message's view and sends
// evidence no message matched to triage, where the mailroom can find its
// message by hand.
func (in Inbox) applyEvidence(ctx context.Context, tx projection.Tx, e *eventstore.Event, m *gateway.DeliveryEvidenceRecorded, at string) error {
	if m.Unlinked != "" {
		return in.openTriage(ctx, tx, e, "evidence", fmt.Sprintf("%s evidence (%s) from %s: %s", m.Channel, m.Kind, m.Attester.Name, m.Unlinked), at)
	}
	j, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if answerExpired(m) {
		// An answer nobody acknowledged in the time its channel allows may
		// not have reached the citizen: the mailroom decides what to do.
		if err := in.openTriage(ctx, tx, e, "reply", fmt.Sprintf("answer %s: %s (%s)", m.ReplyID, m.Reason, m.Attester.Name), at); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO office_evidence (tenant, stream, event_id, part, pos, recorded_at, evidence)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		e.Tenant, e.Stream, e.ID, e.Position.Partition, e.Position.Offset, at, string(j))
	return err
}

// answerExpired reports linked evidence that an answer expired: not
// acknowledged within the time its channel allows (a FIT-Connect reply
// without accept-reply or reject-reply). It opens a triage item.
func answerExpired(m *gateway.DeliveryEvidenceRecorded) bool {
	return m.Unlinked == "" && m.ReplyID != "" && m.Kind == gateway.EvidenceExpired
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Routing is how a message came to an office.
type Routing struct {
	Rule         string `json:"rule,omitempty"`
	RulesVersion string `json:"rulesVersion,omitempty"`
	DecidedBy    string `json:"decidedBy"`
	Reason       string `json:"reason,omitempty"`
	// EventID is the MessageRouted event's id.
	EventID string `json:"eventId"`
}

// Message is a message in an office queue.
type Message struct {
	Office string `json:"office"`
	Tenant string `json:"tenant"`
	Stream string `json:"stream"`
	// Seq orders the office's queue; ListInbox's since is a Seq.
	Seq     int64           `json:"seq"`
	Channel gateway.Channel `json:"channel"`
	// SenderMessageID and Coordinates are the receipt's
	// (MessageReceived.SenderMessageID and Transport.Coordinates).
	SenderMessageID string            `json:"senderMessageId,omitempty"`
	Coordinates     string            `json:"coordinates,omitempty"`
	From            gateway.Address   `json:"from"`
	To              []gateway.Address `json:"to,omitempty"`
	Cc              []gateway.Address `json:"cc,omitempty"`
	Subject         string            `json:"subject"`
	ReceivedAt      time.Time         `json:"receivedAt"`
	State           string            `json:"state"`
	RoutedAt        time.Time         `json:"routedAt"`
	Routing         Routing           `json:"routing"`
	DeliveredVia    []string          `json:"deliveredVia,omitempty"`
	AcknowledgedBy  string            `json:"acknowledgedBy,omitempty"`
	AcknowledgedVia string            `json:"acknowledgedVia,omitempty"`
	AcknowledgedAt  *time.Time        `json:"acknowledgedAt,omitempty"`
	Raw             blob.Ref          `json:"raw"`
	Parts           []gateway.Part    `json:"parts,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Problems        []string          `json:"problems,omitempty"`
	// DeMail is the provider's evidence of a message taken in on the
	// De-Mail channel (sender as confirmed, dispatch options, integrity
	// verdict, qualification, written form); absent on every other channel.
	DeMail *gateway.DeMailEvidence `json:"deMail,omitempty"`
	// EGVP is what the EGVP message layer read from a message taken in on the
	// EGVP channel: SAFE-IDs, both Aktenzeichen, the XJustiz message type and
	// the proof of origin (origin vhn, sender-signed or none, with its reason),
	// the trust level an office weighs the message by; absent on every other.
	EGVP *gateway.EGVPFields `json:"egvp,omitempty"`
	// Report is the SignaturesVerified summary (with the references to the
	// full report and the Prüfprotokoll) once signatures were verified;
	// absent until then.
	Report *gateway.SignaturesVerified `json:"report,omitempty"`
	// Evidence is the delivery evidence about the message and its answers,
	// in the order it was recorded. GetMessage fills it; the queue
	// listings leave it out.
	Evidence []Evidence `json:"evidence,omitempty"`
	// EEB is the court's request for an eEB as a task, on an EGVP message
	// that asks for one; absent on every other.
	EEB *EEBTask `json:"eeb,omitempty"`
	// Erased says when and why the message's contents were erased
	// (ContentErased); absent while they are kept. Raw, Parts and Report
	// still name the erased blobs by hash, but reading them fails.
	Erased *Erasure `json:"erased,omitempty"`
	// Hold is the legal hold on the message while it lasts; absent
	// without one and once it is released.
	Hold *Hold `json:"legalHold,omitempty"`
}

// Evidence is one piece of delivery evidence as an office sees it: the
// DeliveryEvidenceRecorded payload (ReplyID set when it is about an answer)
// with the event's id and the time the gateway recorded it.
type Evidence struct {
	EventID    string    `json:"eventId"`
	RecordedAt time.Time `json:"recordedAt"`
	gateway.DeliveryEvidenceRecorded
}

// ListEvidence returns the delivery evidence about a message and its
// answers, in the order it was recorded.
func ListEvidence(ctx context.Context, db *sql.DB, tenant, stream string) ([]Evidence, error) {
	rows, err := db.QueryContext(ctx, `SELECT event_id, recorded_at, evidence FROM office_evidence
		WHERE tenant = ? AND stream = ? ORDER BY part, pos`, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("offices: evidence of %s: %w", stream, err)
	}
	defer rows.Close()
	var out []Evidence
	for rows.Next() {
		var ev Evidence
		var at, j string
		if err := rows.Scan(&ev.EventID, &at, &j); err != nil {
			return nil, fmt.Errorf("offices: evidence of %s: %w", stream, err)
		}
		if err := json.Unmarshal([]byte(j), &ev.DeliveryEvidenceRecorded); err != nil {
			return nil, fmt.Errorf("offices: decode evidence %s of %s: %w", ev.EventID, stream, err)
		}
		ev.RecordedAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// ErrNotFound means the office has no such message.
var ErrNotFound = errors.New("offices: no such message in this office")

const messageColumns = `m.office, m.tenant, m.stream, m.seq, m.state, m.routed_at, m.routing, m.delivered_via,
	m.acknowledged_by, m.acknowledged_via, m.acknowledged_at, m.received, m.report,
	m.erased_at, m.erased_rule, m.erased_reason, m.hold_since, m.hold_case, ` + eebColumns

// messageFrom is the FROM clause messageColumns read.
const messageFrom = ` FROM office_messages m LEFT JOIN office_eeb e ON e.tenant = m.tenant AND e.stream = m.stream`

// ListInbox returns the office's messages with Seq above since, oldest first.
func ListInbox(ctx context.Context, db *sql.DB, office string, since int64) ([]Message, error) {
	return ListInboxPage(ctx, db, Query{Office: office, Since: since})
}

// Query selects messages of an office queue.
type Query struct {
	Office string
	Since  int64
	// Limit caps the result (0: no limit).
	Limit int
	// State, when set, selects one state.
	State string
	// EEB, when set, selects messages by their eEB task (EEBFilterOpen,
	// EEBFilterRequested or a task state) and orders them by due date
	// instead of Seq; Since still selects Seq above it.
	EEB string
}

// ListInboxPage returns a page of an office's queue, oldest first.
func ListInboxPage(ctx context.Context, db *sql.DB, q Query) ([]Message, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	eeb, eebArgs, ok := eebFilter(q.EEB)
	if !ok {
		return nil, fmt.Errorf("offices: list %s: unknown eEB filter %q", q.Office, q.EEB)
	}
	order := ` ORDER BY m.seq`
	if q.EEB != "" {
		order = ` ORDER BY e.due, m.seq`
	}
	args := append([]any{q.Office, q.Since, q.State, q.State}, eebArgs...)
	rows, err := db.QueryContext(ctx, `SELECT `+messageColumns+messageFrom+`
		WHERE m.office = ? AND m.seq > ? AND (? = '' OR m.state = ?)`+eeb+order+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("offices: list %s: %w", q.Office, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("offices: list %s: %w", q.Office, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("offices: list %s: %w", q.Office, err)
	}
	return out, nil
}

// GetMessage returns one message of an office's queue, or ErrNotFound.
func GetMessage(ctx context.Context, db *sql.DB, office, stream string) (Message, error) {
	row := db.QueryRowContext(ctx, `SELECT `+messageColumns+messageFrom+` WHERE m.office = ? AND m.stream = ?`, office, stream)
	m, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("offices: get %s/%s: %w", office, stream, err)
	}
	if m.Evidence, err = ListEvidence(ctx, db, m.Tenant, stream); err != nil {
		return Message{}, err
	}
	return m, nil
}

// LatestSeq returns the highest Seq in the office's queue (0 when empty).
func LatestSeq(ctx context.Context, db *sql.DB, office string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM office_messages WHERE office = ?`, office).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("offices: latest of %s: %w", office, err)
	}
	return n, nil
}

type scanner interface{ Scan(...any) error }

func scanMessage(s scanner) (Message, error) {
	var m Message
	var routedAt, routing, via, ackAt, received, report string
	var eeb eebScan
	var ret retentionRow
	dest := append([]any{&m.Office, &m.Tenant, &m.Stream, &m.Seq, &m.State, &routedAt, &routing, &via,
		&m.AcknowledgedBy, &m.AcknowledgedVia, &ackAt, &received, &report}, ret.dest()...)
	if err := s.Scan(append(dest, eeb.dest()...)...); err != nil {
		return Message{}, err
	}
	m.Erased, m.Hold = ret.erasure(), ret.hold()
	var err error
	if m.EEB, err = eeb.task(); err != nil {
		return Message{}, fmt.Errorf("%s: %w", m.Stream, err)
	}
	var rec gateway.MessageReceived
	if err := gateway.UnmarshalReceived([]byte(received), &rec); err != nil {
		return Message{}, fmt.Errorf("decode receipt of %s: %w", m.Stream, err)
	}
	if err := json.Unmarshal([]byte(routing), &m.Routing); err != nil {
		return Message{}, fmt.Errorf("decode routing of %s: %w", m.Stream, err)
	}
	m.Channel, m.SenderMessageID, m.Coordinates = rec.Channel, rec.SenderMessageID, rec.Transport.Coordinates
	m.From, m.To, m.Cc, m.DeMail, m.EGVP = rec.From, rec.To, rec.Cc, rec.DeMail, rec.EGVP
	m.Subject, m.ReceivedAt, m.Raw, m.Parts, m.Metadata, m.Problems = rec.Subject, rec.ReceivedAt, rec.Raw, rec.Parts, rec.Metadata, rec.Problems
	m.RoutedAt, _ = time.Parse(time.RFC3339Nano, routedAt)
	m.DeliveredVia = splitList(via)
	if ackAt != "" {
		t, _ := time.Parse(time.RFC3339Nano, ackAt)
		m.AcknowledgedAt = &t
	}
	if report != "" {
		m.Report = &gateway.SignaturesVerified{}
		if err := json.Unmarshal([]byte(report), m.Report); err != nil {
			return Message{}, fmt.Errorf("decode report of %s: %w", m.Stream, err)
		}
	}
	return m, nil
}

// Reply is an answer an office asked to send, and what became of it.
type Reply struct {
	ReplyID     string    `json:"replyId"`
	Office      string    `json:"office"`
	Author      string    `json:"author"`
	Channel     string    `json:"channel"`
	To          string    `json:"to"`
	Subject     string    `json:"subject"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
}

// ListReplies returns the replies an office requested to a message.
func ListReplies(ctx context.Context, db *sql.DB, office, stream string) ([]Reply, error) {
	rows, err := db.QueryContext(ctx, `SELECT reply_id, office, author, channel, recipient, subject, state, attempts, error, requested_at
		FROM office_replies WHERE office = ? AND stream = ? ORDER BY requested_at, reply_id`, office, stream)
	if err != nil {
		return nil, fmt.Errorf("offices: replies of %s: %w", stream, err)
	}
	defer rows.Close()
	var out []Reply
	for rows.Next() {
		var r Reply
		var at string
		if err := rows.Scan(&r.ReplyID, &r.Office, &r.Author, &r.Channel, &r.To, &r.Subject, &r.State, &r.Attempts, &r.Error, &at); err != nil {
			return nil, fmt.Errorf("offices: replies of %s: %w", stream, err)
		}
		r.RequestedAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// TriageItem is a message waiting for the mailroom.
type TriageItem struct {
	Tenant string `json:"tenant"`
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
	// Kind is "routing" (no rule placed it), "processing" (a handler kept
	// failing on it), "reply" (an answer failed for good), "webhook" (a
	// push to an office's case system failed for good) or "evidence"
	// (delivery evidence no message or answer matched; the item's stream is
	// the evidence's own), "reply-uncertain" (an answer may have been sent;
	// a person checks the peer) or "eeb-overdue" (a court's eEB request passed its
	// due date unanswered; state "answered" once the office answers).
	Kind       string    `json:"kind"`
	Reason     string    `json:"reason"`
	Since      time.Time `json:"since"`
	State      string    `json:"state"`
	AssignedTo string    `json:"assignedTo,omitempty"`
	AssignedBy string    `json:"assignedBy,omitempty"`
	// Received is the message's receipt, when there is one.
	Received *gateway.MessageReceived `json:"received,omitempty"`
	// EEB is the message's eEB task, when it asks for one: the mailroom
	// sees that a court waits while the item is open.
	EEB *EEBTask `json:"eeb,omitempty"`
}

// ListTriage returns triage items with Seq above since, oldest first; open
// only unless all.
func ListTriage(ctx context.Context, db *sql.DB, since int64, all bool, limit int) ([]TriageItem, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.QueryContext(ctx, `SELECT t.tenant, t.stream, t.seq, t.kind, t.reason, t.since, t.state, t.assigned_to, t.assigned_by,
			COALESCE(r.received, ''), `+eebColumns+`
		FROM triage_items t LEFT JOIN inbox_received r ON r.tenant = t.tenant AND r.stream = t.stream
			LEFT JOIN office_eeb e ON e.tenant = t.tenant AND e.stream = t.stream
		WHERE t.seq > ? AND (? OR t.state = 'open') ORDER BY t.seq LIMIT ?`, since, all, limit)
	if err != nil {
		return nil, fmt.Errorf("offices: list triage: %w", err)
	}
	defer rows.Close()
	var out []TriageItem
	for rows.Next() {
		it, err := scanTriage(rows)
		if err != nil {
			return nil, fmt.Errorf("offices: list triage: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// GetTriage returns the triage item of a stream, or ErrNotFound.
func GetTriage(ctx context.Context, db *sql.DB, stream string) (TriageItem, error) {
	row := db.QueryRowContext(ctx, `SELECT t.tenant, t.stream, COALESCE(t.seq, 0), t.kind, t.reason, t.since, t.state, t.assigned_to, t.assigned_by,
			COALESCE(r.received, ''), `+eebColumns+`
		FROM triage_items t LEFT JOIN inbox_received r ON r.tenant = t.tenant AND r.stream = t.stream
			LEFT JOIN office_eeb e ON e.tenant = t.tenant AND e.stream = t.stream WHERE t.stream = ?`, stream)
	it, err := scanTriage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return TriageItem{}, ErrNotFound
	}
	if err != nil {
		return TriageItem{}, fmt.Errorf("offices: triage item %s: %w", stream, err)
	}
	return it, nil
}

func scanTriage(s scanner) (TriageItem, error) {
	var it TriageItem
	var since, received string
	var eeb eebScan
	if err := s.Scan(append([]any{&it.Tenant, &it.Stream, &it.Seq, &it.Kind, &it.Reason, &since, &it.State, &it.AssignedTo, &it.AssignedBy,
		&received}, eeb.dest()...)...); err != nil {
		return it, err
	}
	var err error
	if it.EEB, err = eeb.task(); err != nil {
		return it, fmt.Errorf("%s: %w", it.Stream, err)
	}
	it.Since, _ = time.Parse(time.RFC3339Nano, since)
	if received != "" {
		it.Received = &gateway.MessageReceived{}
		if err := gateway.UnmarshalReceived([]byte(received), it.Received); err != nil {
			return it, fmt.Errorf("decode receipt of %s: %w", it.Stream, err)
		}
	}
	return it, nil
}

// Dump renders the whole read model as text in key order; two dumps are
// equal when a rebuild reproduced the same state. The places of the office
// rows and triage items are left out, since without QueuedOrder they depend
// on how the partitions of a partitioned log interleave; the places
// MessageQueued and TriageQueued gave are in (office_queue, triage_queue),
// and they do not.
func Dump(ctx context.Context, db *sql.DB) (string, error) {
	var b strings.Builder
	queries := []string{
		`SELECT 'received', tenant, stream, json_array(received, report, ` + retentionColumns + `) FROM inbox_received ORDER BY tenant, stream`,
		`SELECT 'office', office, stream, json_array(tenant, received_at, channel, sender, subject, state, routed_at, routing,
			delivered_via, acknowledged_by, acknowledged_via, acknowledged_at, received, report, ` + retentionColumns + `)
			FROM office_messages ORDER BY office, tenant, stream`,
		`SELECT 'queue', office, stream, json_array(tenant, seq) FROM office_queue ORDER BY office, seq`,
		`SELECT 'triage', tenant, stream, json_array(kind, reason, since, state, assigned_to, assigned_by) FROM triage_items ORDER BY tenant, stream`,
		`SELECT 'triage-queue', seq, stream, json_array(tenant, cause) FROM triage_queue ORDER BY seq`,
		`SELECT 'reply', reply_id, stream, json_array(tenant, office, author, channel, recipient, subject, state, attempts, error, requested_at, updated_at)
			FROM office_replies ORDER BY reply_id`,
		`SELECT 'evidence', event_id, stream, json_array(tenant, recorded_at, evidence) FROM office_evidence ORDER BY tenant, stream, event_id`,
		`SELECT 'eeb', tenant, stream, json_array(documents, due, status, decision, reply_id, answered_by, answered_office, answered_at, sent_at, error, overdue_at)
			FROM office_eeb ORDER BY tenant, stream`,
	}
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return "", fmt.Errorf("offices: dump: %w", err)
		}
		for rows.Next() {
			var a, c, d, e string
			if err := rows.Scan(&a, &c, &d, &e); err != nil {
				rows.Close()
				return "", fmt.Errorf("offices: dump: %w", err)
			}
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", a, c, d, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("offices: dump: %w", err)
		}
	}
	return b.String(), nil
}

// Notifier wakes waiters when the inbox changed. The zero value is not
// usable; make one with NewNotifier.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewNotifier returns a notifier.
func NewNotifier() *Notifier { return &Notifier{ch: make(chan struct{})} }

// Changed returns a channel that is closed at the next change. Take it
// before reading the database, so no change between the read and the wait
// is missed.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Broadcast wakes every waiter.
func (n *Notifier) Broadcast() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}
