package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// TriageStream is the stream of the triage queue.
const TriageStream = "triage"

// TriageQueued records that an item took the next place in the triage
// queue. It is appended to TriageStream, not to the item's stream, so that
// the log orders the triage queue once: the event's StreamSeq is the
// item's seq (GET /triage?since=) on every gateway that reads the log,
// across restarts and rebuilds, however the partitions of a partitioned log
// interleave when a node folds them.
type TriageQueued struct {
	// Stream is the item's stream: the message's, or the evidence's own
	// when no message matched it.
	Stream string `json:"stream"`
	// Cause is the id of the event that sent the item to triage.
	Cause string `json:"cause"`
	// Kind is the triage item's kind (routing, processing, reply, webhook,
	// evidence).
	Kind string `json:"kind"`
}

// StreamOf implements Restreamed: the entry belongs to the triage stream.
func (*TriageQueued) StreamOf() string { return TriageStream }

// EventType implements Payload.
func (TriageQueued) EventType() string { return "TriageQueued" }

// SchemaVersion implements Payload.
func (TriageQueued) SchemaVersion() int { return 1 }

// BlobRefs implements Payload.
func (*TriageQueued) BlobRefs() []blob.Ref { return nil }
