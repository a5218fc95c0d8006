package postbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Metadata keys of a postbox message (MessageReceived.Metadata). The routing
// rules can match on them like on any metadata.
const (
	MetaClient            = "postbox.client"
	MetaIdempotencyKey    = "postbox.idempotencyKey"
	MetaServiceIdentifier = "postbox.serviceIdentifier"
	// MetaHintPrefix precedes each routing hint's key.
	MetaHintPrefix = "postbox.hint."
)

// Answers is the read model of the clients' answer queues, folded from the
// log: a postbox MessageReceived names the client that submitted it; an
// office's ReplyRequested on the postbox channel becomes an answer of that
// client; the Outbound's acceptance (ReplySent) puts it in the queue; the
// client's pick-up (DeliveryEvidenceRecorded, kind retrieved) takes it off.
// Nothing of the queue lives only in memory, and the tables can be dropped
// and rebuilt from the log like every projection.
type Answers struct{}

// Name implements projection.Projection.
func (Answers) Name() string { return "postbox-answers" }

// Setup implements projection.Projection.
func (Answers) Setup(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS postbox_messages (
			tenant TEXT NOT NULL, stream TEXT NOT NULL, client TEXT NOT NULL,
			sender_ref TEXT NOT NULL, postbox_ref TEXT NOT NULL,
			PRIMARY KEY (tenant, stream)) STRICT, WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS postbox_answers (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			tenant TEXT NOT NULL, reply_id TEXT NOT NULL, stream TEXT NOT NULL, client TEXT NOT NULL,
			answer TEXT NOT NULL, requested_at TEXT NOT NULL,
			sent_at TEXT NOT NULL DEFAULT '', picked_up_at TEXT NOT NULL DEFAULT '',
			UNIQUE (tenant, reply_id)) STRICT`,
		`CREATE INDEX IF NOT EXISTS postbox_answers_queue ON postbox_answers (tenant, client, picked_up_at, seq)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("postbox: set up the answer queue: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (Answers) Reset(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{`DELETE FROM postbox_answers`, `DELETE FROM postbox_messages`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// storedAnswer is what the queue keeps of a ReplyRequested.
type storedAnswer struct {
	Subject     string         `json:"subject"`
	Body        blob.Ref       `json:"body"`
	Attachments []gateway.Part `json:"attachments,omitempty"`
	InReplyTo   string         `json:"inReplyTo,omitempty"`
	To          string         `json:"to"`
	Office      string         `json:"office"`
}

// Apply implements projection.Projection.
func (Answers) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		if m.Channel != gateway.ChannelPostbox || m.Metadata[MetaClient] == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO postbox_messages (tenant, stream, client, sender_ref, postbox_ref)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, e.Tenant, e.Stream, m.Metadata[MetaClient], m.SenderMessageID, m.From.Address)
		if err != nil {
			return fmt.Errorf("postbox: note message %s: %w", e.Stream, err)
		}
	case *gateway.ReplyRequested:
		if m.Channel != gateway.ChannelPostbox {
			return nil
		}
		var client string
		err := tx.QueryRowContext(ctx, `SELECT client FROM postbox_messages WHERE tenant = ? AND stream = ?`, e.Tenant, e.Stream).Scan(&client)
		if errors.Is(err, sql.ErrNoRows) {
			// An answer on the postbox to a message that did not come
			// through it: the Outbound refuses it, and there is no queue.
			return nil
		}
		if err != nil {
			return fmt.Errorf("postbox: client of %s: %w", e.Stream, err)
		}
		a, err := json.Marshal(storedAnswer{Subject: m.Subject, Body: m.Body, Attachments: m.Attachments,
			InReplyTo: m.InReplyTo, To: m.To.Address, Office: m.Office})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO postbox_answers (tenant, reply_id, stream, client, answer, requested_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, e.Tenant, m.ReplyID, e.Stream, client, string(a), stamp(e.RecordedAt))
		if err != nil {
			return fmt.Errorf("postbox: queue answer %s: %w", m.ReplyID, err)
		}
	case *gateway.ReplySent:
		if m.Channel != gateway.ChannelPostbox {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE postbox_answers SET sent_at = ? WHERE tenant = ? AND reply_id = ? AND sent_at = ''`,
			stamp(e.RecordedAt), e.Tenant, m.ReplyID)
		if err != nil {
			return fmt.Errorf("postbox: answer %s sent: %w", m.ReplyID, err)
		}
	case *gateway.DeliveryEvidenceRecorded:
		if m.Channel != gateway.ChannelPostbox || m.Kind != gateway.EvidenceRetrieved || m.ReplyID == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE postbox_answers SET picked_up_at = ? WHERE tenant = ? AND reply_id = ? AND picked_up_at = ''`,
			stamp(m.AttestedAt), e.Tenant, m.ReplyID)
		if err != nil {
			return fmt.Errorf("postbox: answer %s picked up: %w", m.ReplyID, err)
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// queuedAnswer is one row of the answer queue.
type queuedAnswer struct {
	seq        int64
	replyID    string
	stream     string
	senderRef  string
	postboxRef string
	answer     storedAnswer
	sentAt     string
	pickedUpAt string
}

const selectAnswer = `SELECT a.seq, a.reply_id, a.stream, m.sender_ref, m.postbox_ref, a.answer, a.sent_at, a.picked_up_at
	FROM postbox_answers a JOIN postbox_messages m ON m.tenant = a.tenant AND m.stream = a.stream`

func scanAnswer(row interface{ Scan(...any) error }) (queuedAnswer, error) {
	var q queuedAnswer
	var raw string
	if err := row.Scan(&q.seq, &q.replyID, &q.stream, &q.senderRef, &q.postboxRef, &raw, &q.sentAt, &q.pickedUpAt); err != nil {
		return q, err
	}
	if err := json.Unmarshal([]byte(raw), &q.answer); err != nil {
		return q, fmt.Errorf("postbox: answer %s: %w", q.replyID, err)
	}
	return q, nil
}

// pending lists the client's answers that were delivered into its queue and
// not picked up, oldest first, after the queue position after.
func pending(ctx context.Context, db *sql.DB, tenant, client string, after int64, limit int) ([]queuedAnswer, error) {
	rows, err := db.QueryContext(ctx, selectAnswer+` WHERE a.tenant = ? AND a.client = ? AND a.picked_up_at = '' AND a.sent_at != ''
		AND a.seq > ? ORDER BY a.seq LIMIT ?`, tenant, client, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postbox: list answers of %s: %w", client, err)
	}
	defer rows.Close()
	var out []queuedAnswer
	for rows.Next() {
		q, err := scanAnswer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// errNoAnswer is an answer that does not exist for this client: another
// client's answer is reported the same way, so that ids reveal nothing.
var errNoAnswer = errors.New("postbox: no such answer")

// lookup returns one of the client's answers, picked up or not, once it is
// delivered into the queue.
func lookup(ctx context.Context, db *sql.DB, tenant, client, replyID string) (queuedAnswer, error) {
	q, err := scanAnswer(db.QueryRowContext(ctx, selectAnswer+` WHERE a.tenant = ? AND a.reply_id = ? AND a.client = ? AND a.sent_at != ''`,
		tenant, replyID, client))
	if errors.Is(err, sql.ErrNoRows) {
		return q, errNoAnswer
	}
	if err != nil {
		return q, fmt.Errorf("postbox: answer %s: %w", replyID, err)
	}
	return q, nil
}
