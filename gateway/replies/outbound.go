package replies

import (
	"context"
	"errors"

	"github.com/poststelle/poststelle/gateway"
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
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix (a refused recipient,
// a malformed reply, a channel without an outbound adapter).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
