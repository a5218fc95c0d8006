package oscichannel

import (
	"context"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// readEGVP gives the delivery its EGVP meaning (package egvp) from the containers as read,
// the encrypted ones decrypted, and sets msg.EGVP. What egvp finds wrong goes to the
// receipt's Problems; the delivery is kept either way. A delivery without EGVP
// structure gets no EGVP section and no problem: OSCI carries other traffic too.
func (c *core) readEGVP(ctx context.Context, req *osci.Request, containers []*osci.ContentContainer, attachment func(string) *osci.Part, msg *gateway.MessageReceived) {
	// egvp reads the plaintext containers of the envelope; a shallow copy carries the
	// decrypted ones without changing the request.
	env := *req.Envelope
	env.ContentPackage = &osci.ContentPackage{Element: req.Envelope.ContentPackage.Element, Containers: containers}
	// The process card's inspection of the transport certificate is the
	// intermediary's word only when its signature over the message verified.
	verified := req.Signature != nil && req.Signature.Valid() && req.Signer() != nil && req.Signer().Equal(c.interSig)
	m, err := egvp.Read(ctx, egvp.Delivery{Envelope: &env, Attachment: attachment, IntermediaryVerified: verified}, egvp.Config{}, egvp.Limits{})
	switch {
	case errors.Is(err, egvp.ErrNotEGVP):
		return
	case err != nil:
		msg.Problems = append(msg.Problems, fmt.Sprintf("egvp: %v", err))
		return
	}
	egvp.Apply(msg, m)
}
