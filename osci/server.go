package osci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Supplier is the answering side of an OSCI exchange: the intermediary, or a passive
// recipient answering the intermediary. Its cipher key opens transport-encrypted
// requests, its signature key makes the SupplierSignature of its answers.
type Supplier struct {
	Decrypter Decrypter
	// Signer and SignatureCertificate sign answers; a nil Signer answers unsigned.
	Signer               crypto.Signer
	SignatureCertificate *cert.Certificate
	// Method is the SupplierSignature's method; default rsa-sha256.
	Method string
	// CipherCertificate is written beside the signature certificate where the
	// message type wants it (requests the supplier makes, such as acceptDelivery).
	CipherCertificate *cert.Certificate
	Limits            Limits
}

// RefusedError is a message refused with the feedback code that says why.
type RefusedError struct {
	Code Code
	Err  error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("osci: refused (%s): %v", e.Code, e.Err) }
func (e *RefusedError) Unwrap() error { return e.Err }

// Refuse wraps err with the feedback code to answer.
func Refuse(code Code, err error) error { return &RefusedError{Code: code, Err: err} }

// FeedbackCode is the code to answer a failure with: a RefusedError's own, else the
// one the package's sentinel errors stand for, else 9000 (internal error).
func FeedbackCode(err error) Code {
	var re *RefusedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, ErrTooLarge):
		return CodeMessageTooLarge
	case errors.Is(err, ErrDecrypt):
		return CodeNotDecryptable
	case errors.Is(err, ErrNotSigned):
		return CodeNotAllSigned
	case errors.Is(err, ErrSignatureInvalid):
		return CodeSignatureInvalid
	case errors.Is(err, ErrFormat):
		return CodeNotOSCI
	}
	return CodeInternalError
}

// Request is a message as the supplier read it: opened, parsed, its signature checked.
type Request struct {
	// Message is the message inside the transport encryption, or the message as it
	// came when it was not encrypted.
	Message  *Multipart
	Envelope *Envelope
	// Encrypted says the message came transport-encrypted, so the answer must be too.
	Encrypted bool
	// Signature is the check of the ClientSignature (SupplierSignature of an answer
	// read by ReadAnswer); nil when the message carries none.
	Signature *SignatureCheck
}

// ReadRequest reads one message with its own MIME headers, as the reference library
// posts it, opens the transport encryption and checks the message signature. Every
// refusal is an error FeedbackCode maps to the code to answer with; the parts of a
// refused message are removed from spool where it can.
func (s Supplier) ReadRequest(ctx context.Context, r io.Reader, spool Spool) (*Request, error) {
	lim := s.Limits
	outer, err := ReadMessage(ctx, r, lim, spool)
	if err != nil {
		return nil, fmt.Errorf("osci: reading the request: %w", err)
	}
	req, err := s.open(ctx, outer, spool)
	if err != nil {
		removeSpooled(spool, outer)
		return nil, err
	}
	if req.Message != outer {
		removeSpooled(spool, outer)
	}
	return req, nil
}

func (s Supplier) open(ctx context.Context, m *Multipart, spool Spool) (*Request, error) {
	env, err := ParseEnvelope(m.Envelope, s.Limits)
	if err != nil {
		return nil, fmt.Errorf("osci: parsing the request: %w", err)
	}
	req := &Request{Message: m, Envelope: env}
	if env.Type == Encrypted {
		inner, _, err := DecryptTransport(ctx, env, m, s.Decrypter, s.Limits, spool)
		if err != nil {
			return nil, fmt.Errorf("osci: opening the request: %w", err)
		}
		if req.Envelope, err = ParseEnvelope(inner.Envelope, s.Limits); err != nil {
			removeSpooled(spool, inner)
			return nil, fmt.Errorf("osci: parsing the decrypted request: %w", err)
		}
		if req.Envelope.Type == Encrypted {
			removeSpooled(spool, inner)
			return nil, Refuse(CodeNotOSCI, errors.New("osci: transport encryption inside transport encryption"))
		}
		req.Message, req.Encrypted = inner, true
	}
	if req.Envelope.ClientSignature == nil && req.Envelope.SupplierSignature == nil {
		return req, nil
	}
	chk, err := req.Envelope.VerifySignature(ctx, req.Message)
	if err != nil {
		s.drop(spool, req)
		return nil, fmt.Errorf("osci: checking the message signature: %w", err)
	}
	req.Signature = chk
	if !chk.Valid() {
		s.drop(spool, req)
		return nil, Refuse(chk.Code(), fmt.Errorf("osci: message signature: %w", chk.Err()))
	}
	return req, nil
}

func (s Supplier) drop(spool Spool, req *Request) {
	removeSpooled(spool, req.Message)
}

// Type is the request's message type.
func (r *Request) Type() MessageType { return r.Envelope.Type }

// Certificate returns the certificate of a role (CipherCertificateOriginator,
// SignatureCertificateOriginator, CipherCertificateAddressee, ...) from the
// request's certificate blocks, nil when it has none.
func (r *Request) Certificate(role string) *cert.Certificate {
	for _, b := range []*Certificates{r.Envelope.NonIntermediaryCertificates, r.Envelope.IntermediaryCertificates} {
		if b == nil {
			continue
		}
		if es := b.Role(role); len(es) > 0 {
			return es[0].Cert
		}
	}
	return nil
}

// Signer is the certificate the message signature was made with, nil when unsigned.
func (r *Request) Signer() *cert.Certificate {
	if r.Signature == nil || r.Signature.Signer == nil {
		return nil
	}
	return r.Signature.Signer.Cert
}

// ContentPackageXML is the content of the request's osci:ContentPackage, each child
// canonicalized (inclusive C14N, which keeps the namespaces in scope and so every
// signature and ciphertext inside valid) for composing it into another message: the
// intermediary hands on what the originator sent. nil when there is none.
func (r *Request) ContentPackageXML() []byte {
	cp := r.Envelope.ContentPackage
	if cp == nil {
		return nil
	}
	var b bytes.Buffer
	for _, k := range cp.Element.Elements() {
		b.Write(xmldsig.C14N{}.Canonicalize(k, nil))
	}
	return b.Bytes()
}

// Answer is a message the supplier sends: a response to a request, or a request of
// its own to a passive recipient (acceptDelivery, processDelivery).
type Answer struct {
	Message Message
	// Attachments are written after the envelope and signed with it.
	Attachments []*Part
	// EncryptFor is the cipher certificate of the reader of the transport encryption;
	// nil sends the message in the clear.
	EncryptFor *x509.Certificate
	// CertificateRoles names the supplier's certificate entries, signature first;
	// default SignatureCertificateIntermediary only, which is what responses carry.
	CertificateRoles []string
}

// WriteAnswer composes, signs and (with EncryptFor) transport-encrypts a, writing it
// with its own MIME headers as the reference library reads it from an HTTP body.
func (s Supplier) WriteAnswer(ctx context.Context, w io.Writer, a *Answer) error {
	m := a.Message
	if s.Signer != nil {
		if err := s.addCertificates(&m, a.CertificateRoles); err != nil {
			return err
		}
		m.Signed = true
	}
	envelope, err := ComposeEnvelope(&m)
	if err != nil {
		return err
	}
	if s.Signer != nil {
		if envelope, err = s.sign(ctx, envelope, a.Attachments); err != nil {
			return err
		}
	}
	parts := make([]OutPart, 0, len(a.Attachments))
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for _, p := range a.Attachments {
		rc, err := p.Open()
		if err != nil {
			return fmt.Errorf("osci: opening attachment <%s>: %w", p.ContentID, err)
		}
		closers = append(closers, rc)
		parts = append(parts, OutPart{ContentID: p.ContentID, ContentType: p.ContentType, TransferEncoding: p.TransferEncoding, Size: p.Size, Body: rc})
	}
	if a.EncryptFor == nil {
		return WriteMessage(w, NewBoundary(), true, envelope, parts)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(WriteMessage(pw, NewBoundary(), true, envelope, parts))
	}()
	// xmlenc writes osci128:IvLength, without which the library assumes the 16-byte IV
	// of its old versions.
	err = Encryptor{Recipients: []*x509.Certificate{a.EncryptFor}}.EncryptTransport(ctx, pr, w, NewBoundary(), true)
	_ = pr.CloseWithError(io.ErrClosedPipe)
	return err
}

func (s Supplier) addCertificates(m *Message, roles []string) error {
	if s.SignatureCertificate == nil {
		return errors.New("osci: answering: a signer without its certificate")
	}
	if len(roles) == 0 {
		roles = []string{"SignatureCertificateIntermediary"}
	}
	for _, role := range roles {
		c, use := s.SignatureCertificate, "signature"
		if strings.HasPrefix(role, "Cipher") {
			c, use = s.CipherCertificate, "cipher"
		}
		if c == nil {
			return fmt.Errorf("osci: answering: no certificate for %s", role)
		}
		m.IntermediaryCertificates = append(m.IntermediaryCertificates, CertificateEntry{Role: role, ID: CertificateID("intermed", use, c), Cert: c})
	}
	return nil
}

func (s Supplier) sign(ctx context.Context, envelope []byte, parts []*Part) ([]byte, error) {
	byID := map[string]*Part{}
	var ids []string
	for _, p := range parts {
		byID[p.ContentID] = p
		ids = append(ids, p.ContentID)
	}
	return SignEnvelope(ctx, envelope, SignOptions{
		Signer:        s.Signer,
		Method:        s.Method,
		CertificateID: CertificateID("intermed", "signature", s.SignatureCertificate),
		Attachments:   ids,
		Open: func(_ context.Context, cid string) (io.ReadCloser, error) {
			p := byID[cid]
			if p == nil {
				return nil, fmt.Errorf("osci: signing: no attachment <%s>", cid)
			}
			return p.Open()
		},
		Limits: s.Limits,
	})
}

// WriteFault writes a SOAP fault carrying code in the framing the reference library
// reads a fault in: the MIME message with its headers, in the clear, since a request
// that could not be opened leaves no key to encrypt the answer for. 9000 and 9503 are
// the supplier's own failures (soap:Server), every other code the client's.
func WriteFault(w io.Writer, code Code, text string) error {
	kind := "Client"
	if code == CodeInternalError || code == CodeClientCipherCertInternal {
		kind = "Server"
	}
	if text == "" {
		text = code.Text()
	}
	var env bytes.Buffer
	env.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\r\n\r\n")
	env.WriteString(`<soap:Envelope xmlns:soap="` + NamespaceSOAP + `" xmlns:osci="` + NamespaceOSCI + `"><soap:Body><soap:Fault>`)
	env.WriteString(`<faultcode>soap:` + kind + `</faultcode>`)
	writeText(&env, "faultstring", text)
	env.WriteString(`<detail>`)
	writeText(&env, "osci:Code", code.String())
	env.WriteString(`</detail></soap:Fault></soap:Body></soap:Envelope>`)
	return WriteMessage(w, NewBoundary(), true, env.Bytes(), nil)
}
