package offices

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
)

// Ack is the outcome of Acknowledge.
type Ack struct {
	EventID string
	// Existing is true when the office had acknowledged the message before
	// (by whoever and however); the first acknowledgement stands.
	Existing bool
}

// Acknowledge appends a MessageAcknowledged for the office's copy of a
// message. Its id follows from the office and the MessageRouted event that
// placed the message there (gateway.Follow("ack/"+office, routed, 0, …)), so
// an office acknowledges each routing once: a second call, from the API or
// the IMAP server, by the same or another member, appends nothing and
// reports Existing.
func Acknowledge(ctx context.Context, log eventstore.Log, tenant, stream, office, by, via string) (Ack, error) {
	routed, err := routedEvent(ctx, log, tenant, stream, office)
	if err != nil {
		return Ack{}, err
	}
	e, err := gateway.Follow("ack/"+office, routed, 0, &gateway.MessageAcknowledged{Office: office, By: by, Via: via})
	if err != nil {
		return Ack{}, err
	}
	res, err := log.Append(ctx, e)
	switch {
	case errors.Is(err, eventstore.ErrConflict):
		return Ack{EventID: e.ID, Existing: true}, nil
	case err != nil:
		return Ack{}, fmt.Errorf("offices: acknowledge %s for %s: %w", stream, office, err)
	}
	return Ack{EventID: e.ID, Existing: res[0].Existing}, nil
}

// routedEvent finds the latest MessageRouted of the stream that placed the
// message in the office.
func routedEvent(ctx context.Context, log eventstore.Log, tenant, stream, office string) (*eventstore.Event, error) {
	evs, err := log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("offices: read stream %s: %w", stream, err)
	}
	reg := gateway.NewRegistry()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type != "MessageRouted" {
			continue
		}
		p, err := reg.Decode(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("offices: %w", err)
		}
		if slices.Contains(p.(*gateway.MessageRouted).Offices, office) {
			return &evs[i], nil
		}
	}
	return nil, ErrNotFound
}

// QueueDeliveryHandler is the name of the handler QueueDelivery returns.
const QueueDeliveryHandler = "offices/queue-delivery"

// QueueDeliveryGroup is the queue delivery's consumer group since it
// appends MessageQueued. Before, its group was QueueDeliveryHandler; with a
// new group it handles every MessageRouted of an upgraded log once more:
// the deliveries it appended then get the same ids (no-ops), and the queue
// entries the messages routed back then lack are appended, once across the
// gateways of a group like every derived event.
const QueueDeliveryGroup = QueueDeliveryHandler + "/queued"

// QueueDelivery is the pipeline handler that records a routed message as
// delivered to each office's queue (MessageDelivered{Via: "queue"}) and
// gives it its place there: a MessageQueued in each office's stream, whose
// stream number is the queue position on every gateway.
func QueueDelivery() pipeline.Handler {
	return pipeline.Handler{Name: QueueDeliveryHandler, Group: QueueDeliveryGroup, Topic: "MessageRouted",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			m, ok := p.(*gateway.MessageRouted)
			if !ok {
				return nil, fmt.Errorf("offices: queue delivery got %T", p)
			}
			out := make([]gateway.Payload, 0, 2*len(m.Offices))
			for _, o := range m.Offices {
				out = append(out, &gateway.MessageDelivered{Office: o, Via: "queue"})
			}
			// After the deliveries, so that their derived ids stay those
			// of logs written before queue entries existed.
			for _, o := range m.Offices {
				out = append(out, &gateway.MessageQueued{Office: o, Stream: cause.Stream, RoutedBy: cause.ID, Rule: m.Rule})
			}
			return out, nil
		}}
}
