package intermediary

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/poststelle/poststelle/osci"
)

// forwardDelivery hands a delivery on to the addressee's passive recipient as
// acceptDelivery, at once and within the request, and answers with the recipient's
// verdict and the process card: creation, forwarding, reception.
func (s *Server) forwardDelivery(ctx context.Context, x *exchange) (*osci.Answer, error) {
	d, addressee, err := s.newDelivery(ctx, x)
	if err != nil {
		return nil, err
	}
	target, err := s.passiveURL(addressee, x.req.Envelope.Operation.ContentReceiver)
	if err != nil {
		return nil, err
	}
	forwarding := s.timestamp(ctx, "forwarding", nil, nil)
	s.mu.Lock()
	err = s.takeMessageID(d.id)
	if err == nil {
		d.forwarding, d.modified = forwarding, forwarding.Plain
		s.state.add(d)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	answer, err := s.accept(ctx, target, addressee, d)
	if err != nil {
		return nil, err
	}
	reception := s.timestamp(ctx, "reception", d.quality, d.content)
	s.mu.Lock()
	d.reception, d.modified = reception, s.now()
	s.commit(x)
	bundle := d.bundle()
	// The delivery went through; the attachments are the request's and go with it.
	d.parts, d.content = nil, nil
	s.mu.Unlock()
	fb := append(feedback(x), answer...)
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToForwardDelivery,
		Operation: osci.Operation{Feedback: fb, ProcessCards: []osci.ProcessCardBundle{bundle}}}}, nil
}

// passiveURL is where the addressee's passive recipient listens: configured for its
// certificate, else what the sender named; a test fixture posts to loopback only.
func (s *Server) passiveURL(addressee *x509.Certificate, receiver string) (string, error) {
	target := s.cfg.Passive[CertificateKey(addressee)]
	if target == "" {
		target = receiver
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", refuse(osci.CodeForwardFailedNotReached, "recipient URL %.80q", target)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return "", refuse(osci.CodeForwardFailedNotReached, "recipient URL %.80q is not a loopback address", target)
	}
	return target, nil
}

// accept posts acceptDelivery, encrypted for the addressee, and checks the answer: a
// responseToAcceptDelivery answering our challenge, encrypted for us and signed when
// it says so. It returns the recipient's feedback, to be passed on.
func (s *Server) accept(ctx context.Context, target string, addressee *x509.Certificate, d *delivery) ([]osci.FeedbackEntry, error) {
	challenge := token(10)
	a := &osci.Answer{
		Message: osci.Message{
			Type:                        osci.AcceptDelivery,
			Control:                     osci.ControlBlock{Challenge: challenge, HasChallenge: true},
			Operation:                   osci.Operation{ProcessCards: []osci.ProcessCardBundle{d.bundle()}},
			NonIntermediaryCertificates: d.certificates,
			ContentPackage:              d.content,
		},
		Attachments:      d.parts,
		EncryptFor:       addressee,
		CertificateRoles: []string{"CipherCertificateIntermediary", "SignatureCertificateIntermediary"},
	}
	var body bytes.Buffer
	if err := s.supplier.WriteAnswer(ctx, &body, a); err != nil {
		return nil, refuse(osci.CodeForwardFailedNotReached, "composing acceptDelivery: %v", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, &body)
	if err != nil {
		return nil, refuse(osci.CodeForwardFailedNotReached, "acceptDelivery: %v", err)
	}
	hreq.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	resp, err := s.cfg.HTTP.Do(hreq)
	if err != nil {
		return nil, refuse(osci.CodeForwardFailedNotReached, "posting acceptDelivery: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, refuse(osci.CodeForwardFailedReached, "the recipient answered HTTP %d", resp.StatusCode)
	}
	lim := s.cfg.Limits
	if lim.MaxMessageBytes == 0 {
		lim = osci.DefaultLimits()
	}
	back, err := s.supplier.ReadRequest(ctx, io.LimitReader(resp.Body, lim.MaxMessageBytes+1), s.spool)
	if err != nil {
		if osci.FeedbackCode(err) == osci.CodeSignatureInvalid || osci.FeedbackCode(err) == osci.CodeNotAllSigned {
			return nil, refuse(osci.CodeRecipientSignatureInvalid, "the recipient's answer: %v", err)
		}
		return nil, refuse(osci.CodeForwardFailedReached, "reading the recipient's answer: %v", err)
	}
	defer func() { _ = osci.DirSpool{}.Remove(back.Message.Spooled()...) }()
	return checkAcceptAnswer(back, challenge)
}

func checkAcceptAnswer(back *osci.Request, challenge string) ([]osci.FeedbackEntry, error) {
	cb := back.Envelope.ControlBlock
	switch {
	case back.Type() != osci.ResponseToAcceptDelivery:
		return nil, refuse(osci.CodeForwardFailedReached, "the recipient answered with %s", back.Type())
	case cb == nil || cb.Response != challenge:
		return nil, refuse(osci.CodeForwardFailedReached, "the recipient's answer does not answer our challenge")
	}
	fb := back.Envelope.Feedback()
	if len(fb) == 0 {
		return nil, refuse(osci.CodeForwardFailedReached, "the recipient's answer has no feedback")
	}
	if fb[0].Code.Error() {
		return nil, refuse(osci.CodeNotAccepted, "the recipient refused with %s", fb[0].Code)
	}
	// Both are warnings: the delivery arrived, the sender learns how it was answered.
	var warn []osci.FeedbackEntry
	if !back.Encrypted {
		warn = append(warn, osci.Entry(osci.CodeRecipientResponseUnencrypted))
	}
	if back.Signature == nil {
		warn = append(warn, osci.Entry(osci.CodeRecipientSignatureMissing))
	}
	return warn, nil
}
