package intermediary

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/osci"
)

// exchange is one request being handled: the request, the dialog it belongs to (nil
// in an implicit dialog) and the control block of the answer.
type exchange struct {
	req     *osci.Request
	dialog  *dialog
	control osci.ControlBlock
	// challenge is the new challenge of an explicit dialog, committed on success.
	challenge string
	encryptTo *x509.Certificate
}

func refuse(code osci.Code, format string, args ...any) error {
	return osci.Refuse(code, fmt.Errorf("intermediary: "+format, args...))
}

// handle runs one request; kept says its attachments now belong to a stored delivery.
func (s *Server) handle(ctx context.Context, req *osci.Request) (ans *osci.Answer, kept bool, err error) {
	if req.Type().IsResponse() || req.Type() == osci.AcceptDelivery || req.Type() == osci.ProcessDelivery {
		return nil, false, refuse(osci.CodeInvalidRequest, "%s is not a request to an intermediary", req.Type())
	}
	if req.Signature == nil {
		return nil, false, refuse(osci.CodeSignatureRequired, "%s without ClientSignature", req.Type())
	}
	s.mu.Lock()
	x, err := s.control(req)
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	switch req.Type() {
	case osci.InitDialog:
		ans, err = s.initDialog(x)
	case osci.ExitDialog:
		ans, err = s.exitDialog(x)
	case osci.GetMessageID:
		ans, err = s.getMessageID(x)
	case osci.StoreDelivery:
		ans, err = s.storeDelivery(ctx, x)
		kept = err == nil
	case osci.FetchDelivery:
		ans, err = s.fetchDelivery(x)
	case osci.FetchProcessCard:
		ans, err = s.fetchProcessCard(x)
	case osci.ForwardDelivery:
		ans, err = s.forwardDelivery(ctx, x)
	default:
		err = refuse(osci.CodeInvalidRequest, "%s is not implemented by the stand-in", req.Type())
	}
	if err != nil {
		return nil, false, err
	}
	ans.Message.Control = x.control
	ans.EncryptFor = x.encryptTo
	return ans, kept, nil
}

// implicitTypes may come without an explicit dialog (OSCI 1.2 §4.3).
var implicitTypes = map[osci.MessageType]bool{
	osci.GetMessageID: true, osci.StoreDelivery: true, osci.ForwardDelivery: true, osci.MediateDelivery: true,
}

// control checks the request's ControlBlock against the dialogs (challenge and
// response, conversation id, sequence number, a replayed challenge) and prepares the
// answer's. It does not advance the dialog: a refused request leaves it as it was.
func (s *Server) control(req *osci.Request) (*exchange, error) {
	cb := req.Envelope.ControlBlock
	if cb == nil || !cb.HasChallenge || cb.Challenge == "" {
		return nil, refuse(osci.CodeWrongDialogParameters, "no challenge in the control block")
	}
	st := s.state
	if !st.seeChallenge(cb.Challenge) {
		return nil, refuse(osci.CodeWrongDialogParameters, "challenge %.40q was sent before", cb.Challenge)
	}
	x := &exchange{req: req}
	x.control = osci.ControlBlock{Response: cb.Challenge, HasResponse: true}
	signer := req.Signer()
	switch {
	case req.Type() == osci.InitDialog:
		if cb.ConversationID != "" {
			return nil, refuse(osci.CodeWrongDialogParameters, "initDialog inside dialog %.40q", cb.ConversationID)
		}
		if len(st.dialogs) >= maxDialogs {
			return nil, refuse(osci.CodeInternalError, "too many open dialogs")
		}
		x.control.ConversationID = token(16)
	case cb.ConversationID == "":
		if !implicitTypes[req.Type()] {
			return nil, refuse(osci.CodeDialogRequired, "%s outside an explicit dialog", req.Type())
		}
		// The library wants a conversation id and the sequence number back even here.
		x.control.ConversationID = token(16)
		x.control.SequenceNumber, x.control.HasSequence = cb.SequenceNumber, true
	default:
		d := st.dialogs[cb.ConversationID]
		switch {
		case d == nil:
			return nil, refuse(osci.CodeWrongDialogParameters, "no open dialog %.40q", cb.ConversationID)
		case !cb.HasResponse || cb.Response != d.challenge:
			return nil, refuse(osci.CodeWrongDialogParameters, "response %.40q does not answer the challenge", cb.Response)
		case !cb.HasSequence || cb.SequenceNumber != d.seq+1:
			return nil, refuse(osci.CodeWrongDialogParameters, "sequence number %d, want %d", cb.SequenceNumber, d.seq+1)
		case !signer.Equal(d.signer):
			return nil, refuse(osci.CodeWrongDialogParameters, "signed by another client than the dialog's")
		}
		x.dialog = d
		x.control.ConversationID = d.id
		x.control.SequenceNumber, x.control.HasSequence = cb.SequenceNumber, true
	}
	if req.Type() != osci.ExitDialog && (x.dialog != nil || req.Type() == osci.InitDialog) {
		x.challenge = token(10)
		x.control.Challenge, x.control.HasChallenge = x.challenge, true
	}
	if req.Encrypted {
		c, err := s.clientCipher(req, x.dialog)
		if err != nil {
			return nil, err
		}
		x.encryptTo = c
	}
	return x, nil
}

func (s *Server) clientCipher(req *osci.Request, d *dialog) (*x509.Certificate, error) {
	if c := req.Certificate("CipherCertificateOriginator"); c != nil {
		return x509.ParseCertificate(c.Raw)
	}
	if d != nil && d.cipher != nil {
		return d.cipher, nil
	}
	return nil, refuse(osci.CodeClientCipherCertMissing, "no cipher certificate to encrypt the answer for")
}

// commit advances an explicit dialog after its request succeeded.
func (s *Server) commit(x *exchange) {
	if x.dialog == nil {
		return
	}
	x.dialog.seq = x.control.SequenceNumber
	x.dialog.challenge = x.challenge
}

func feedback(x *exchange) []osci.FeedbackEntry {
	if x.dialog != nil && x.req.Type() != osci.ExitDialog {
		return []osci.FeedbackEntry{osci.Entry(osci.CodeDialogOpen)}
	}
	return []osci.FeedbackEntry{osci.Entry(osci.CodeDialogClosed)}
}

func (s *Server) initDialog(x *exchange) (*osci.Answer, error) {
	if x.req.Encrypted && x.encryptTo == nil {
		return nil, refuse(osci.CodeClientCipherCertMissing, "initDialog without the client's cipher certificate")
	}
	d := &dialog{id: x.control.ConversationID, signer: x.req.Signer(), cipher: x.encryptTo, challenge: x.challenge, seq: -1}
	if c := x.req.Certificate("CipherCertificateOriginator"); c != nil && d.cipher == nil {
		d.cipher, _ = x509.ParseCertificate(c.Raw)
	}
	s.mu.Lock()
	s.state.dialogs[d.id] = d
	s.mu.Unlock()
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToInitDialog,
		Operation: osci.Operation{Feedback: []osci.FeedbackEntry{osci.Entry(osci.CodeDialogOpen)}}}}, nil
}

// exitDialog ends the dialog; the deliveries fetched in it count as acknowledged and
// leave the mailbox.
func (s *Server) exitDialog(x *exchange) (*osci.Answer, error) {
	s.mu.Lock()
	delete(s.state.dialogs, x.dialog.id)
	var parts []*osci.Part
	for _, d := range x.dialog.fetched {
		if s.state.remove(d) {
			parts = append(parts, d.parts...)
			d.parts, d.content = nil, nil
		}
	}
	s.mu.Unlock()
	_ = osci.DirSpool{}.Remove(spooled(parts)...)
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToExitDialog,
		Operation: osci.Operation{Feedback: feedback(x)}}}, nil
}

func spooled(parts []*osci.Part) []osci.Spooled {
	out := make([]osci.Spooled, 0, len(parts))
	for _, p := range parts {
		out = append(out, p.Data)
	}
	return out
}

func (s *Server) getMessageID(x *exchange) (*osci.Answer, error) {
	id := newMessageID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.state.issued) >= maxIssuedIDs {
		return nil, refuse(osci.CodeInternalError, "too many message ids outstanding")
	}
	s.state.issued[id] = true
	s.commit(x)
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToGetMessageID,
		Operation: osci.Operation{Feedback: feedback(x), MessageID: id}}}, nil
}

// takeMessageID checks a delivery's message id: issued by us, not used before.
func (s *Server) takeMessageID(id string) error {
	switch st := s.state; {
	case id == "":
		return refuse(osci.CodeNoMessageID, "delivery without MessageId")
	case st.used[id]:
		return refuse(osci.CodeIllegalMessageID, "MessageId %.60q was used before", id)
	case !st.issued[id]:
		return refuse(osci.CodeIllegalMessageID, "MessageId %.60q was not issued here", id)
	}
	delete(s.state.issued, id)
	s.state.used[id] = true
	return nil
}

// newDelivery reads what a store or forward request says about its delivery and
// checks its certificates, refusing an addressee certificate that does not verify.
func (s *Server) newDelivery(ctx context.Context, x *exchange) (*delivery, *x509.Certificate, error) {
	req := x.req
	op := req.Envelope.Operation
	addr := req.Certificate("CipherCertificateAddressee")
	if addr == nil {
		return nil, nil, refuse(osci.CodeInvalidRequest, "%s without the addressee's cipher certificate", req.Type())
	}
	addrX, err := x509.ParseCertificate(addr.Raw)
	if err != nil {
		return nil, nil, refuse(osci.CodeInvalidRequest, "addressee certificate: %v", err)
	}
	now := s.now()
	d := &delivery{
		id: op.MessageID, subject: op.Subject, addressee: derKey(addr.Raw), originator: req.Signer(),
		content: req.ContentPackageXML(), parts: req.Message.Parts, quality: req.Envelope.QualityOfTimestamp,
		modified: now,
	}
	if nic := req.Envelope.NonIntermediaryCertificates; nic != nil {
		d.certificates = nic.Entries
	}
	d.creation = s.timestamp(ctx, "creation", d.quality, req.Message.Envelope)
	var addrResult string
	for _, e := range d.certificates {
		in := s.inspect(ctx, e.Cert, now)
		if e.Role == "CipherCertificateAddressee" {
			addrResult = in.MathResult
		}
		d.inspections = append(d.inspections, in)
	}
	if addrResult != "ok" && len(s.cfg.Keys.Roots) > 0 {
		return nil, nil, refuse(osci.CodeRecipientCipherCertBadSignature, "the addressee's cipher certificate %q does not verify (%s)", addrX.Subject, addrResult)
	}
	return d, addrX, nil
}

// inspect checks one certificate for the inspection report: its signature against
// the configured roots and its validity period offline, and online with the OCSP
// responder it names when that is on a loopback address (online.go).
func (s *Server) inspect(ctx context.Context, c *cert.Certificate, now time.Time) osci.Inspection {
	x, err := x509.ParseCertificate(c.Raw)
	in := osci.Inspection{CertType: "unknown", MathResult: "indeterminate", OfflineResult: "indeterminate"}
	in.Timestamp = osci.Timestamp{Plain: now}
	if err != nil {
		in.MathResult = "corrupted"
		return in
	}
	in.X509SubjectName, in.X509IssuerName, in.X509Serial = x.Subject.String(), x.Issuer.String(), x.SerialNumber
	if len(s.cfg.Keys.Roots) == 0 {
		return in
	}
	in.MathResult = "corrupted"
	var issuer *x509.Certificate
	for _, r := range s.cfg.Keys.Roots {
		if x.CheckSignatureFrom(r) == nil {
			in.MathResult, issuer = "ok", r
			break
		}
	}
	t := in.Timestamp.Plain
	switch {
	case in.MathResult != "ok":
		in.OfflineResult = "invalid"
	case t.Before(x.NotBefore) || t.After(x.NotAfter):
		in.OfflineResult = "invalid"
	default:
		in.OfflineResult = "valid"
	}
	if issuer != nil {
		in.OnlineResult, in.OCSP = s.online(ctx, x, issuer)
	}
	return in
}

// timestamp is the intermediary's time for a process card entry: a token from the
// TSA when the client asked for a cryptographic one and a TSA is configured, else
// plain.
func (s *Server) timestamp(ctx context.Context, service string, quality []osci.QualityOfTimestamp, data []byte) *osci.Timestamp {
	plain := s.now()
	for _, q := range quality {
		if q.Service != service || q.Quality != "cryptographic" {
			continue
		}
		if s.cfg.Timestamps == nil {
			s.log.Warn("cryptographic timestamp asked for, no TSA configured: plain", "service", service)
			break
		}
		sum := sha256.Sum256(data)
		st, err := s.cfg.Timestamps.Timestamp(ctx, sum[:])
		if err != nil {
			s.log.Warn("timestamp failed: plain", "service", service, "err", err)
			break
		}
		return &osci.Timestamp{Cryptographic: st.Raw, Algorithm: "http://www.w3.org/2001/04/xmlenc#sha256"}
	}
	return &osci.Timestamp{Plain: plain}
}

func (s *Server) storeDelivery(ctx context.Context, x *exchange) (*osci.Answer, error) {
	d, _, err := s.newDelivery(ctx, x)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.takeMessageID(d.id); err != nil {
		return nil, err
	}
	s.state.add(d)
	s.state.mailboxes[d.addressee] = append(s.state.mailboxes[d.addressee], d)
	s.commit(x)
	s.log.Info("delivery stored", "messageId", d.id, "addressee", d.addressee[:16])
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToStoreDelivery,
		Operation: osci.Operation{Feedback: feedback(x), ProcessCards: []osci.ProcessCardBundle{d.bundle()}}}}, nil
}

// fetchDelivery hands out the selected delivery of the dialog client's mailbox (by
// message id, else the oldest) and records its reception.
func (s *Server) fetchDelivery(x *exchange) (*osci.Answer, error) {
	if x.dialog.cipher == nil {
		return nil, refuse(osci.CodeClientCipherCertMissing, "the dialog has no cipher certificate, so no mailbox")
	}
	sel := x.req.Envelope.Operation.Selection
	s.mu.Lock()
	defer s.mu.Unlock()
	box := s.state.mailboxes[CertificateKey(x.dialog.cipher)]
	var d *delivery
	for _, c := range box {
		if sel == nil || len(sel.MessageIDs) == 0 || contains(sel.MessageIDs, c.id) {
			d = c
			break
		}
	}
	if d == nil {
		return nil, refuse(osci.CodeNoDelivery, "no delivery for this mailbox matches")
	}
	if d.reception == nil {
		d.reception = s.timestamp(context.Background(), "reception", d.quality, d.content)
		d.modified = s.now()
	}
	x.dialog.fetched = append(x.dialog.fetched, d)
	s.commit(x)
	var certs []osci.CertificateEntry
	for _, e := range d.certificates {
		if e.Role != "SignatureCertificateAddressee" {
			certs = append(certs, e)
		}
	}
	echo := sel
	if echo == nil {
		echo = &osci.Selection{MessageIDs: []string{d.id}}
	}
	return &osci.Answer{
		Message: osci.Message{Type: osci.ResponseToFetchDelivery,
			Operation:                   osci.Operation{Feedback: feedback(x), Selection: echo, ProcessCards: []osci.ProcessCardBundle{d.bundle()}},
			NonIntermediaryCertificates: certs, ContentPackage: d.content},
		Attachments: d.parts,
	}, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// fetchProcessCard gives the process cards of the deliveries the client sent (by its
// signature certificate) or received (by the dialog's cipher certificate).
func (s *Server) fetchProcessCard(x *exchange) (*osci.Answer, error) {
	op := x.req.Envelope.Operation
	var ids []string
	if op.Selection != nil {
		ids = op.Selection.MessageIDs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine string
	if x.dialog.cipher != nil {
		mine = CertificateKey(x.dialog.cipher)
	}
	var cards []osci.ProcessCardBundle
	for _, id := range s.state.order {
		d := s.state.deliveries[id]
		if len(ids) > 0 && !contains(ids, d.id) {
			continue
		}
		if !d.originator.Equal(x.dialog.signer) && d.addressee != mine {
			continue
		}
		cards = append(cards, d.bundle())
	}
	if len(cards) == 0 && len(ids) > 0 {
		return nil, refuse(osci.CodeNoProcessCard, "no process card of this client matches")
	}
	if op.Quantity > 0 && int64(len(cards)) > op.Quantity {
		cards = cards[:op.Quantity]
	}
	s.commit(x)
	return &osci.Answer{Message: osci.Message{Type: osci.ResponseToFetchProcessCard,
		Operation: osci.Operation{Feedback: feedback(x), Selection: op.Selection, ProcessCards: cards}}}, nil
}

// now is the intermediary's clock in the precision process cards carry.
func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }
