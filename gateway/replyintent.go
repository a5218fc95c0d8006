package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// ReplyAttempted records, before an answer is handed to a peer that cannot
// recognise a resend (EGVP Enterprise: sendAsynchroniousMessage takes no id
// of the caller's), that this attempt is about to be made, with the ids the
// answer will carry there. It is durable before the peer is called. An
// attempt with a ReplyAttempted and neither ReplySent nor ReplyFailed after
// it may or may not have reached the peer (the gateway stopped in between):
// replies.Sender does not send it again but records a ReplyFailed with
// Uncertain set, and the mailroom decides (replies.ResolveUncertain).
type ReplyAttempted struct {
	ReplyID string  `json:"replyId"`
	Attempt int     `json:"attempt"`
	Channel Channel `json:"channel"`
	// Peer names where an operator can look the answer up ("EGVP
	// Enterprise").
	Peer string `json:"peer"`
	// References are the ids the answer carries at the peer (for EGVP the
	// XJustiz message id derived from the reply id).
	References []EvidenceReference `json:"references,omitempty"`
}

// EventType implements Payload.
func (ReplyAttempted) EventType() string { return "ReplyAttempted" }

// SchemaVersion implements Payload.
func (ReplyAttempted) SchemaVersion() int { return 1 }

// BlobRefs implements Payload.
func (*ReplyAttempted) BlobRefs() []blob.Ref { return nil }

// ReplyResendOrdered records a person's decision that an answer whose
// attempt may have been sent (ReplyFailed with Uncertain) was not, after
// checking the peer: it is sent again, as the next attempt, on the retry
// schedule. The other decision, that it was sent, is recorded as a ReplySent.
type ReplyResendOrdered struct {
	ReplyID string `json:"replyId"`
	// Attempt is the uncertain attempt the decision is about.
	Attempt int    `json:"attempt"`
	By      string `json:"by"`
	Note    string `json:"note,omitempty"`
}

// EventType implements Payload.
func (ReplyResendOrdered) EventType() string { return "ReplyResendOrdered" }

// SchemaVersion implements Payload.
func (ReplyResendOrdered) SchemaVersion() int { return 1 }

// BlobRefs implements Payload.
func (*ReplyResendOrdered) BlobRefs() []blob.Ref { return nil }
