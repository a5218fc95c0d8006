package replies

import (
	"context"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/outbox"
)

// Outbound sends answers on one channel. It is the only thing a channel
// issue adds to the reply path.
type Outbound interface {
	// Send delivers reply, the answer to original, and reports what the
	// channel said. An error is temporary (retried later) unless wrapped
	// with Permanent. Send must be safe to call again for the same reply
	// after a crash: the channel should recognise the resend (for e-mail,
	// the same Message-ID).
	Send(ctx context.Context, reply *gateway.ReplyRequested, original *gateway.MessageReceived) (SentInfo, error)
}

// SentInfo is what the channel answered when it accepted a reply.
type SentInfo struct {
	// ChannelMessageID is the channel's id of the sent answer (for e-mail
	// its Message-ID).
	ChannelMessageID string
	// Response is the peer's answer, e.g. the SMTP reply line.
	Response string
	// Sent, when the outbound kept them, are the bytes the peer accepted.
	Sent blob.Ref
}

// Permanent marks err as one that retrying cannot fix (a refused recipient,
// a malformed reply, a channel without an outbound adapter).
func Permanent(err error) error { return outbox.Permanent(err) }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return outbox.IsPermanent(err) }

// AtMostOnce is an Outbound whose peer cannot recognise a resend: it takes
// no id of ours by which a second hand-over of the same answer would be
// refused or merged (EGVP Enterprise's sendAsynchroniousMessage). Before
// each attempt the Sender records a gateway.ReplyAttempted with what Intent
// returns, durable before Send is called; an attempt found with such a
// record and no outcome (the gateway stopped between the hand-over and the
// recorded ReplySent) is not sent again: it fails as uncertain, to triage,
// until a person checks the peer (ResolveUncertain).
type AtMostOnce interface {
	Outbound
	// Intent names the peer where a person can check (e.g. "EGVP
	// Enterprise") and the ids the answer carries there.
	Intent(reply *gateway.ReplyRequested) (peer string, refs []gateway.EvidenceReference)
}

// MaybeSent marks the error of a Send on an AtMostOnce outbound after which
// the peer may have the answer (the request went out, its answer did not
// come back). The Sender records it as uncertain, to triage, instead of
// retrying it.
func MaybeSent(err error) error {
	if err == nil {
		return nil
	}
	return maybeSentError{err}
}

type maybeSentError struct{ err error }

func (e maybeSentError) Error() string { return e.err.Error() }
func (e maybeSentError) Unwrap() error { return e.err }
