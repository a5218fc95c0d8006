package gateway

import (
	"strconv"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// ContentErased records that a message's contents were destroyed for good
// (crypto-shredding: the keys of its blobs were destroyed, see
// gateway/retention). It is appended in the message's stream before the
// keys are destroyed, so that no erasure happens unrecorded; the erasure
// handler completes one that was interrupted. The log, its hashes, the
// timestamp tokens and the evidence records stay, so the message's history
// remains provable without its bytes. Every message is erased at most once:
// its id follows from the stream (ErasureEventID).
type ContentErased struct {
	// ErasedAt is when the erasure was decided; Rule names the retention
	// rule that decided it, in words ("office bauamt: 10y from the end of
	// the year of receipt"), or "manual"; Reason is "retention-expired",
	// "request", or what the person who ordered it gave.
	ErasedAt time.Time `json:"erasedAt"`
	Rule     string    `json:"rule"`
	Reason   string    `json:"reason"`
	// Office is the office whose rule decided, empty for the default rule
	// of messages never routed to an office.
	Office string `json:"office,omitempty"`
	// RetainUntil is the end of the retention period the rule gave; zero
	// for a manual erasure before it.
	RetainUntil time.Time `json:"retainUntil,omitzero"`
	// Actor is the person who ordered a manual erasure.
	Actor string `json:"actor,omitempty"`
	// Blobs are the blobs erased. Kept are the message's blobs that stay:
	// another message still retained shares them, or they cannot be erased
	// (stored in plaintext before encryption at rest).
	Blobs []blob.Ref `json:"blobs,omitempty"`
	Kept  []blob.Ref `json:"kept,omitempty"`
}

// LegalHoldSet records a legal hold (Sperrvermerk): the message is not
// erased, whatever its retention period says, until the hold is released.
type LegalHoldSet struct {
	Reason string `json:"reason"`
	Actor  string `json:"actor"`
	// Case is the proceeding the hold is for (its Aktenzeichen).
	Case  string    `json:"case,omitempty"`
	SetAt time.Time `json:"setAt"`
}

// LegalHoldReleased records the end of a legal hold; the retention period
// applies again from then on.
type LegalHoldReleased struct {
	Reason     string    `json:"reason"`
	Actor      string    `json:"actor"`
	ReleasedAt time.Time `json:"releasedAt"`
}

func (ContentErased) EventType() string     { return "ContentErased" }
func (LegalHoldSet) EventType() string      { return "LegalHoldSet" }
func (LegalHoldReleased) EventType() string { return "LegalHoldReleased" }

func (ContentErased) SchemaVersion() int     { return 1 }
func (LegalHoldSet) SchemaVersion() int      { return 1 }
func (LegalHoldReleased) SchemaVersion() int { return 1 }

// BlobRefs is empty: the erased blobs are gone, so `log verify --blobs`
// must not look for them, and the kept ones are vouched for by the events
// that first named them.
func (*ContentErased) BlobRefs() []blob.Ref     { return nil }
func (*LegalHoldSet) BlobRefs() []blob.Ref      { return nil }
func (*LegalHoldReleased) BlobRefs() []blob.Ref { return nil }

// ErasureEventID is the id of a message's ContentErased event. It follows
// from the stream alone, so that the scheduler after a crash, a second
// node and a manual erasure all append the same event at most once.
func ErasureEventID(tenant, stream string) string {
	return digestID("era-", tenant, stream)
}

// HoldEventID is the id of the n-th legal hold event (set or released,
// counted from 0) of a stream: two people setting or releasing a hold at
// the same moment name the same event, and the log takes only one.
func HoldEventID(tenant, stream string, n int) string {
	return digestID("hold-", tenant, stream, strconv.Itoa(n))
}
