package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// MessageQueued records that a routed message took the next place in an
// office's queue. It is appended to the office's own stream
// (OfficeStream), not to the message's, so that the log orders each
// office's queue once: the event's StreamSeq is the message's position in
// the queue (and its IMAP UID), the same on every gateway that reads the
// log, across restarts and rebuilds. On Kafka the office's stream is the
// record key tenant + "\x00office/" + office on one partition, and
// departments can read it directly (docs/offices.md).
type MessageQueued struct {
	Office string `json:"office"`
	// Stream is the message's stream, where its history and contents are.
	Stream string `json:"stream"`
	// RoutedBy is the id of the MessageRouted event that chose the office.
	RoutedBy string `json:"routedBy"`
	Rule     string `json:"rule,omitempty"`
}

// OfficeStream is the stream of an office's queue.
func OfficeStream(office string) string { return "office/" + office }

// StreamOf implements Restreamed: the entry belongs to the office's stream.
func (m *MessageQueued) StreamOf() string { return OfficeStream(m.Office) }

// EventType implements Payload.
func (MessageQueued) EventType() string { return "MessageQueued" }

// SchemaVersion implements Payload.
func (MessageQueued) SchemaVersion() int { return 1 }

// BlobRefs implements Payload; the contents are the message's.
func (*MessageQueued) BlobRefs() []blob.Ref { return nil }

// Restreamed is implemented by payloads that a handler appends to a stream
// other than the stream of the event that caused them (Follow).
type Restreamed interface {
	StreamOf() string
}
