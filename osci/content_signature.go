package osci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// ContentSignatureCheck is the outcome of one author's ds:Signature in a content
// container.
type ContentSignatureCheck struct {
	Result *xmldsig.Result
	// Signer is the envelope's certificate entry the RetrievalMethod names, nil when
	// the signature carries its certificate in ds:KeyInfo instead.
	Signer *CertificateEntry
	// Covered lists the container's contents the signature holds for, by index.
	Covered     []bool
	Attachments map[string]xmldsig.RefStatus
	Problems    []error
}

// Valid reports a signature that verified and covers every content of its container,
// attachments included.
func (c *ContentSignatureCheck) Valid() bool { return len(c.Problems) == 0 }

// Err joins the problems.
func (c *ContentSignatureCheck) Err() error { return errors.Join(c.Problems...) }

// VerifyContainer checks the authors' signatures of a container. doc is the document
// the container was parsed from (the envelope, or the decrypted content); certs are the
// envelope's certificate blocks, where OSCI authors' RetrievalMethods point; parts
// resolve cid: references: the decrypted attachments of an encrypted container (its
// authors signed the plaintext), the message's parts otherwise.
//
// A reference counts for a content when it resolves to the osci:Content itself or to
// its osci:Base64Content (with the base64 transform), or for an attachment content
// when the attachment's cid: reference matches; every content must be covered.
func VerifyContainer(ctx context.Context, doc *xmldsig.Document, c *ContentContainer, certs []*Certificates, parts func(cid string) *Part) ([]*ContentSignatureCheck, error) {
	var out []*ContentSignatureCheck
	for _, sig := range c.Signatures {
		chk, err := verifyContentSignature(ctx, doc, c, sig, certs, parts)
		if err != nil {
			return nil, err
		}
		out = append(out, chk)
	}
	return out, nil
}

func verifyContentSignature(ctx context.Context, doc *xmldsig.Document, c *ContentContainer, sig *xmldsig.Element, certs []*Certificates, parts func(string) *Part) (*ContentSignatureCheck, error) {
	chk := &ContentSignatureCheck{Covered: make([]bool, len(c.Contents)), Attachments: map[string]xmldsig.RefStatus{}}
	var opts xmldsig.SignatureOptions
	if signer := signerByRetrieval(sig, certs); signer != nil {
		chk.Signer = signer
		opts.Certificates = append(opts.Certificates, signer.Cert)
	}
	chk.Result = xmldsig.VerifySignature(ctx, doc, sig, opts)
	res := chk.Result
	if res.FormatErr != nil || res.AlgorithmErr != nil {
		chk.Problems = append(chk.Problems, fmt.Errorf("%w: %v", ErrSignatureInvalid, errors.Join(res.FormatErr, res.AlgorithmErr)))
		return chk, nil
	}
	if res.ValueErr != nil {
		chk.Problems = append(chk.Problems, fmt.Errorf("%w: value: %v", ErrSignatureInvalid, res.ValueErr))
	}
	refEls := sig.Child(xmldsig.NamespaceDSig, "SignedInfo").Elements()[2:]
	m := &Multipart{}
	for i, rr := range res.References {
		if cid, ok := strings.CutPrefix(rr.URI, "cid:"); ok {
			if p := parts(cid); p != nil {
				m.Parts = []*Part{p}
			} else {
				m.Parts = nil
			}
			st, err := attachmentDigest(ctx, m, cid, rr, refEls[i])
			if err != nil && !errors.Is(err, ErrSignatureInvalid) {
				return nil, err
			}
			chk.Attachments[cid] = st
			if err != nil {
				chk.Problems = append(chk.Problems, err)
			}
			continue
		}
		if rr.Status != xmldsig.RefOK {
			chk.Problems = append(chk.Problems, fmt.Errorf("%w: reference %.80q: %v", ErrSignatureInvalid, rr.URI, rr.Err))
			continue
		}
		for k, ct := range c.Contents {
			if rr.Target == ct.Element || (ct.Base64ID != "" && rr.Target == ct.Element.Elements()[0]) {
				chk.Covered[k] = true
			}
		}
	}
	for k, ct := range c.Contents {
		a := ct.AttachmentID()
		switch {
		case a != "" && chk.Attachments[a] != xmldsig.RefOK:
			chk.Problems = append(chk.Problems, fmt.Errorf("%w: attachment <%s> of container %q", ErrNotSigned, a, c.ID))
		case a == "" && !chk.Covered[k]:
			chk.Problems = append(chk.Problems, fmt.Errorf("%w: content %d of container %q", ErrNotSigned, k, c.ID))
		}
	}
	return chk, nil
}

// signerByRetrieval finds the certificate entry a signature's RetrievalMethod names
// among the envelope's blocks; it is compared by Id, since a decrypted container is a
// document of its own.
func signerByRetrieval(sig *xmldsig.Element, certs []*Certificates) *CertificateEntry {
	rm := sig.Child(xmldsig.NamespaceDSig, "KeyInfo").Child(xmldsig.NamespaceDSig, "RetrievalMethod")
	if rm == nil {
		return nil
	}
	uri, _ := rm.Attr("URI")
	want, ok := strings.CutPrefix(uri, "#")
	if !ok {
		return nil
	}
	for _, c := range certs {
		if c == nil {
			continue
		}
		for i := range c.Entries {
			if c.Entries[i].ID == want && strings.HasPrefix(c.Entries[i].Role, "Signature") {
				return &c.Entries[i]
			}
		}
	}
	return nil
}

// containerNS are the declarations a container carries on itself, as the reference
// library writes them: inclusive C14N renders every in-scope namespace on a signed
// content, so the container must not depend on the envelope around it, which a
// decrypted container no longer has.
const containerNS = ` xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`

const containerStart = "<osci:ContentContainer"

// SignContainer signs a container as its author: one reference per content (an
// osci:Base64Content by its Id with the base64 transform, other contents by their Id
// with Canonical XML) and one per attachment a content refers to, opened through
// opts.Open; the ds:Signature becomes the container's first child, naming the signer
// by RetrievalMethod to opts.CertificateID in the envelope. container is one
// osci:ContentContainer element written with the osci and ds prefixes.
func SignContainer(ctx context.Context, container []byte, opts SignOptions) ([]byte, error) {
	s := string(container)
	if !strings.HasPrefix(s, containerStart) || !strings.HasSuffix(s, "</osci:ContentContainer>") {
		return nil, errors.New("osci: signing a container: not an osci:ContentContainer element")
	}
	if !strings.Contains(s[:startTagEnd(s)], "xmlns:osci=") {
		s = containerStart + containerNS + s[len(containerStart):]
	}
	lim := opts.Limits.withDefaults()
	el, _, err := parseWrapped([]byte(s), lim)
	if err != nil {
		return nil, fmt.Errorf("osci: signing a container: %w", err)
	}
	c, err := ParseContainer(el)
	if err != nil {
		return nil, fmt.Errorf("osci: signing a container: %w", err)
	}
	so := xmldsig.SignOptions{Signer: opts.Signer, Method: opts.Method, C14N: C14NInclusive, Limits: lim.XML,
		Parent: func(d *xmldsig.Document) (*xmldsig.Element, error) { return d.Root.Elements()[0], nil }}
	for _, ct := range c.Contents {
		switch {
		case ct.Base64ID != "":
			so.References = append(so.References, xmldsig.SignReference{URI: "#" + ct.Base64ID, Transforms: []string{xmldsig.TransformBase64}, Digest: opts.Digest})
		case ct.ID != "":
			so.References = append(so.References, xmldsig.SignReference{URI: "#" + ct.ID, Transforms: []string{C14NInclusive}, Digest: opts.Digest})
		default:
			return nil, errors.New("osci: signing a container: a content without Id cannot be referenced")
		}
		if a := ct.AttachmentID(); a != "" {
			so.References = append(so.References, xmldsig.SignReference{URI: "cid:" + a, Digest: opts.Digest})
		}
	}
	if opts.Open != nil {
		so.Resolver = func(ctx context.Context, uri string) (io.ReadCloser, error) { return opts.Open(ctx, uri[len("cid:"):]) }
	}
	signed, err := xmldsig.Sign(ctx, []byte(nsWrapper+s+"</w>"), so)
	if err != nil {
		return nil, fmt.Errorf("osci: signing a container: %w", err)
	}
	signed, err = addRetrievalMethod(signed, opts.CertificateID, true)
	if err != nil {
		return nil, err
	}
	return moveSignatureFirst(string(signed[len(nsWrapper) : len(signed)-len("</w>")]))
}

// moveSignatureFirst moves the signature xmldsig.Sign appended to the container to the
// place the schema gives it, before the contents; references are by Id, so the move
// changes no digest.
func moveSignatureFirst(s string) ([]byte, error) {
	i := strings.LastIndex(s, "<ds:Signature xmlns:ds=")
	end := len(s) - len("</osci:ContentContainer>")
	if i < 0 || i > end {
		return nil, errors.New("osci: signing a container: signature not found")
	}
	sig := s[i:end]
	rest := s[:i] + s[end:]
	at := startTagEnd(rest)
	return []byte(rest[:at] + sig + rest[at:]), nil
}

// startTagEnd is the offset just after the first start tag's '>', skipping quoted
// attribute values.
func startTagEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return len(s)
}
