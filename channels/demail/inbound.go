package demail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// New builds the De-Mail inbound: the IMAP watcher over the provider
// gateway's mailboxes and, when configured, the SMTP receiver for its
// deliveries, both recording on the demail channel and completing each
// receipt with the provider's evidence. Nil with nil error when neither is
// configured.
func New(c Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("demail: %w", err)
	}
	if len(c.Mailboxes) == 0 && c.SMTP == nil {
		return nil, nil
	}
	tr, err := c.LoadTrust()
	if err != nil {
		return nil, fmt.Errorf("demail: %w", err)
	}
	deps, err = deps.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("demail: %w", err)
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 20
	}
	a := &adapter{blobs: deps.Blobs, trust: tr, max: c.MaxMessageBytes, evidence: deps.Evidence, tenant: deps.Tenant}
	var in inbounds
	if len(c.Mailboxes) > 0 {
		w, err := imap.New(imap.Config{Mailboxes: c.Mailboxes, MaxMessageBytes: c.MaxMessageBytes,
			Channel: gateway.ChannelDeMail, Adapt: a.adapt}, deps)
		if err != nil {
			return nil, fmt.Errorf("demail: %w", err)
		}
		in = append(in, w)
	}
	if c.SMTP != nil {
		s, err := newSMTP(*c.SMTP, c.MaxMessageBytes, tr, a, deps)
		if err != nil {
			return nil, fmt.Errorf("demail: %w", err)
		}
		in = append(in, s)
	}
	if len(in) == 1 {
		return in[0], nil
	}
	return in, nil
}

// inbounds runs the mailbox intake and the SMTP receiver together.
type inbounds []gateway.Inbound

// Run runs every inbound until ctx ends; when one cannot go on, the others
// are stopped and its error returned.
func (in inbounds) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(in))
	for _, i := range in {
		go func() { errc <- i.Run(ctx) }()
	}
	var first error
	for range in {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel()
	}
	return first
}

// adapter completes receipts from the stored raw message.
type adapter struct {
	blobs gateway.BlobStore
	trust *Trust
	max   int64
	// evidence records the provider's confirmations as delivery evidence
	// of the message they confirm; nil leaves them ordinary receipts.
	evidence *gateway.EvidenceRecorder
	tenant   string
}

// headerWindow is how much of a message is read to parse its header
// section: the parser's cap and room for the line that crosses it.
const headerWindow = MaxHeaderBytes + MaxFieldBytes

// adapt parses the provider's fields from the header section and, when the
// message carries an integrity field, verifies it over the whole message.
// Only a message with that field is read whole, bounded by the size cap
// the message already passed, one at a time per mailbox.
func (a *adapter) adapt(ctx context.Context, raw blob.Ref, rec *gateway.MessageReceived) error {
	head, err := a.read(ctx, raw, headerWindow)
	if err != nil {
		return err
	}
	h := Parse(head)
	_, confirmation := confirmationKinds[h.Type]
	msg := head
	if (h.Integrity != "" || confirmation) && int64(len(head)) < raw.Size {
		if msg, err = a.read(ctx, raw, a.max); err != nil {
			return err
		}
	}
	Apply(rec, h, Verify(msg, a.trust, rec.ReceivedAt))
	if confirmation {
		return a.recordConfirmation(ctx, msg, raw, rec)
	}
	return nil
}

// recordConfirmation records a confirmation as delivery evidence of the
// message it confirms, before the confirmation itself is recorded as a
// receipt: a crash in between redelivers it, and the evidence is then
// recognised as recorded before. Evidence the recorder refuses (no
// reference to link by) stays a problem on the receipt, for triage.
func (a *adapter) recordConfirmation(ctx context.Context, msg []byte, raw blob.Ref, rec *gateway.MessageReceived) error {
	if a.evidence == nil {
		return nil
	}
	ev, hash, ok := readConfirmation(msg, raw, a.trust, rec.ReceivedAt)
	if !ok {
		return nil
	}
	_, err := a.evidence.Record(ctx, a.tenant, ev, a.hashInspector(hash))
	switch {
	case errors.Is(err, gateway.ErrEvidence):
		rec.Problems = append(rec.Problems, problemPrefix+"confirmation not recorded as delivery evidence: "+err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("record the confirmation as delivery evidence: %w", err)
	}
	return nil
}

func (a *adapter) read(ctx context.Context, raw blob.Ref, limit int64) ([]byte, error) {
	rc, err := a.blobs.Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("open the stored message: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(rc, limit)); err != nil {
		return nil, fmt.Errorf("read the stored message: %w", err)
	}
	return buf.Bytes(), nil
}
