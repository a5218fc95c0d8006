package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
)

// Payload is an event's content. Every payload type has a fixed name and
// schema version.
type Payload interface {
	// EventType is the name stored as the log event's type.
	EventType() string
	// SchemaVersion is the payload's schema version.
	SchemaVersion() int
	// BlobRefs lists every blob the payload refers to, so that verification
	// of the stored bytes cannot miss one (see blobrefs.go).
	BlobRefs() []blob.Ref
}

func (MessageReceived) EventType() string     { return "MessageReceived" }
func (MessageRouted) EventType() string       { return "MessageRouted" }
func (RoutingFailed) EventType() string       { return "RoutingFailed" }
func (MessageDelivered) EventType() string    { return "MessageDelivered" }
func (MessageAcknowledged) EventType() string { return "MessageAcknowledged" }
func (ReplyRequested) EventType() string      { return "ReplyRequested" }
func (ReplySent) EventType() string           { return "ReplySent" }
func (ReplyFailed) EventType() string         { return "ReplyFailed" }
func (ProcessingFailed) EventType() string    { return "ProcessingFailed" }
func (SignaturesVerified) EventType() string  { return "SignaturesVerified" }
func (TimestampApplied) EventType() string    { return "TimestampApplied" }

func (MessageReceived) SchemaVersion() int     { return 2 }
func (MessageRouted) SchemaVersion() int       { return 1 }
func (RoutingFailed) SchemaVersion() int       { return 1 }
func (MessageDelivered) SchemaVersion() int    { return 1 }
func (MessageAcknowledged) SchemaVersion() int { return 1 }
func (ReplyRequested) SchemaVersion() int      { return 2 }
func (ReplySent) SchemaVersion() int           { return 1 }
func (ReplyFailed) SchemaVersion() int         { return 1 }
func (ProcessingFailed) SchemaVersion() int    { return 1 }
func (SignaturesVerified) SchemaVersion() int  { return 1 }
func (TimestampApplied) SchemaVersion() int    { return 1 }

// Registry maps event types to payload constructors. It is built once by
// NewRegistry and never changed afterwards; later issues register their
// payload types in NewRegistry too.
type Registry struct {
	types map[string]func() Payload
}

// NewRegistry returns the registry of every payload type the gateway knows.
func NewRegistry() *Registry {
	r := &Registry{types: map[string]func() Payload{}}
	for _, f := range []func() Payload{
		func() Payload { return &MessageReceived{} },
		func() Payload { return &MessageRouted{} },
		func() Payload { return &RoutingFailed{} },
		func() Payload { return &MessageDelivered{} },
		func() Payload { return &MessageAcknowledged{} },
		func() Payload { return &ReplyRequested{} },
		func() Payload { return &ReplySent{} },
		func() Payload { return &ReplyFailed{} },
		func() Payload { return &ProcessingFailed{} },
		func() Payload { return &SignaturesVerified{} },
		func() Payload { return &TimestampApplied{} },
		func() Payload { return &HeadPublished{} },
		func() Payload { return &WebhookAttempted{} },
		func() Payload { return &WebhookDelivered{} },
		func() Payload { return &WebhookFailed{} },
		func() Payload { return &DeliveryEvidenceRecorded{} },
		func() Payload { return &NoteAdded{} },
		func() Payload { return &MessageQueued{} },
		func() Payload { return &TriageQueued{} },
		func() Payload { return &EEBOverdue{} },
		func() Payload { return &ReplyAttempted{} },
		func() Payload { return &ReplyResendOrdered{} },
		func() Payload { return &ReplyIDAssigned{} },
		func() Payload { return &EvidenceRecordSaved{} },
		func() Payload { return &ContentErased{} },
		func() Payload { return &LegalHoldSet{} },
		func() Payload { return &LegalHoldReleased{} },
	} {
		r.types[f().EventType()] = f
	}
	return r
}

// Errors from decoding.
var (
	ErrUnknownEvent   = errors.New("gateway: unknown event type")
	ErrUnknownVersion = errors.New("gateway: unknown event schema version")
)

// Decode returns an event's payload. Unknown types and versions are refused
// with an error naming the event and its position, never guessed at.
func (r *Registry) Decode(e *eventstore.Event) (Payload, error) {
	f, ok := r.types[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w %q (event %s at %d/%d)", ErrUnknownEvent, e.Type, e.ID, e.Position.Partition, e.Position.Offset)
	}
	p := f()
	if u, ok := p.(upgrader); ok && e.Version < p.SchemaVersion() {
		if err := u.upgrade(e.Version, e.Data); err != nil {
			return nil, fmt.Errorf("gateway: decode %s version %d event %s at %d/%d: %w", e.Type, e.Version, e.ID, e.Position.Partition, e.Position.Offset, err)
		}
		return p, nil
	}
	if e.Version != p.SchemaVersion() {
		return nil, fmt.Errorf("%w: %s version %d, this gateway knows %d (event %s at %d/%d)",
			ErrUnknownVersion, e.Type, e.Version, p.SchemaVersion(), e.ID, e.Position.Partition, e.Position.Offset)
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("gateway: decode %s event %s at %d/%d: %w", e.Type, e.ID, e.Position.Partition, e.Position.Offset, err)
	}
	return p, nil
}

// Known reports whether the registry knows an event type.
func (r *Registry) Known(eventType string) bool {
	_, ok := r.types[eventType]
	return ok
}

// Meta is what every event carries besides its payload.
type Meta struct {
	ID            string
	Tenant        string
	Stream        string
	MessageKey    string
	CorrelationID string
	CausationID   string
	Metadata      map[string]string
}

// Encode builds a log event from a payload.
func Encode(m Meta, p Payload) (eventstore.Event, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("gateway: encode %s: %w", p.EventType(), err)
	}
	if m.Tenant == "" {
		m.Tenant = DefaultTenant
	}
	return eventstore.Event{ID: m.ID, Tenant: m.Tenant, Stream: m.Stream, Type: p.EventType(),
		Version: p.SchemaVersion(), MessageKey: m.MessageKey, CorrelationID: m.CorrelationID,
		CausationID: m.CausationID, Metadata: m.Metadata, Data: data}, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// digestID derives a stable identifier from its parts.
func digestID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return prefix + strings.ToLower(idEncoding.EncodeToString(h.Sum(nil)[:16]))
}

// MessageKey is the deduplication key of an inbound message: the channel and
// the channel's own id for it (for e-mail the Message-ID is not enough, since
// senders reuse it; adapters pass what identifies one delivery).
func MessageKey(ch Channel, channelID string) string {
	return string(ch) + ":" + channelID
}

// StreamID is the stream of the message with the given key: the same message
// redelivered gets the same stream, so a retry never starts a second history.
func StreamID(tenant, messageKey string) string {
	return digestID("msg-", tenant, messageKey)
}

// ReceivedEventID is the id of a message's MessageReceived event.
func ReceivedEventID(tenant, messageKey string) string {
	return digestID("rcv-", tenant, messageKey)
}

// DerivedEventID names an event a handler appends in response to another, so
// that a handler that runs twice on the same cause appends nothing new.
func DerivedEventID(handler, causeID string, n int) string {
	return digestID("evt-", handler, causeID, fmt.Sprint(n))
}

// NewReceived builds the MessageReceived event of a message: its stream, id
// and correlation id all follow from the tenant and the message key.
func NewReceived(tenant, messageKey string, p *MessageReceived) (eventstore.Event, error) {
	if tenant == "" {
		tenant = DefaultTenant
	}
	stream := StreamID(tenant, messageKey)
	return Encode(Meta{ID: ReceivedEventID(tenant, messageKey), Tenant: tenant, Stream: stream,
		MessageKey: messageKey, CorrelationID: stream}, p)
}

// Follow builds an event that cause led to, in the cause's stream; n numbers
// the events one handler appends for the same cause.
func Follow(handler string, cause *eventstore.Event, n int, p Payload) (eventstore.Event, error) {
	stream := cause.Stream
	if r, ok := p.(Restreamed); ok {
		stream = r.StreamOf()
	}
	return Encode(Meta{ID: DerivedEventID(handler, cause.ID, n), Tenant: cause.Tenant, Stream: stream,
		CorrelationID: cause.CorrelationID, CausationID: cause.ID}, p)
}
