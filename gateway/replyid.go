package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// ReplyIDAssigned records the id a peer gave an answer before the answer was
// handed over, for a peer that assigns its own ids and takes none of ours
// (FIT-Connect: POST /replies answers with the platform's replyId, and only a
// later PUT /replies/{replyId} submits the reply). It is durable before the
// hand-over, so that an attempt after a crash between the peer's acceptance
// and the recorded ReplySent finds the answer at the peer by this id and
// records it as sent instead of creating it a second time.
type ReplyIDAssigned struct {
	ReplyID string  `json:"replyId"`
	Channel Channel `json:"channel"`
	// PeerID is the peer's id of the answer (the FIT-Connect replyId).
	PeerID string `json:"peerId"`
	// References are further ids of the answer at the peer (the case).
	References []EvidenceReference `json:"references,omitempty"`
}

// EventType implements Payload.
func (ReplyIDAssigned) EventType() string { return "ReplyIDAssigned" }

// SchemaVersion implements Payload.
func (ReplyIDAssigned) SchemaVersion() int { return 1 }

// BlobRefs implements Payload.
func (*ReplyIDAssigned) BlobRefs() []blob.Ref { return nil }
