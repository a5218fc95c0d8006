package osci

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/poststelle/poststelle/crypto/cert"
)

// Client is an OSCI client's side (originator or active recipient) of the dialogs with
// one intermediary: it composes and signs requests, encrypts them for the
// intermediary's cipher certificate, posts them, and opens, checks and reads the
// answers. A Client keeps no state; a Dialog does.
type Client struct {
	// URL is the intermediary's endpoint.
	URL string
	// HTTP posts the requests (http.DefaultClient when nil); its timeouts bound a dialog
	// step together with the context.
	HTTP *http.Client
	// IntermediaryCipher is the certificate requests are transport-encrypted for.
	IntermediaryCipher *x509.Certificate
	// IntermediarySignature, when set, is the only certificate a SupplierSignature is
	// accepted from; an answer signed by another is refused.
	IntermediarySignature *cert.Certificate
	// Signer and SignatureCertificate make the ClientSignature.
	Signer               crypto.Signer
	SignatureCertificate *cert.Certificate
	// Method is the ClientSignature's method (default rsa-sha256).
	Method string
	// Decrypter is the client's cipher key and certificate: answers are encrypted for
	// it, and it names the client's mailbox.
	Decrypter         Decrypter
	CipherCertificate *cert.Certificate
	Limits            Limits
	// Spool keeps the answers' attachments (and, through Raw, the answer as received).
	Spool Spool
}

// FeedbackError is a request the intermediary refused, with its feedback code: from a
// SOAP fault, or from the 9xxx entry of a signed response.
type FeedbackError struct {
	Type MessageType
	Code Code
	Text string
}

func (e *FeedbackError) Error() string {
	return fmt.Sprintf("osci: %s refused with %s: %s", e.Type, e.Code, e.Text)
}

// Temporary reports a refusal worth retrying later unchanged: the intermediary's or
// the recipient's internal trouble, or a recipient not reached.
func (e *FeedbackError) Temporary() bool {
	switch e.Code {
	case CodeInternalError, CodeClientCipherCertInternal, CodeSignatureCheckInternal, CodeCertCheckInternal,
		CodeRecipientInternal, CodeForwardFailedNotReached, CodeExecutionInternal, CodeInnerTimeout:
		return true
	}
	return false
}

// ErrAnswer is wrapped when an answer breaks the dialog rules: wrong type, unsigned,
// signed by another than the intermediary, or not answering the request's challenge.
var ErrAnswer = errors.New("osci: unacceptable answer")

// Response is one answer of the intermediary, opened and checked.
type Response struct {
	*Request
	// Raw is the answer's HTTP body as it came, in the Spool: the evidence to keep
	// (copy it before Close).
	Raw Spooled
	// Feedback is the answer's feedback.
	Feedback []FeedbackEntry
	spool    Spool
}

// Delivery is the content of a storeDelivery or forwardDelivery.
type Delivery struct {
	// Addressee is the recipient's cipher certificate.
	Addressee *cert.Certificate
	// MessageID from GetMessageID, required by the intermediaries.
	MessageID string
	Subject   string
	// ContentPackage is the package's content (EncryptContainer's XML, clear
	// containers); Attachments its parts, whose ciphertext the package refers to.
	ContentPackage []byte
	Attachments    []*Part
	// ContentReceiver is the passive recipient's URL (forwardDelivery only).
	ContentReceiver string
	// QualityOfTimestamp asks for the creation and reception timestamps' quality.
	QualityOfTimestamp []QualityOfTimestamp
	// Keep, when set, receives the signed message as sent inside the transport
	// encryption (with its MIME headers): the sender's copy of what it sent.
	Keep io.Writer
	// OtherAuthors are the signature certificates of content authors other than the
	// originator (whose certificate makes the ClientSignature), listed as
	// SignatureCertificateOtherAuthor with the Id CertificateID("otherauthor",
	// "signature", c) their content signatures name: an EGVP sender signs the message
	// with its VHN certificate and the content with its own key.
	OtherAuthors []*cert.Certificate
}

// Dialog is an explicit dialog (OSCI 1.2 §4.3): its conversation id, the challenge the
// next request answers and the sequence number it carries. Not for concurrent use.
type Dialog struct {
	c         *Client
	id        string
	challenge string
	seq       int64
	closed    bool
}

// ConversationID is the id the intermediary gave the dialog.
func (d *Dialog) ConversationID() string { return d.id }

func newChallenge() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// originatorCerts are the client's certificate entries, with the addressee's cipher
// certificate when there is one, in the schema's order (cipher certificates first).
func (c *Client) originatorCerts(withCipher bool, addressee ...*cert.Certificate) []CertificateEntry {
	var es []CertificateEntry
	if withCipher && c.CipherCertificate != nil {
		es = append(es, CertificateEntry{Role: "CipherCertificateOriginator", ID: CertificateID("originator", "cipher", c.CipherCertificate), Cert: c.CipherCertificate})
	}
	for _, a := range addressee {
		es = append(es, CertificateEntry{Role: "CipherCertificateAddressee", ID: CertificateID("addressee", "cipher", a), Cert: a})
	}
	return append(es, CertificateEntry{Role: "SignatureCertificateOriginator", ID: CertificateID("originator", "signature", c.SignatureCertificate), Cert: c.SignatureCertificate})
}

// InitDialog opens an explicit dialog.
func (c *Client) InitDialog(ctx context.Context) (*Dialog, error) {
	challenge := newChallenge()
	m := &Message{Type: InitDialog, Control: ControlBlock{Challenge: challenge, HasChallenge: true},
		NonIntermediaryCertificates: c.originatorCerts(true)}
	r, err := c.exchange(ctx, m, nil, ResponseToInitDialog)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cb := r.Envelope.ControlBlock
	if cb.ConversationID == "" || !cb.HasChallenge || cb.Challenge == "" {
		return nil, fmt.Errorf("%w: responseToInitDialog without conversation id or challenge", ErrAnswer)
	}
	return &Dialog{c: c, id: cb.ConversationID, challenge: cb.Challenge}, nil
}

// next makes the control block of the dialog's next request.
func (d *Dialog) next() (ControlBlock, error) {
	if d.closed {
		return ControlBlock{}, errors.New("osci: the dialog is closed")
	}
	// Every request brings a challenge, exitDialog too: the intermediary answers each
	// with its response, which is what ties the answer to this request.
	return ControlBlock{ConversationID: d.id, Response: d.challenge, HasResponse: true, SequenceNumber: d.seq, HasSequence: true,
		Challenge: newChallenge(), HasChallenge: true}, nil
}

// step sends a request of the dialog and advances it on success. A refusal the
// intermediary answered leaves the dialog where it was; any other failure leaves it
// unusable, since the intermediary's state is unknown.
func (d *Dialog) step(ctx context.Context, m *Message, want MessageType) (*Response, error) {
	r, err := d.c.exchange(ctx, m, nil, want)
	if err != nil {
		var fe *FeedbackError
		if !errors.As(err, &fe) {
			d.closed = true
		}
		return nil, err
	}
	cb := r.Envelope.ControlBlock
	if cb.ConversationID != d.id || !cb.HasSequence || cb.SequenceNumber != d.seq {
		r.Close()
		d.closed = true
		return nil, fmt.Errorf("%w: %s for conversation %.40q sequence %d, want %.40q %d", ErrAnswer, r.Type(), cb.ConversationID, cb.SequenceNumber, d.id, d.seq)
	}
	d.seq++
	if want == ResponseToExitDialog {
		d.closed = true
	} else if d.challenge = cb.Challenge; !cb.HasChallenge || cb.Challenge == "" {
		r.Close()
		d.closed = true
		return nil, fmt.Errorf("%w: %s without a new challenge", ErrAnswer, r.Type())
	}
	return r, nil
}

// Exit closes the dialog. With an intermediary it also acknowledges what the dialog
// fetched: only after the answer to the last challenge came back may the intermediary
// count the deliveries as received.
func (d *Dialog) Exit(ctx context.Context) error {
	cb, err := d.next()
	if err != nil {
		return err
	}
	r, err := d.step(ctx, &Message{Type: ExitDialog, Control: cb, NonIntermediaryCertificates: d.c.originatorCerts(false)}, ResponseToExitDialog)
	if err != nil {
		return err
	}
	r.Close()
	return nil
}

// FetchDelivery fetches the delivery with the message id, or the oldest of the
// mailbox when id is empty. CodeNoDelivery in a FeedbackError says there is none.
func (d *Dialog) FetchDelivery(ctx context.Context, id string) (*Response, error) {
	cb, err := d.next()
	if err != nil {
		return nil, err
	}
	m := &Message{Type: FetchDelivery, Control: cb, NonIntermediaryCertificates: d.c.originatorCerts(false)}
	if id != "" {
		m.Operation.Selection = &Selection{MessageIDs: []string{id}}
	}
	return d.step(ctx, m, ResponseToFetchDelivery)
}

// FetchProcessCard fetches process cards: by sel (nil: all), at most quantity
// (0: no limit).
func (d *Dialog) FetchProcessCard(ctx context.Context, sel *Selection, quantity int64) (*Response, error) {
	cb, err := d.next()
	if err != nil {
		return nil, err
	}
	m := &Message{Type: FetchProcessCard, Control: cb, NonIntermediaryCertificates: d.c.originatorCerts(false),
		Operation: Operation{Selection: sel, Quantity: quantity}}
	return d.step(ctx, m, ResponseToFetchProcessCard)
}

// implicit is the control block of a request in an implicit dialog.
func implicit() ControlBlock {
	return ControlBlock{Challenge: newChallenge(), HasChallenge: true, SequenceNumber: 0, HasSequence: true}
}

// GetMessageID asks the intermediary for a message id, in an implicit dialog.
func (c *Client) GetMessageID(ctx context.Context) (string, error) {
	r, err := c.exchange(ctx, &Message{Type: GetMessageID, Control: implicit(), NonIntermediaryCertificates: c.originatorCerts(true)}, nil, ResponseToGetMessageID)
	if err != nil {
		return "", err
	}
	defer r.Close()
	if r.Envelope.Operation.MessageID == "" {
		return "", fmt.Errorf("%w: responseToGetMessageId without a message id", ErrAnswer)
	}
	return r.Envelope.Operation.MessageID, nil
}

// StoreDelivery stores d in the addressee's mailbox at the intermediary (implicit
// dialog); the answer's process card says when it arrived.
func (c *Client) StoreDelivery(ctx context.Context, d *Delivery) (*Response, error) {
	return c.deliver(ctx, StoreDelivery, d)
}

// ForwardDelivery has the intermediary hand d to the addressee's passive recipient at
// once; the answer carries the recipient's feedback and the process card.
func (c *Client) ForwardDelivery(ctx context.Context, d *Delivery) (*Response, error) {
	return c.deliver(ctx, ForwardDelivery, d)
}

func (c *Client) deliver(ctx context.Context, t MessageType, d *Delivery) (*Response, error) {
	if d.Addressee == nil {
		return nil, fmt.Errorf("osci: %s without the addressee's cipher certificate", t)
	}
	certs := c.originatorCerts(true, d.Addressee)
	for _, a := range d.OtherAuthors {
		certs = append(certs, CertificateEntry{Role: "SignatureCertificateOtherAuthor", ID: CertificateID("otherauthor", "signature", a), Cert: a})
	}
	m := &Message{Type: t, Control: implicit(), QualityOfTimestamp: d.QualityOfTimestamp,
		Operation:                   Operation{MessageID: d.MessageID, Subject: d.Subject, ContentReceiver: d.ContentReceiver},
		NonIntermediaryCertificates: certs, ContentPackage: d.ContentPackage}
	want := ResponseToStoreDelivery
	if t == ForwardDelivery {
		want = ResponseToForwardDelivery
	}
	return c.exchangeKeep(ctx, m, d.Attachments, want, d.Keep)
}

// Close removes what the response spooled (Raw included), where the spool can; keep
// what is needed first.
func (r *Response) Close() {
	if r == nil || r.Request == nil {
		return
	}
	if rm, ok := r.spool.(Remover); ok {
		_ = rm.Remove(append(r.Message.Spooled(), r.Raw)...)
	}
}
