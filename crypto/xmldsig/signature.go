package xmldsig

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Algorithm and type URIs of the general verifier beyond those of Verify.
const (
	AlgC14N11             = "http://www.w3.org/2006/12/xml-c14n11"
	AlgC14N11WithComments = "http://www.w3.org/2006/12/xml-c14n11#WithComments"
	TransformBase64       = "http://www.w3.org/2000/09/xmldsig#base64"
	TypeObject            = "http://www.w3.org/2000/09/xmldsig#Object"
	TypeManifest          = "http://www.w3.org/2000/09/xmldsig#Manifest"
	maxSignatures         = 32
	maxTransforms         = 4
)

// ErrUnsupportedTransform is wrapped when a reference uses a transform the
// verifier refuses (XPath, XPath Filter 2.0, XSLT, ...): what it selects is
// not computed, so the reference counts as not found.
var ErrUnsupportedTransform = errors.New("xmldsig: unsupported transform")

// RefKind says what a reference points at, judged by where the target sits
// relative to the signature.
type RefKind string

// Reference kinds.
const (
	// RefDocument: the whole document (URI="") or its document element.
	RefDocument RefKind = "document"
	// RefElement: another element of the document, by Id.
	RefElement RefKind = "element"
	// RefObject: a ds:Object child of the signature itself (enveloping).
	RefObject RefKind = "object"
	// RefSignedProperties: the signature's own xades:SignedProperties.
	RefSignedProperties RefKind = "signed-properties"
	// RefDetached: content outside the document, by URI.
	RefDetached RefKind = "detached"
)

// RefStatus is the outcome of one reference.
type RefStatus string

// Reference outcomes.
const (
	RefOK             RefStatus = "ok"
	RefNotFound       RefStatus = "not-found"
	RefDigestMismatch RefStatus = "digest-mismatch"
)

// ReferenceResult is one ds:Reference after processing.
type ReferenceResult struct {
	Reference
	Kind   RefKind
	Status RefStatus
	// Target is the referenced element (nil for detached content and for
	// references not found).
	Target *Element
	// Octets are the data the digest was computed over; XAdES timestamps
	// over the data objects need them again.
	Octets []byte
	// Err explains a status other than RefOK.
	Err error
}

// Detached resolves a reference to content outside the document by its URI
// (a file name in a container, a URL). ok false means the content is not
// available.
type Detached func(uri string) (data []byte, ok bool)

// SignatureOptions control VerifySignature.
type SignatureOptions struct {
	// Detached supplies the content of references outside the document.
	Detached Detached
	// Certificates are further candidates for the signing certificate
	// (e.g. xades:CertificateValues), after those in ds:KeyInfo.
	Certificates []*cert.Certificate
	// Limits bound the parsing of detached content that a reference
	// canonicalizes as XML.
	Limits Limits
}

// Result is the outcome of checking one ds:Signature. Unlike Verify it is
// not an error when something fails: every check is recorded so that a
// report can name the first failure the way EN 319 102-1 orders them.
type Result struct {
	// Element is the ds:Signature; ID its Id attribute.
	Element *Element
	ID      string
	// Enveloping is set when the signature is the document element.
	Enveloping bool
	// FormatErr is set when the structure is not XML-DSig; nothing else
	// was checked then.
	FormatErr error
	Algorithm string
	SigAlg    sigalg.Algorithm
	// AlgorithmErr is set when the signature method is not supported.
	AlgorithmErr error
	C14N         string
	References   []ReferenceResult
	// SignedInfo is the canonical ds:SignedInfo the value is over.
	SignedInfo     []byte
	SignatureValue []byte
	// SignatureValueElement is the ds:SignatureValue, which XAdES
	// signature timestamps cover.
	SignatureValueElement *Element
	KeyInfo               *Element
	KeyInfoCertificates   []*cert.Certificate
	// KeyInfoErr is set when a KeyInfo certificate could not be read.
	KeyInfoErr error
	Objects    []*Element
	// Signer is the candidate whose key verified the value; ValueErr is
	// nil exactly when one did.
	Signer   *cert.Certificate
	ValueErr error
	// XAdES holds the qualifying properties; nil for plain XML-DSig.
	XAdES *XAdES
}

// FindSignatures returns the ds:Signature elements of doc in document
// order, leaving out those nested inside another signature (XAdES
// countersignatures, signatures inside enveloped objects).
func FindSignatures(doc *Document) ([]*Element, error) {
	var out []*Element
	var walk func(e *Element) error
	walk = func(e *Element) error {
		if e.Is(NamespaceDSig, "Signature") {
			if len(out) == maxSignatures {
				return fmt.Errorf("%w: more than %d signatures", ErrFormat, maxSignatures)
			}
			out = append(out, e)
			return nil
		}
		for _, c := range e.Elements() {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(doc.Root); err != nil {
		return nil, err
	}
	return out, nil
}

// VerifySignature checks the signature sigEl of doc: its structure, every
// reference (resolved strictly, see resolveReference), the XAdES
// qualifying properties and the signature value with the KeyInfo
// certificates and opts.Certificates as candidates. Trust in the signer is
// the caller's business.
func VerifySignature(ctx context.Context, doc *Document, sigEl *Element, opts SignatureOptions) *Result {
	res := &Result{Element: sigEl, Enveloping: sigEl == doc.Root}
	res.ID, _ = sigEl.Attr("Id")
	parts, err := splitSignature(sigEl)
	if err != nil {
		res.FormatErr = err
		return res
	}
	res.SignatureValueElement, res.KeyInfo, res.Objects = parts.signatureValue, parts.keyInfo, parts.objects
	var tmp Signature
	c14n, siAlg, err := readSignedInfoHeader(parts.signedInfo, &tmp)
	res.Algorithm, res.C14N = tmp.Algorithm, tmp.C14N
	var unsupported *sigalg.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		res.AlgorithmErr = err
	case err != nil:
		res.FormatErr = err
		return res
	}
	res.SigAlg = siAlg
	if res.SignatureValue, err = decodeBase64(parts.signatureValue.Text(), maxSignatureValueSz); err != nil {
		res.FormatErr = fmt.Errorf("%w: SignatureValue: %v", ErrFormat, err)
		return res
	}
	if parts.keyInfo != nil {
		res.KeyInfoCertificates, res.KeyInfoErr = keyInfoCerts(parts.keyInfo)
	}
	res.XAdES, err = readXAdES(sigEl, parts.objects, res.ID)
	if err != nil {
		res.FormatErr = err
		return res
	}
	refs := parts.signedInfo.Elements()[2:]
	if len(refs) == 0 || len(refs) > maxReferences {
		res.FormatErr = fmt.Errorf("%w: %d references", ErrFormat, len(refs))
		return res
	}
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			res.FormatErr = err
			return res
		}
		if !r.Is(NamespaceDSig, "Reference") {
			res.FormatErr = fmt.Errorf("%w: unexpected <%s> in ds:SignedInfo", ErrFormat, r.qname())
			return res
		}
		rr, err := processReference(doc, res, r, opts)
		if err != nil {
			res.FormatErr = err
			return res
		}
		if rr.Kind == RefSignedProperties && rr.Status != RefNotFound && res.XAdES != nil {
			res.XAdES.SignedPropertiesReferenced = true
		}
		res.References = append(res.References, rr)
	}
	if res.AlgorithmErr != nil {
		return res
	}
	res.SignedInfo = c14n.Canonicalize(parts.signedInfo, nil)
	res.verifyValue(res.Candidates(opts.Certificates))
	return res
}

// Candidates lists the certificates that may be the signer's: those of
// ds:KeyInfo, then extra, then the XAdES CertificateValues.
func (res *Result) Candidates(extra []*cert.Certificate) []*cert.Certificate {
	out := append(append([]*cert.Certificate(nil), res.KeyInfoCertificates...), extra...)
	if res.XAdES != nil {
		for _, der := range res.XAdES.CertificateValues {
			if c, err := cert.Parse(der); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func (res *Result) verifyValue(candidates []*cert.Certificate) {
	if len(candidates) == 0 {
		res.ValueErr = ErrNoKey
		return
	}
	var lastErr error
	for _, c := range candidates {
		if c.PublicKey == nil {
			lastErr = fmt.Errorf("certificate %s: %v", c.Subject, c.PublicKeyError)
			continue
		}
		if err := res.SigAlg.Verify(c.PublicKey, res.SignedInfo, res.SignatureValue); err != nil {
			lastErr = err
			continue
		}
		res.Signer = c
		return
	}
	res.ValueErr = fmt.Errorf("%w: %v", ErrSignature, lastErr)
}

// Intact reports whether the value verified and every reference matched.
func (res *Result) Intact() bool {
	if res.FormatErr != nil || res.ValueErr != nil || res.AlgorithmErr != nil {
		return false
	}
	for _, r := range res.References {
		if r.Status != RefOK {
			return false
		}
	}
	return true
}

// DataReferences returns the references to signed data objects, i.e. all
// but the SignedProperties reference.
func (res *Result) DataReferences() []ReferenceResult {
	var out []ReferenceResult
	for _, r := range res.References {
		if r.Type != TypeSignedProps {
			out = append(out, r)
		}
	}
	return out
}

// CoversDocument reports whether a reference resolved to the document
// element (whether or not its digest matched): for a signature inside a
// document, that is what a reader of the file takes as signed.
func (res *Result) CoversDocument() bool {
	for _, r := range res.References {
		if r.Kind == RefDocument && r.Status != RefNotFound {
			return true
		}
	}
	return false
}

// processReference resolves, transforms and digests one ds:Reference. An
// error is a format failure of the signature; a reference that cannot be
// resolved or computed is a result with status RefNotFound.
func processReference(doc *Document, res *Result, r *Element, opts SignatureOptions) (ReferenceResult, error) {
	var rr ReferenceResult
	rr.URI, _ = r.Attr("URI")
	rr.ID, _ = r.Attr("Id")
	rr.Type, _ = r.Attr("Type")
	els := r.Elements()
	i := 0
	var transforms []*Element
	if i < len(els) && els[i].Is(NamespaceDSig, "Transforms") {
		transforms = els[i].Elements()
		i++
	}
	if len(els)-i != 2 || !els[i].Is(NamespaceDSig, "DigestMethod") || !els[i+1].Is(NamespaceDSig, "DigestValue") {
		return rr, fmt.Errorf("%w: ds:Reference must hold Transforms?, DigestMethod, DigestValue", ErrFormat)
	}
	if len(transforms) > maxTransforms {
		return rr, fmt.Errorf("%w: %d transforms", ErrFormat, len(transforms))
	}
	for _, t := range transforms {
		if !t.Is(NamespaceDSig, "Transform") {
			return rr, fmt.Errorf("%w: unexpected <%s> in ds:Transforms", ErrFormat, t.qname())
		}
		alg, _ := t.Attr("Algorithm")
		rr.Transforms = append(rr.Transforms, alg)
	}
	dm, _ := els[i].Attr("Algorithm")
	h, err := DigestAlgorithm(dm)
	if err != nil {
		rr.Status, rr.Err = RefNotFound, err
		return rr, nil
	}
	rr.Digest = h
	// A DigestValue that does not decode or has the wrong length cannot
	// match; that is a digest failure of the reference, as DSS reports
	// it, not a failure of the structure.
	want, werr := decodeBase64(els[i+1].Text(), 128)
	octets, err := referencedOctets(doc, res, &rr, transforms, opts)
	if err != nil {
		rr.Status, rr.Err = RefNotFound, err
		return rr, nil
	}
	rr.Octets = octets
	hh := h.New()
	hh.Write(octets)
	if werr != nil {
		rr.Status, rr.Err = RefDigestMismatch, fmt.Errorf("%w: %s: unreadable DigestValue: %v", ErrDigest, refName(rr.URI), werr)
		return rr, nil
	}
	if subtle.ConstantTimeCompare(hh.Sum(nil), want) != 1 {
		rr.Status, rr.Err = RefDigestMismatch, fmt.Errorf("%w: %s", ErrDigest, refName(rr.URI))
		return rr, nil
	}
	rr.Status = RefOK
	return rr, nil
}

// referencedOctets dereferences rr.URI and applies the transforms.
func referencedOctets(doc *Document, res *Result, rr *ReferenceResult, transforms []*Element, opts SignatureOptions) ([]byte, error) {
	if rr.URI != "" && !strings.HasPrefix(rr.URI, "#") {
		rr.Kind = RefDetached
		if opts.Detached == nil {
			return nil, fmt.Errorf("%w: detached content %q not supplied", ErrSignedDataNotFound, rr.URI)
		}
		data, ok := opts.Detached(rr.URI)
		if !ok {
			return nil, fmt.Errorf("%w: detached content %q not supplied", ErrSignedDataNotFound, rr.URI)
		}
		return transformOctets(data, transforms, opts.Limits)
	}
	target, whole, err := resolveReference(doc, res, rr)
	if err != nil {
		return nil, err
	}
	rr.Target = target
	return transformNodes(doc, res.Element, target, whole, transforms)
}

// resolveReference finds the element a same-document reference points at
// and decides whether a signature may legitimately point there: the
// document (with the enveloped-signature transform), an element by a
// unique Id outside any signature, one of this signature's own ds:Object
// children, or its own SignedProperties. Ids in other places (inside
// another signature, nested objects, a second SignedProperties) are what
// signature wrapping plants, and are refused.
func resolveReference(doc *Document, res *Result, rr *ReferenceResult) (*Element, bool, error) {
	sigEl := res.Element
	if rr.URI == "" {
		rr.Kind = RefDocument
		return doc.Root, true, nil
	}
	id := strings.TrimPrefix(rr.URI, "#")
	if id == "" || strings.HasPrefix(id, "xpointer(") {
		return nil, false, fmt.Errorf("%w: unsupported reference URI %q", ErrSignedDataNotFound, rr.URI)
	}
	target, err := doc.ElementByID(id)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrSignedDataNotFound, err)
	}
	if rr.Type == TypeManifest || target.Is(NamespaceDSig, "Manifest") {
		return nil, false, fmt.Errorf("%w: %s is a ds:Manifest, whose references are not followed", ErrSignedDataNotFound, rr.URI)
	}
	if rr.Type == TypeSignedProps || target.Is(NamespaceXAdES132, "SignedProperties") {
		if res.XAdES == nil || target != res.XAdES.SignedProperties {
			return nil, false, fmt.Errorf("%w: %s is not the SignedProperties of this signature's QualifyingProperties", ErrSignedDataNotFound, rr.URI)
		}
		rr.Kind = RefSignedProperties
		return target, false, nil
	}
	if target == doc.Root {
		rr.Kind = RefDocument
		return target, false, nil
	}
	if target.Parent == sigEl && target.Is(NamespaceDSig, "Object") {
		rr.Kind = RefObject
		return target, false, nil
	}
	for x := target; x != nil; x = x.Parent {
		if x.Is(NamespaceDSig, "Signature") || x.Is(NamespaceDSig, "Object") {
			return nil, false, fmt.Errorf("%w: %s lies inside <%s>, not where this signature's data can be", ErrSignedDataNotFound, rr.URI, x.qname())
		}
	}
	rr.Kind = RefElement
	return target, false, nil
}

// transformNodes applies the transforms to a same-document node set and
// returns the octets: enveloped-signature removes this signature, a c14n
// transform serialises, base64 decodes the text; without a serialising
// transform Canonical XML 1.0 applies (XML-DSig 4.4.3.2).
func transformNodes(doc *Document, sigEl, target *Element, whole bool, transforms []*Element) ([]byte, error) {
	var exclude *Element
	for k, t := range transforms {
		alg, _ := t.Attr("Algorithm")
		switch {
		case alg == TransformEnveloped:
			if len(t.Elements()) > 0 {
				return nil, fmt.Errorf("%w: parameters in enveloped-signature transform", ErrFormat)
			}
			if !within(sigEl, target) {
				return nil, fmt.Errorf("%w: enveloped-signature transform on data that does not contain the signature", ErrSignedDataNotFound)
			}
			exclude = sigEl
		case alg == TransformBase64:
			if k != len(transforms)-1 {
				return nil, fmt.Errorf("%w: base64 transform before further transforms", ErrUnsupportedTransform)
			}
			b, err := decodeBase64(textContent(target, exclude), maxBase64Object)
			if err != nil {
				return nil, fmt.Errorf("%w: base64 transform: %v", ErrSignedDataNotFound, err)
			}
			return b, nil
		default:
			c, err := c14nFromElement(t)
			if err != nil {
				return nil, fmt.Errorf("%w: %s", ErrUnsupportedTransform, alg)
			}
			if k != len(transforms)-1 {
				return nil, fmt.Errorf("%w: %s before further transforms", ErrUnsupportedTransform, alg)
			}
			return canonicalNodes(c, doc, target, whole, exclude), nil
		}
	}
	return canonicalNodes(C14N{}, doc, target, whole, exclude), nil
}

// maxBase64Object caps what a base64 transform decodes.
const maxBase64Object = 16 << 20

// canonicalNodes serialises a same-document node set; comments never
// belong to it (XML-DSig 4.4.3.3), whatever the algorithm says.
func canonicalNodes(c C14N, doc *Document, target *Element, whole bool, exclude *Element) []byte {
	c.Comments = false
	if whole {
		return c.CanonicalizeDocument(doc, exclude)
	}
	return c.Canonicalize(target, exclude)
}

// transformOctets applies the transforms to detached content: base64
// decodes, a c14n transform parses the content as XML and canonicalizes
// the whole document.
func transformOctets(data []byte, transforms []*Element, lim Limits) ([]byte, error) {
	for k, t := range transforms {
		alg, _ := t.Attr("Algorithm")
		if alg == TransformBase64 {
			b, err := decodeBase64(string(data), maxBase64Object)
			if err != nil {
				return nil, fmt.Errorf("%w: base64 transform: %v", ErrSignedDataNotFound, err)
			}
			data = b
			continue
		}
		c, err := c14nFromElement(t)
		if err != nil || k != len(transforms)-1 {
			return nil, fmt.Errorf("%w: %s on detached content", ErrUnsupportedTransform, alg)
		}
		d, err := Parse(data, lim)
		if err != nil {
			return nil, fmt.Errorf("%w: detached content for %s: %v", ErrSignedDataNotFound, alg, err)
		}
		return c.CanonicalizeDocument(d, nil), nil
	}
	return data, nil
}

// textContent concatenates the text of e's descendants, as the base64
// transform reads a node set.
func textContent(e, exclude *Element) string {
	var b strings.Builder
	var walk func(*Element)
	walk = func(x *Element) {
		for _, n := range x.Children {
			switch {
			case n.Kind == KindText:
				b.WriteString(n.Text)
			case n.Kind == KindElement && n.Element != exclude:
				walk(n.Element)
			}
		}
	}
	walk(e)
	return b.String()
}
