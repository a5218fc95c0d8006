package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Delivery evidence is what a channel's provider, intermediary or portal
// attests about a message or an answer after it left the sender: that it
// was dispatched, put into the recipient's mailbox, picked up or read, or
// that it could not be delivered. De-Mail confirmations
// (Versand-, Eingangs-, Abholbestätigung), OSCI receipts of the EGVP and the
// portal's status reports all become one DeliveryEvidenceRecorded, so that an
// office and an auditor read delivery evidence the same way on every
// channel. The event lives in the stream of the message it is about; for an
// answer, ReplyID names the answer within that stream.

// EvidenceKind is what a piece of delivery evidence attests.
type EvidenceKind string

// The kinds of delivery evidence. The first four are steps of a successful
// delivery in the order they happen; the last two end it without success.
const (
	// EvidenceDispatched: the sender's provider accepted the message for
	// sending (De-Mail Versandbestätigung).
	EvidenceDispatched EvidenceKind = "dispatched"
	// EvidenceDelivered: the message is in the recipient's mailbox (De-Mail
	// Eingangsbestätigung, OSCI acknowledgement of receipt at the
	// intermediary, portal "delivered"); the Zugang in the sense of the
	// VwZG.
	EvidenceDelivered EvidenceKind = "delivered"
	// EvidenceRetrieved: the recipient picked the message up (De-Mail
	// Abholbestätigung, OSCI fetch receipt, portal "retrieved").
	EvidenceRetrieved EvidenceKind = "retrieved"
	// EvidenceRead: the recipient opened it, where the channel can tell.
	EvidenceRead EvidenceKind = "read"
	// EvidenceNotDelivered: the provider gave up; Reason says why.
	EvidenceNotDelivered EvidenceKind = "not-delivered"
	// EvidenceExpired: the message was not picked up in the time the
	// channel allows (e.g. the De-Mail retention period).
	EvidenceExpired EvidenceKind = "expired"
)

// Valid reports whether k is one of the kinds above.
func (k EvidenceKind) Valid() bool {
	switch k {
	case EvidenceDispatched, EvidenceDelivered, EvidenceRetrieved, EvidenceRead, EvidenceNotDelivered, EvidenceExpired:
		return true
	}
	return false
}

// Attester is who vouches for a piece of delivery evidence.
type Attester struct {
	// Role is "provider" (a De-Mail provider), "intermediary" (an OSCI
	// intermediary), "portal" (FIT-Connect or another portal), "addressee" (a
	// returning eEB) or "egvp-enterprise" (the state an EGVP Enterprise
	// installation reports of an answer it sent).
	Role string `json:"role"`
	// Name is the attester's name as the evidence states it.
	Name string `json:"name"`
	// ID identifies the attester in the channel's own terms: the provider's
	// De-Mail domain, the intermediary's URL or certificate subject, the
	// portal's destination id.
	ID string `json:"id,omitempty"`
}

// EvidenceReference is one id by which a piece of evidence names the message
// or answer it is about, as the evidence states it.
type EvidenceReference struct {
	// Kind names the id in the channel's terms: "messageId" (RFC 5322
	// Message-ID), "privateId" (De-Mail X-de-mail-private-id), "osciMessageId",
	// "submissionId".
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// EvidenceVerification is the verdict on signed evidence (a provider's
// signed confirmation, an OSCI receipt's signature).
type EvidenceVerification struct {
	// Indication is TOTAL_PASSED, INDETERMINATE or TOTAL_FAILED (ETSI EN
	// 319 102-1), as for message signatures.
	Indication    string `json:"indication"`
	SubIndication string `json:"subIndication,omitempty"`
	// Format is "CMS", "S/MIME", "XMLDSig", ...
	Format string `json:"format,omitempty"`
	// Signer is the signing certificate's subject.
	Signer string `json:"signer,omitempty"`
	// Qualification uses DSS's names (QESeal, AdESeal-QC, ...).
	Qualification string    `json:"qualification,omitempty"`
	SigningTime   time.Time `json:"signingTime,omitzero"`
	// Detail explains an indication other than TOTAL_PASSED.
	Detail string `json:"detail,omitempty"`
}

// DeliveryEvidenceRecorded records one piece of delivery evidence about a
// message or an answer. Channels append it through EvidenceRecorder.Record,
// which fills the link (ReplyID, LinkedBy, Unlinked); the rest is the
// channel's.
type DeliveryEvidenceRecorded struct {
	Channel Channel      `json:"channel"`
	Kind    EvidenceKind `json:"kind"`
	// ReplyID is the answer the evidence is about; empty when it is about
	// the message of the event's stream itself.
	ReplyID string `json:"replyId,omitempty"`
	// References are the ids the evidence names its message by, in the
	// order they were looked up.
	References []EvidenceReference `json:"references"`
	// LinkedBy says which of our ids matched the reference that linked the
	// evidence to its stream: "senderMessageId" or "coordinates" of a
	// received message, "replyId" or "replyMessageId" of an answer. Empty
	// when the evidence could not be linked.
	LinkedBy string `json:"linkedBy,omitempty"`
	// Unlinked says why the evidence could not be linked (no message or
	// answer has any of its references, or more than one has); such
	// evidence is kept in a stream of its own and goes to triage.
	Unlinked string   `json:"unlinked,omitempty"`
	Attester Attester `json:"attester"`
	// AttestedAt is the time the attester states for the event it attests
	// (the moment of dispatch, delivery, retrieval). The log's recording
	// time of this event is when the gateway learnt of it.
	AttestedAt time.Time `json:"attestedAt"`
	// EvidenceID is the channel's own id of this piece of evidence (the
	// confirmation's Message-ID, the OSCI receipt id, the portal's status
	// id). With the channel it identifies the evidence: the same
	// confirmation recorded twice is one event.
	EvidenceID string `json:"evidenceId,omitempty"`
	// Evidence refers to the evidence bytes as received: the signed
	// confirmation message, the OSCI receipt, the portal's status document.
	Evidence blob.Ref `json:"evidence,omitzero"`
	// MediaType is Evidence's media type.
	MediaType string `json:"mediaType,omitempty"`
	// Verification is the verdict on the evidence's signature; nil when the
	// evidence was not signed.
	Verification *EvidenceVerification `json:"verification,omitempty"`
	// Reason is the attester's explanation, for not-delivered and expired
	// above all.
	Reason string `json:"reason,omitempty"`
	// Problems lists what the channel could not understand about the
	// evidence; it is recorded all the same.
	Problems []string `json:"problems,omitempty"`
}

func (DeliveryEvidenceRecorded) EventType() string  { return "DeliveryEvidenceRecorded" }
func (DeliveryEvidenceRecorded) SchemaVersion() int { return 1 }

// BlobRefs lists the evidence bytes.
func (d *DeliveryEvidenceRecorded) BlobRefs() []blob.Ref { return refs(d.Evidence) }
