package retention

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// contentRefs are the blobs of a payload that hold the message's contents
// and so personal data: the raw bytes and parts, the verification reports
// (they quote signers and contents), and the answers' bodies, attachments
// and rendered bytes. Timestamp tokens and delivery evidence carry no
// contents and are evidence, so they stay.
func contentRefs(p gateway.Payload) []blob.Ref {
	switch m := p.(type) {
	case *gateway.MessageReceived, *gateway.SignaturesVerified, *gateway.ReplyRequested, *gateway.ReplySent:
		return m.BlobRefs()
	}
	return nil
}

// history is what a message's stream says about its retention.
type history struct {
	// received is the MessageReceived event; nil when the stream has none
	// (not a message).
	received   *eventstore.Event
	receivedAt time.Time
	// offices are those of the last routing; none when never routed.
	offices []string
	held    bool
	// holdEvents counts LegalHoldSet and LegalHoldReleased events.
	holdEvents int
	holdCase   string
	erased     *gateway.ContentErased
	// contents are the message's content blobs, each once, in order.
	contents []blob.Ref
}

// readHistory folds a stream from the log: the authority every decision
// to erase is checked against, whatever the read model says.
func readHistory(ctx context.Context, log eventstore.Log, reg *gateway.Registry, tenant, stream string) (history, error) {
	evs, err := log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return history{}, fmt.Errorf("read stream %s: %w", stream, err)
	}
	var h history
	for i := range evs {
		e := &evs[i]
		if !reg.Known(e.Type) {
			continue
		}
		p, err := reg.Decode(e)
		if err != nil {
			return history{}, err
		}
		h.apply(e, p)
	}
	return h, nil
}

func (h *history) apply(e *eventstore.Event, p gateway.Payload) {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		h.received, h.receivedAt = e, receivedAt(e, m)
	case *gateway.MessageRouted:
		h.offices = slices.Clone(m.Offices)
	case *gateway.LegalHoldSet:
		h.held, h.holdCase = true, m.Case
		h.holdEvents++
	case *gateway.LegalHoldReleased:
		h.held, h.holdCase = false, ""
		h.holdEvents++
	case *gateway.ContentErased:
		h.erased = m
	}
	for _, r := range contentRefs(p) {
		if !slices.Contains(h.contents, r) {
			h.contents = append(h.contents, r)
		}
	}
}

// receivedAt is the Eingangszeitpunkt, or the log's time for a receipt
// that lacks it.
func receivedAt(e *eventstore.Event, m *gateway.MessageReceived) time.Time {
	if m.ReceivedAt.IsZero() {
		return e.RecordedAt
	}
	return m.ReceivedAt
}
