package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// EEBOverdue records that a court's eEB request passed the due date the
// site gives its offices (office_api.eeb_due_after) while no answer was
// sent or being sent. It is appended once per message, in the message's
// stream, by the eEB overdue watch (gateway/offices.OverdueWatch); the
// inbox opens a triage item for it and marks the task overdue until the
// office answers. That the due date passed is a fact of the log, not of a
// clock read at query time, so every node and every rebuild show the same.
type EEBOverdue struct {
	// Due is the task's due date as the watch saw it.
	Due time.Time `json:"due"`
	// Offices are the offices the message was routed to (empty while it is
	// unrouted, in triage).
	Offices []string `json:"offices,omitempty"`
}

// EventType implements Payload.
func (EEBOverdue) EventType() string { return "EEBOverdue" }

// SchemaVersion implements Payload.
func (EEBOverdue) SchemaVersion() int { return 1 }

// BlobRefs implements Payload.
func (*EEBOverdue) BlobRefs() []blob.Ref { return nil }

// EEBOverdueEventID is the id of a message's EEBOverdue: one per message
// stream, so that a watch running twice, or on two nodes, records it once.
func EEBOverdueEventID(tenant, stream string) string {
	return digestID("eebo-", tenant, stream)
}
