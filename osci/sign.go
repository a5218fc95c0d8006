package osci

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// C14NInclusive is Canonical XML 1.0, which OSCI signatures use for SignedInfo and
// every same-document reference.
const C14NInclusive = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

// SignOptions describe the message signature SignEnvelope makes.
type SignOptions struct {
	Signer crypto.Signer
	// Method is the signature method; default rsa-sha256
	// (xmldsig.AlgRSAPSSSHA256 for RSA-PSS, as EGVP sends).
	Method string
	// Digest for every reference; default SHA-256.
	Digest crypto.Hash
	// CertificateID is the Id of the signer's certificate entry in the envelope,
	// which ds:KeyInfo/ds:RetrievalMethod names as OSCI requires.
	CertificateID string
	// Attachments are the Content-IDs of the parts to sign; Open opens each.
	Attachments []string
	Open        func(ctx context.Context, contentID string) (io.ReadCloser, error)
	// Limits bound the re-parsing of the envelope.
	Limits Limits
}

// SignEnvelope fills the empty ClientSignature or SupplierSignature block of an
// envelope made by ComposeEnvelope (Message.Signed): one reference per header block
// other than the signature's own and the body, by Id, and one per attachment, by cid:.
// That is what VerifySignature requires of a valid signature.
func SignEnvelope(ctx context.Context, envelope []byte, opts SignOptions) ([]byte, error) {
	lim := opts.Limits.withDefaults()
	env, err := parseEnvelope(envelope, lim, true)
	if err != nil {
		return nil, fmt.Errorf("osci: signing: %w", err)
	}
	block := env.ClientSignature
	if block == nil {
		block = env.SupplierSignature
	}
	if block == nil || len(block.Children) > 0 {
		return nil, errors.New("osci: signing: the envelope has no empty signature block")
	}
	if opts.CertificateID == "" {
		return nil, errors.New("osci: signing: no certificate Id for the RetrievalMethod")
	}
	so := xmldsig.SignOptions{
		Signer: opts.Signer,
		Method: opts.Method,
		C14N:   C14NInclusive,
		Parent: func(d *xmldsig.Document) (*xmldsig.Element, error) {
			return d.Root.Elements()[0].Child(NamespaceOSCI, block.Local), nil
		},
		Limits: lim.XML,
	}
	for _, e := range env.signedElements(block) {
		ref := id(e)
		if ref == "" {
			return nil, fmt.Errorf("osci: signing: <%s> has no Id to reference", e.Local)
		}
		so.References = append(so.References, xmldsig.SignReference{URI: "#" + ref, Transforms: []string{C14NInclusive}, Digest: opts.Digest})
	}
	for _, cid := range opts.Attachments {
		so.References = append(so.References, xmldsig.SignReference{URI: "cid:" + cid, Digest: opts.Digest})
	}
	if len(opts.Attachments) > 0 {
		if opts.Open == nil {
			return nil, errors.New("osci: signing: attachments without a way to open them")
		}
		so.Resolver = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			return opts.Open(ctx, uri[len("cid:"):])
		}
	}
	signed, err := xmldsig.Sign(ctx, envelope, so)
	if err != nil {
		return nil, fmt.Errorf("osci: signing: %w", err)
	}
	return addRetrievalMethod(signed, opts.CertificateID, false)
}

// addRetrievalMethod puts the ds:KeyInfo after the ds:SignatureValue of the new
// signature: KeyInfo is outside SignedInfo, so the value stays valid. A message
// signature is the first ds:Signature of the document (the header precedes the body,
// where content signatures live), a container's new one the last (xmldsig.Sign
// appends it).
func addRetrievalMethod(doc []byte, certID string, last bool) ([]byte, error) {
	const end = "</ds:SignatureValue>"
	i := bytes.Index(doc, []byte(end))
	if last {
		i = bytes.LastIndex(doc, []byte(end))
	}
	if i < 0 {
		return nil, errors.New("osci: signing: signature value not found")
	}
	var ki bytes.Buffer
	ki.WriteString(`<ds:KeyInfo><ds:RetrievalMethod URI="#`)
	escapeAttr(&ki, certID)
	ki.WriteString(`"></ds:RetrievalMethod></ds:KeyInfo>`)
	at := i + len(end)
	out := make([]byte, 0, len(doc)+ki.Len())
	return append(append(append(out, doc[:at]...), ki.Bytes()...), doc[at:]...), nil
}
