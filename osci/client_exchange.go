package osci

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// exchange sends one request and reads its answer: the request signed and
// transport-encrypted as it streams out, the answer spooled as it came (Raw), then
// opened, its SupplierSignature checked against the intermediary's certificate and its
// control block against the request's challenge.
func (c *Client) exchange(ctx context.Context, m *Message, attachments []*Part, want MessageType) (*Response, error) {
	return c.exchangeKeep(ctx, m, attachments, want, nil)
}

// exchangeKeep is exchange with a copy of the inner message written to keep.
func (c *Client) exchangeKeep(ctx context.Context, m *Message, attachments []*Part, want MessageType, keep io.Writer) (*Response, error) {
	if c.Signer == nil || c.SignatureCertificate == nil || c.IntermediaryCipher == nil || c.Spool == nil {
		return nil, errors.New("osci: client without signer, signature certificate, intermediary cipher certificate or spool")
	}
	envelope, err := c.signedEnvelope(ctx, m, attachments)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.writeRequest(ctx, pw, envelope, attachments, keep)) }()
	defer pr.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, pr)
	if err != nil {
		return nil, fmt.Errorf("osci: %s: %w", m.Type, err)
	}
	// The library posts text/xml with the MIME headers in the body, and expects the same.
	req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("osci: posting %s: %w", m.Type, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("osci: posting %s: HTTP status %s", m.Type, resp.Status)
	}
	return c.readAnswer(ctx, resp.Body, m, want)
}

func (c *Client) signedEnvelope(ctx context.Context, m *Message, attachments []*Part) ([]byte, error) {
	mm := *m
	mm.Signed = true
	envelope, err := ComposeEnvelope(&mm)
	if err != nil {
		return nil, fmt.Errorf("osci: composing %s: %w", m.Type, err)
	}
	byID := make(map[string]*Part, len(attachments))
	ids := make([]string, 0, len(attachments))
	for _, p := range attachments {
		byID[p.ContentID] = p
		ids = append(ids, p.ContentID)
	}
	signed, err := SignEnvelope(ctx, envelope, SignOptions{
		Signer: c.Signer, Method: c.Method, CertificateID: CertificateID("originator", "signature", c.SignatureCertificate),
		Attachments: ids, Limits: c.Limits,
		Open: func(_ context.Context, cid string) (io.ReadCloser, error) {
			if p := byID[cid]; p != nil {
				return p.Open()
			}
			return nil, fmt.Errorf("osci: no attachment <%s>", cid)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("osci: signing %s: %w", m.Type, err)
	}
	return signed, nil
}

// writeRequest writes the inner message into the transport encryption for the
// intermediary, streaming the attachments.
func (c *Client) writeRequest(ctx context.Context, w io.Writer, envelope []byte, attachments []*Part, keep io.Writer) error {
	parts := make([]OutPart, 0, len(attachments))
	for _, p := range attachments {
		rc, err := p.Open()
		if err != nil {
			return fmt.Errorf("osci: opening attachment <%s>: %w", p.ContentID, err)
		}
		defer rc.Close()
		parts = append(parts, OutPart{ContentID: p.ContentID, ContentType: p.ContentType, TransferEncoding: p.TransferEncoding, Size: p.Size, Body: rc})
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteMessage(pw, NewBoundary(), true, envelope, parts)) }()
	defer pr.Close()
	var inner io.Reader = pr
	if keep != nil {
		inner = io.TeeReader(pr, keep)
	}
	err := Encryptor{Recipients: []*x509.Certificate{c.IntermediaryCipher}}.EncryptTransport(ctx, inner, w, NewBoundary(), true)
	if err != nil {
		return fmt.Errorf("osci: encrypting the request: %w", err)
	}
	return nil
}

// limitedReader fails, rather than truncates, past its limit.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: answer over the size cap", ErrTooLarge)
		}
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, fmt.Errorf("%w: answer over the size cap", ErrTooLarge)
	}
	return n, err
}

func (c *Client) readAnswer(ctx context.Context, body io.Reader, m *Message, want MessageType) (*Response, error) {
	lim := c.Limits.withDefaults()
	raw, err := c.Spool.Put(ctx, "answer", &limitedReader{r: body, left: lim.MaxMessageBytes})
	if err != nil {
		return nil, fmt.Errorf("osci: receiving the answer to %s: %w", m.Type, err)
	}
	rc, err := raw.Open()
	if err != nil {
		return nil, fmt.Errorf("osci: reopening the answer to %s: %w", m.Type, err)
	}
	defer rc.Close()
	// Supplier.ReadRequest opens any message: the client is the reader of the answer's
	// transport encryption.
	got, err := Supplier{Decrypter: c.Decrypter, Limits: c.Limits}.ReadRequest(ctx, rc, c.Spool)
	if err != nil {
		c.drop(raw)
		return nil, fmt.Errorf("osci: reading the answer to %s: %w", m.Type, err)
	}
	r := &Response{Request: got, Raw: raw, spool: c.Spool}
	if err := c.check(r, m, want); err != nil {
		r.Close()
		c.drop(raw)
		return nil, err
	}
	return r, nil
}

func (c *Client) drop(s Spooled) {
	if rm, ok := c.Spool.(Remover); ok {
		_ = rm.Remove(s)
	}
}

// check applies the dialog rules to an answer and turns refusals into FeedbackErrors.
func (c *Client) check(r *Response, m *Message, want MessageType) error {
	env := r.Envelope
	if env.Type == Fault {
		f := env.SOAPFault
		return &FeedbackError{Type: m.Type, Code: f.Code, Text: f.FaultString}
	}
	if env.Type != want {
		return fmt.Errorf("%w: %s to %s", ErrAnswer, env.Type, m.Type)
	}
	if r.Signature == nil || r.Signature.Block != "SupplierSignature" {
		return fmt.Errorf("%w: %s without SupplierSignature", ErrAnswer, env.Type)
	}
	if c.IntermediarySignature != nil && !r.Signer().Equal(c.IntermediarySignature) {
		return fmt.Errorf("%w: %s signed by another certificate than the intermediary's", ErrAnswer, env.Type)
	}
	if !r.Encrypted {
		return fmt.Errorf("%w: %s not transport-encrypted", ErrAnswer, env.Type)
	}
	cb := env.ControlBlock
	if cb == nil || !cb.HasResponse || cb.Response != m.Control.Challenge {
		return fmt.Errorf("%w: %s does not answer the request's challenge", ErrAnswer, env.Type)
	}
	r.Feedback = env.Feedback()
	for _, f := range r.Feedback {
		if f.Code.Error() {
			return &FeedbackError{Type: m.Type, Code: f.Code, Text: f.Text}
		}
	}
	return nil
}
