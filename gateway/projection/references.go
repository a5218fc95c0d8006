package projection

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// References is the index delivery evidence is linked by: for every tenant
// and channel, the ids a confirmation, receipt or status report can name a
// message or an answer by, and the stream (and answer) each belongs to.
// It indexes a MessageReceived's SenderMessageID and Transport.Coordinates,
// a ReplyRequested's ReplyID (the id an outbound that needs a private id of
// its own should use, since it is known before the answer is sent) and a
// ReplySent's ChannelMessageID. The lookup is one primary-key range, however
// long the log; gateway.EvidenceRecorder reads it through Links.
type References struct{}

// Name implements Projection.
func (References) Name() string { return "references" }

// Setup implements Projection.
func (References) Setup(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS message_refs (
		tenant TEXT NOT NULL, channel TEXT NOT NULL, ref TEXT NOT NULL,
		stream TEXT NOT NULL, reply_id TEXT NOT NULL, source TEXT NOT NULL,
		PRIMARY KEY (tenant, channel, ref, stream, reply_id, source)) STRICT, WITHOUT ROWID`)
	if err != nil {
		return fmt.Errorf("projection: create message_refs: %w", err)
	}
	return nil
}

// Reset implements Projection.
func (References) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM message_refs`)
	return err
}

// maxRefSize leaves out ids no evidence lookup would use (see
// gateway.EvidenceRecorder): a hostile sender cannot grow the index with
// megabyte Message-IDs.
const maxRefSize = 998

// Apply implements Projection.
func (References) Apply(ctx context.Context, tx Tx, e *eventstore.Event, p gateway.Payload) error {
	add := func(ch gateway.Channel, ref, replyID, source string) error {
		if ref == "" || len(ref) > maxRefSize {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO message_refs (tenant, channel, ref, stream, reply_id, source)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, e.Tenant, string(ch), ref, e.Stream, replyID, source)
		if err != nil {
			return fmt.Errorf("projection: index %s %q of %s: %w", source, ref, e.Stream, err)
		}
		return nil
	}
	switch m := p.(type) {
	case *gateway.MessageReceived:
		if err := add(m.Channel, m.SenderMessageID, "", "senderMessageId"); err != nil {
			return err
		}
		return add(m.Channel, m.Transport.Coordinates, "", "coordinates")
	case *gateway.ReplyRequested:
		return add(m.Channel, m.ReplyID, m.ReplyID, "replyId")
	case *gateway.ReplySent:
		return add(m.Channel, m.ChannelMessageID, m.ReplyID, "replyMessageId")
	}
	return nil
}

// Links reads References' index in db; it implements gateway.EvidenceLinks.
type Links struct {
	DB *sql.DB
}

// Links returns the messages and answers on channel ch whose id is id.
func (l Links) Links(ctx context.Context, tenant string, ch gateway.Channel, id string) ([]gateway.EvidenceLink, error) {
	rows, err := l.DB.QueryContext(ctx, `SELECT stream, reply_id, source FROM message_refs
		WHERE tenant = ? AND channel = ? AND ref = ? ORDER BY stream, reply_id, source LIMIT 16`, tenant, string(ch), id)
	if err != nil {
		return nil, fmt.Errorf("projection: look up %q: %w", id, err)
	}
	defer rows.Close()
	var out []gateway.EvidenceLink
	for rows.Next() {
		var link gateway.EvidenceLink
		if err := rows.Scan(&link.Stream, &link.ReplyID, &link.Source); err != nil {
			return nil, fmt.Errorf("projection: look up %q: %w", id, err)
		}
		out = append(out, link)
	}
	return out, rows.Err()
}

// NewEvidenceRecorder is the delivery-evidence recorder over the References
// index in runner's database: before it calls a reference unknown it catches
// the index up with the log. runner must have set References up.
func NewEvidenceRecorder(runner *Runner) *gateway.EvidenceRecorder {
	return &gateway.EvidenceRecorder{Log: runner.Log, Links: Links{DB: runner.DB},
		CatchUp: func(ctx context.Context) error { return runner.CatchUp(ctx, References{}) }}
}
