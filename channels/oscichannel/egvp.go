package oscichannel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/egvprecord"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/osci"
	"github.com/poststelle/poststelle/xjustiz"
)

// readEGVP gives the delivery its EGVP meaning (package egvp) from the containers as read,
// the encrypted ones decrypted, and sets msg.EGVP. What egvp finds wrong goes to the
// receipt's Problems; the delivery is kept either way. A delivery without EGVP
// structure gets no EGVP section and no problem: OSCI carries other traffic too. A
// returning eEB of one of our answers comes back with the evidence that links it there
// (linkReturningEEB records it once the message is).
func (c *core) readEGVP(ctx context.Context, req *osci.Request, containers []*osci.ContentContainer, attachment func(string) *osci.Part, msg *gateway.MessageReceived) *gateway.DeliveryEvidenceRecorded {
	// egvp reads the plaintext containers of the envelope; a shallow copy carries the
	// decrypted ones without changing the request.
	env := *req.Envelope
	env.ContentPackage = &osci.ContentPackage{Element: req.Envelope.ContentPackage.Element, Containers: containers}
	// The process card's inspection of the transport certificate is the
	// intermediary's word only when its signature over the message verified.
	verified := req.Signature != nil && req.Signature.Valid() && req.Signer() != nil && req.Signer().Equal(c.interSig)
	m, err := egvp.Read(ctx, egvp.Delivery{Envelope: &env, Attachment: attachment, IntermediaryVerified: verified}, egvp.Config{VHNAnchors: c.vhnAnchors}, egvp.Limits{})
	switch {
	case errors.Is(err, egvp.ErrNotEGVP):
		return nil
	case err != nil:
		msg.Problems = append(msg.Problems, fmt.Sprintf("egvp: %v", err))
		return nil
	}
	replyID := c.sentAnswers().CheckReturningEEB(ctx, m)
	egvprecord.Apply(msg, m)
	// The sender is its mailbox: "safe:" and the SAFE-ID an answer goes to, as the
	// EGVP Enterprise connector records it; the cipher certificate stays in the
	// metadata.
	if m.SenderSafeID != "" {
		msg.From.Address = SafeAddressPrefix + m.SenderSafeID
		if m.Card != nil && m.Card.Organisation != "" {
			msg.From.Name = m.Card.Organisation
		}
	}
	if replyID == "" {
		return nil
	}
	return egvprecord.ReturningEEBEvidence(m, replyID, msg, "multipart/related")
}

// SafeAddressPrefix starts the address of an EGVP mailbox by its SAFE-ID, the form
// of From on both EGVP transports (egvpenterprise.AddressPrefix is the same).
const SafeAddressPrefix = "safe:"

// sentAnswers is the record a returning eEB is checked against.
func (c *core) sentAnswers() egvprecord.SentAnswers {
	return egvprecord.SentAnswers{Evidence: c.deps.Evidence, Tenant: c.deps.Tenant}
}

// linkReturningEEB records the evidence of a returning eEB once the eEB itself is
// recorded.
func (c *core) linkReturningEEB(ctx context.Context, ev *gateway.DeliveryEvidenceRecorded) {
	c.sentAnswers().LinkReturningEEB(ctx, ev, c.deps.Logger)
}

// egvpAnswer composes the answer to an EGVP message: to the sender's SAFE-ID, encrypted
// for the cipher certificate the message brought or, without one, the directory's for
// that SAFE-ID; the files egvp builds from the message as read again from its kept
// files, then (for an ordinary answer) the text and the attachments.
func (o *Outbound) egvpAnswer(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*answer, error) {
	safeID := orig.EGVP.SenderSafeID
	addressee, err := o.egvpAddressee(req, orig)
	if err != nil {
		return nil, replies.Permanent(err)
	}
	if o.card == nil {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s: osci.business_card is not configured, and an EGVP answer carries it", req.ReplyID))
	}
	m, err := o.reread(ctx, req, orig)
	if err != nil {
		return nil, err
	}
	ans := &answer{addressee: addressee, container: egvp.ContainerProject, xjustizID: egvp.XJustizID(req.ReplyID)}
	var files []egvp.File
	var own []file
	if req.EEB != nil {
		files, err = receiptFiles(req, m, *o.card, ans.xjustizID, o.now())
	} else {
		own = textAndAttachments(req)
		names := make([]string, len(own))
		for i, it := range own {
			names[i] = it.name
		}
		files, err = egvp.BuildAnswer(m, egvp.Answer{Own: *o.card, Subject: req.Subject, Files: names, OwnMessageID: ans.xjustizID, Created: o.now()})
	}
	if err != nil {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s to %s: %w", req.ReplyID, safeID, err))
	}
	for _, f := range files {
		ans.items = append(ans.items, file{name: f.Name, inline: f.Inline, data: f.Data})
	}
	ans.items = append(ans.items, own...)
	return ans, nil
}

// egvpAddressee checks the answer's address, "safe:" and the sender's SAFE-ID (or, in events
// recorded before From became the SAFE-ID, the originator cipher certificate's
// address), and finds the certificate to encrypt for.
func (o *Outbound) egvpAddressee(req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*cert.Certificate, error) {
	safeID := orig.EGVP.SenderSafeID
	c, err := originatorCipher(req, orig)
	if err != nil {
		return nil, err
	}
	switch {
	case req.To.Address == SafeAddressPrefix+safeID:
	case c != nil && req.To.Address == cipherAddress(c):
	default:
		return nil, fmt.Errorf("osci: answer %s: address %.80q is not the sender's %s%s", req.ReplyID, req.To.Address, SafeAddressPrefix, safeID)
	}
	if c != nil {
		return c, nil
	}
	if c := o.directory[safeID]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("osci: answer %s: no cipher certificate for %s: the message brought none, and osci.directory lists none", req.ReplyID, safeID)
}

// maxKeptFileBytes caps each EGVP file read back from the blob store.
const maxKeptFileBytes = 4 << 20

// reread reads the EGVP files of orig back from the blob store (the decrypted
// contents listed as its parts) and gives them their meaning again; the result must
// be the message as received: same sender, same XJustiz id.
func (o *Outbound) reread(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*egvp.Message, error) {
	var files []egvp.File
	seen := map[string]bool{}
	for _, p := range orig.Parts {
		name := p.Filename
		if seen[name] || (name != egvp.FileCard && name != egvp.FileDescription && name != egvp.FileXJustiz) || p.Blob.SHA256 == "" {
			continue
		}
		seen[name] = true
		data, err := o.readBlob(ctx, p.Blob)
		if err != nil {
			return nil, fmt.Errorf("osci: answer %s: reading the message's %s: %w", req.ReplyID, name, err)
		}
		files = append(files, egvp.File{Name: name, Inline: name != egvp.FileXJustiz, Data: data})
	}
	m, err := egvp.ReadFiles(files, egvp.Limits{})
	if err != nil {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s: the message's kept files: %w", req.ReplyID, err))
	}
	f := orig.EGVP
	var xjID string
	if m.XJustiz != nil {
		xjID = m.XJustiz.Header.OwnMessageID
	}
	if m.SenderSafeID != f.SenderSafeID || xjID != f.XJustizMessageID {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s: the message's kept files name sender %q and XJustiz id %q, the receipt %q and %q",
			req.ReplyID, m.SenderSafeID, xjID, f.SenderSafeID, f.XJustizMessageID))
	}
	return m, nil
}

func (o *Outbound) readBlob(ctx context.Context, ref blob.Ref) ([]byte, error) {
	if ref.Size > maxKeptFileBytes {
		return nil, fmt.Errorf("%d bytes, over %d", ref.Size, maxKeptFileBytes)
	}
	rc, err := o.blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxKeptFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeptFileBytes {
		return nil, fmt.Errorf("over %d bytes", maxKeptFileBytes)
	}
	return data, nil
}

// receiptFiles builds the eEB the office decided on.
func receiptFiles(req *gateway.ReplyRequested, m *egvp.Message, own egvp.BusinessCard, xjID string, now time.Time) ([]egvp.File, error) {
	e := req.EEB
	a := egvp.ReceiptAnswer{Own: own, DeviatingRecipient: e.DeviatingRecipient, OwnMessageID: xjID, Created: now}
	switch e.Decision {
	case gateway.EEBAcknowledged:
		d, err := time.Parse(time.DateOnly, e.ReceivedOn)
		if err != nil {
			return nil, fmt.Errorf("eEB: date of receipt %.40q: %w", e.ReceivedOn, err)
		}
		a.Received = d
	case gateway.EEBRefused:
		a.Refusal = &xjustiz.Refusal{Code: e.RefusalCode, Reason: e.Reason}
	default:
		return nil, fmt.Errorf("eEB: decision %.40q is neither %s nor %s", e.Decision, gateway.EEBAcknowledged, gateway.EEBRefused)
	}
	return egvp.BuildReceiptAnswer(m, a)
}
