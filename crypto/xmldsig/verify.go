// Package xmldsig verifies XML signatures (W3C XML-DSig 1.1) and their
// XAdES qualifying properties (ETSI EN 319 132-1): a hardened XML parser (no
// DTD, size, depth, node and attribute caps), our own Canonical XML 1.0 and
// 1.1 and Exclusive Canonical XML (with and without comments), SHA-2/SHA-3
// references and RSA, RSA-PSS and ECDSA (brainpool included) signature
// values through crypto/sigalg.
//
// Verify checks the one shape trusted lists and De-Mail confirmations use:
// a ds:Signature child of the document element whose one content
// Reference covers that element; a caller that then reads the document
// element reads exactly what was signed.
//
// VerifySignature checks any signature: enveloped, enveloping and
// detached, recording every reference with the element it resolved to
// (ReferenceResult.Target and Kind). References resolve strictly: an Id
// must be unique and may point only at the document, an element outside
// every signature and object, one of the signature's own ds:Object
// children or its own SignedProperties; XPath, XSLT and Manifest
// indirection are refused. That is the defence against signature wrapping,
// together with the caller checking that the element it uses is a Target.
//
// Sign makes signatures through crypto.Signer (PKCS#11 keys work): Id,
// document and external (streamed, e.g. OSCI cid:) references, rsa-sha256/
// 512, RSA-PSS and ECDSA; its digests come from the same dereferencing and
// transforms as VerifySignature, and xmldsigtest is a thin wrapper of it.
package xmldsig

import (
	"crypto"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Transform and reference type URIs.
const (
	TransformEnveloped  = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	TypeSignedProps     = "http://uri.etsi.org/01903#SignedProperties"
	NamespaceXAdES132   = "http://uri.etsi.org/01903/v1.3.2#"
	maxReferences       = 16
	maxKeyInfoCerts     = 16
	maxSignatureValueSz = 8 << 10
)

// Errors a report maps to EN 319 102-1 sub-indications; each is wrapped
// with the details.
var (
	// ErrFormat: the signature structure is not what we accept (FORMAT_FAILURE).
	ErrFormat = errors.New("xmldsig: malformed signature")
	// ErrDigest: a reference digest does not match (HASH_FAILURE).
	ErrDigest = errors.New("xmldsig: reference digest mismatch")
	// ErrSignedDataNotFound: the signature does not cover the document
	// element, or a reference cannot be resolved unambiguously
	// (SIGNED_DATA_NOT_FOUND); signature wrapping ends here.
	ErrSignedDataNotFound = errors.New("xmldsig: signed data not found")
	// ErrSignature: the signature value does not verify with any candidate
	// key (SIG_CRYPTO_FAILURE).
	ErrSignature = errors.New("xmldsig: signature value does not verify")
	// ErrNoKey: no candidate certificate (NO_SIGNING_CERTIFICATE_FOUND).
	ErrNoKey = errors.New("xmldsig: no signing certificate")
)

// Reference is one verified ds:Reference.
type Reference struct {
	// ID is the Reference's own Id attribute ("" when absent).
	ID         string
	URI        string
	Type       string
	Transforms []string
	Digest     crypto.Hash
	// CoversDocument is set for the reference whose node set is the
	// document element (minus the signature).
	CoversDocument bool
}

// Signature is a verified enveloped signature.
type Signature struct {
	// Algorithm is the signature method URI; SigAlg its sigalg form.
	Algorithm string
	SigAlg    sigalg.Algorithm
	C14N      string
	// Signer is the candidate certificate whose key verified the value.
	Signer *cert.Certificate
	// KeyInfoCertificates are the certificates in ds:KeyInfo/ds:X509Data,
	// untrusted.
	KeyInfoCertificates []*cert.Certificate
	References          []Reference
	// SigningTime is xades:SigningTime when present (claimed, not trusted).
	SigningTime time.Time
	// Element is the ds:Signature element.
	Element *Element
}

// Options for Verify.
type Options struct {
	// Candidates are the certificates whose keys may have made the
	// signature, e.g. a trusted list's configured signing certificates.
	// When empty the KeyInfo certificates are tried; then the caller must
	// still decide whether it trusts Signature.Signer.
	Candidates []*cert.Certificate
}

// Verify verifies the enveloped signature of doc: exactly one ds:Signature
// child of the document element, a Reference covering the document element
// with the enveloped-signature transform, every other Reference a XAdES
// SignedProperties inside the signature, all digests matching and the
// signature value verifying with a candidate key.
func Verify(doc *Document, opts Options) (*Signature, error) {
	sigEl, err := findSignature(doc)
	if err != nil {
		return nil, err
	}
	parts, err := splitSignature(sigEl)
	if err != nil {
		return nil, err
	}
	out := &Signature{Element: sigEl}
	c14n, siAlg, err := readSignedInfoHeader(parts.signedInfo, out)
	if err != nil {
		return nil, err
	}
	if err := verifyReferences(doc, sigEl, parts.signedInfo, out); err != nil {
		return nil, err
	}
	sigValue, err := decodeBase64(parts.signatureValue.Text(), maxSignatureValueSz)
	if err != nil {
		return nil, fmt.Errorf("%w: SignatureValue: %v", ErrFormat, err)
	}
	if parts.keyInfo != nil {
		if out.KeyInfoCertificates, err = keyInfoCerts(parts.keyInfo); err != nil {
			return nil, err
		}
	}
	candidates := opts.Candidates
	if len(candidates) == 0 {
		candidates = out.KeyInfoCertificates
	}
	if len(candidates) == 0 {
		return nil, ErrNoKey
	}
	signed := c14n.Canonicalize(parts.signedInfo, nil)
	var lastErr error
	for _, c := range candidates {
		if c.PublicKey == nil {
			lastErr = fmt.Errorf("certificate %s: %v", c.Subject, c.PublicKeyError)
			continue
		}
		if err := siAlg.Verify(c.PublicKey, signed, sigValue); err != nil {
			lastErr = err
			continue
		}
		out.Signer = c
		out.SigningTime = signingTime(parts.objects)
		return out, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrSignature, lastErr)
}

func findSignature(doc *Document) (*Element, error) {
	sigs := doc.Root.ChildrenNamed(NamespaceDSig, "Signature")
	switch len(sigs) {
	case 0:
		return nil, fmt.Errorf("%w: no ds:Signature child of the document element", ErrFormat)
	case 1:
		return sigs[0], nil
	}
	return nil, fmt.Errorf("%w: %d ds:Signature children of the document element", ErrFormat, len(sigs))
}

type signatureParts struct {
	signedInfo, signatureValue, keyInfo *Element
	objects                             []*Element
}

// splitSignature enforces the ds:Signature content model: SignedInfo,
// SignatureValue, KeyInfo?, Object*, and nothing but whitespace between.
func splitSignature(sig *Element) (signatureParts, error) {
	var p signatureParts
	for _, n := range sig.Children {
		if n.Kind == KindText && strings.Trim(n.Text, " \t\r\n") != "" {
			return p, fmt.Errorf("%w: text inside ds:Signature", ErrFormat)
		}
	}
	els := sig.Elements()
	i := 0
	next := func(local string) *Element {
		if i < len(els) && els[i].Is(NamespaceDSig, local) {
			i++
			return els[i-1]
		}
		return nil
	}
	if p.signedInfo = next("SignedInfo"); p.signedInfo == nil {
		return p, fmt.Errorf("%w: ds:SignedInfo missing or not first", ErrFormat)
	}
	if p.signatureValue = next("SignatureValue"); p.signatureValue == nil {
		return p, fmt.Errorf("%w: ds:SignatureValue missing", ErrFormat)
	}
	p.keyInfo = next("KeyInfo")
	for o := next("Object"); o != nil; o = next("Object") {
		p.objects = append(p.objects, o)
	}
	if i != len(els) {
		return p, fmt.Errorf("%w: unexpected <%s> in ds:Signature", ErrFormat, els[i].qname())
	}
	return p, nil
}

func readSignedInfoHeader(si *Element, out *Signature) (C14N, sigalg.Algorithm, error) {
	els := si.Elements()
	if len(els) < 3 || !els[0].Is(NamespaceDSig, "CanonicalizationMethod") || !els[1].Is(NamespaceDSig, "SignatureMethod") {
		return C14N{}, sigalg.Algorithm{}, fmt.Errorf("%w: ds:SignedInfo must start with CanonicalizationMethod, SignatureMethod", ErrFormat)
	}
	c14n, err := c14nFromElement(els[0])
	if err != nil {
		return C14N{}, sigalg.Algorithm{}, err
	}
	out.C14N, _ = els[0].Attr("Algorithm")
	out.Algorithm, _ = els[1].Attr("Algorithm")
	if len(els[1].Elements()) > 0 {
		// HMACOutputLength and friends: not for asymmetric signatures.
		return C14N{}, sigalg.Algorithm{}, fmt.Errorf("%w: parameters in SignatureMethod", ErrFormat)
	}
	alg, err := SignatureAlgorithm(out.Algorithm)
	if err != nil {
		return C14N{}, sigalg.Algorithm{}, err
	}
	out.SigAlg = alg
	return c14n, alg, nil
}

// c14nFromElement reads a CanonicalizationMethod or c14n Transform with
// its optional ec:InclusiveNamespaces.
func c14nFromElement(e *Element) (C14N, error) {
	uri, _ := e.Attr("Algorithm")
	c, err := ParseC14N(uri)
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	for _, ch := range e.Elements() {
		if !c.Exclusive || ch.Local != "InclusiveNamespaces" || ch.Space != AlgExcC14N {
			return c, fmt.Errorf("%w: unexpected <%s> in %s", ErrFormat, ch.qname(), e.Local)
		}
		list, _ := ch.Attr("PrefixList")
		c.InclusivePrefixes = strings.Fields(list)
	}
	return c, nil
}

// SignatureAlgorithm maps an XML-DSig SignatureMethod URI (RFC 6931) to a
// sigalg.Algorithm. XML-DSig ECDSA values are r||s, so ECDSA maps to the
// plain scheme. SHA-1 methods are refused.
func SignatureAlgorithm(uri string) (sigalg.Algorithm, error) {
	pss := func(h crypto.Hash) sigalg.Algorithm {
		return sigalg.Algorithm{Scheme: sigalg.SchemeRSAPSS, Hash: h,
			PSS: &sigalg.PSSParams{Hash: h, MGF1Hash: h, SaltLength: h.Size(), Trailer: 1}}
	}
	const more, more07 = "http://www.w3.org/2001/04/xmldsig-more#", "http://www.w3.org/2007/05/xmldsig-more#"
	switch uri {
	case more + "rsa-sha256":
		return sigalg.Algorithm{Scheme: sigalg.SchemeRSAPKCS1v15, Hash: crypto.SHA256}, nil
	case more + "rsa-sha384":
		return sigalg.Algorithm{Scheme: sigalg.SchemeRSAPKCS1v15, Hash: crypto.SHA384}, nil
	case more + "rsa-sha512":
		return sigalg.Algorithm{Scheme: sigalg.SchemeRSAPKCS1v15, Hash: crypto.SHA512}, nil
	case more + "ecdsa-sha256":
		return sigalg.Algorithm{Scheme: sigalg.SchemePlainECDSA, Hash: crypto.SHA256}, nil
	case more + "ecdsa-sha384":
		return sigalg.Algorithm{Scheme: sigalg.SchemePlainECDSA, Hash: crypto.SHA384}, nil
	case more + "ecdsa-sha512":
		return sigalg.Algorithm{Scheme: sigalg.SchemePlainECDSA, Hash: crypto.SHA512}, nil
	case more07 + "sha256-rsa-MGF1":
		return pss(crypto.SHA256), nil
	case more07 + "sha384-rsa-MGF1":
		return pss(crypto.SHA384), nil
	case more07 + "sha512-rsa-MGF1":
		return pss(crypto.SHA512), nil
	case more07 + "sha3-256-rsa-MGF1":
		return pss(crypto.SHA3_256), nil
	case more07 + "sha3-384-rsa-MGF1":
		return pss(crypto.SHA3_384), nil
	case more07 + "sha3-512-rsa-MGF1":
		return pss(crypto.SHA3_512), nil
	}
	return sigalg.Algorithm{}, &sigalg.UnsupportedError{What: "XML signature method", Name: uri}
}

// DigestAlgorithm maps a DigestMethod URI to a hash; SHA-1 is refused.
func DigestAlgorithm(uri string) (crypto.Hash, error) {
	switch uri {
	case "http://www.w3.org/2001/04/xmlenc#sha256":
		return crypto.SHA256, nil
	case "http://www.w3.org/2001/04/xmldsig-more#sha384":
		return crypto.SHA384, nil
	case "http://www.w3.org/2001/04/xmlenc#sha512":
		return crypto.SHA512, nil
	case "http://www.w3.org/2007/05/xmldsig-more#sha3-256":
		return crypto.SHA3_256, nil
	case "http://www.w3.org/2007/05/xmldsig-more#sha3-384":
		return crypto.SHA3_384, nil
	case "http://www.w3.org/2007/05/xmldsig-more#sha3-512":
		return crypto.SHA3_512, nil
	}
	return 0, &sigalg.UnsupportedError{What: "XML digest method", Name: uri}
}

func verifyReferences(doc *Document, sigEl, si *Element, out *Signature) error {
	refs := si.Elements()[2:]
	if len(refs) == 0 || len(refs) > maxReferences {
		return fmt.Errorf("%w: %d references", ErrFormat, len(refs))
	}
	covering := 0
	for i, r := range refs {
		if !r.Is(NamespaceDSig, "Reference") {
			return fmt.Errorf("%w: unexpected <%s> in ds:SignedInfo", ErrFormat, r.qname())
		}
		ref, err := verifyReference(doc, sigEl, r)
		if err != nil {
			return fmt.Errorf("reference %d: %w", i+1, err)
		}
		if ref.CoversDocument {
			covering++
		}
		out.References = append(out.References, ref)
	}
	if covering != 1 {
		return fmt.Errorf("%w: %d references cover the document element, want exactly 1", ErrSignedDataNotFound, covering)
	}
	return nil
}

func verifyReference(doc *Document, sigEl, r *Element) (Reference, error) {
	var ref Reference
	ref.URI, _ = r.Attr("URI")
	ref.Type, _ = r.Attr("Type")
	els := r.Elements()
	i := 0
	var transforms *Element
	if i < len(els) && els[i].Is(NamespaceDSig, "Transforms") {
		transforms = els[i]
		i++
	}
	if len(els)-i != 2 || !els[i].Is(NamespaceDSig, "DigestMethod") || !els[i+1].Is(NamespaceDSig, "DigestValue") {
		return ref, fmt.Errorf("%w: ds:Reference must hold Transforms?, DigestMethod, DigestValue", ErrFormat)
	}
	dm, _ := els[i].Attr("Algorithm")
	h, err := DigestAlgorithm(dm)
	if err != nil {
		return ref, err
	}
	ref.Digest = h
	want, err := decodeBase64(els[i+1].Text(), 128)
	if err != nil || len(want) != h.Size() {
		return ref, fmt.Errorf("%w: DigestValue is not a %d byte base64 digest", ErrFormat, h.Size())
	}
	target, whole, err := resolve(doc, ref.URI)
	if err != nil {
		return ref, err
	}
	c14n := C14N{} // XML-DSig default when a node set becomes octets
	enveloped := false
	if transforms != nil {
		for _, t := range transforms.Elements() {
			alg, _ := t.Attr("Algorithm")
			if !t.Is(NamespaceDSig, "Transform") {
				return ref, fmt.Errorf("%w: unexpected <%s> in ds:Transforms", ErrFormat, t.qname())
			}
			ref.Transforms = append(ref.Transforms, alg)
			if alg == TransformEnveloped {
				if len(t.Elements()) > 0 {
					return ref, fmt.Errorf("%w: parameters in enveloped-signature transform", ErrFormat)
				}
				enveloped = true
				continue
			}
			if c14n, err = c14nFromElement(t); err != nil {
				return ref, err
			}
		}
	}
	if len(ref.Transforms) > 2 {
		return ref, fmt.Errorf("%w: %d transforms", ErrFormat, len(ref.Transforms))
	}
	// Same-document references select node sets without comments, even
	// for a #WithComments canonicalization (XML-DSig 4.4.3.3).
	c14n.Comments = false
	var exclude *Element
	if enveloped {
		exclude = sigEl
	}
	var octets []byte
	if whole {
		octets = c14n.CanonicalizeDocument(doc, exclude)
	} else {
		octets = c14n.Canonicalize(target, exclude)
	}
	hh := h.New()
	hh.Write(octets)
	if subtle.ConstantTimeCompare(hh.Sum(nil), want) != 1 {
		return ref, fmt.Errorf("%w: %s", ErrDigest, refName(ref.URI))
	}
	switch {
	case target == doc.Root:
		if !enveloped {
			return ref, fmt.Errorf("%w: reference to the document element without the enveloped-signature transform", ErrFormat)
		}
		ref.CoversDocument = true
	case ref.Type == TypeSignedProps && within(target, sigEl) && target.Is(NamespaceXAdES132, "SignedProperties"):
	default:
		return ref, fmt.Errorf("%w: reference %s is neither the document element nor XAdES SignedProperties of this signature", ErrSignedDataNotFound, refName(ref.URI))
	}
	return ref, nil
}

func refName(uri string) string {
	if uri == "" {
		return `URI=""`
	}
	return uri
}

// resolve finds a same-document reference target; external URIs are not
// something a trusted list signs.
func resolve(doc *Document, uri string) (target *Element, whole bool, err error) {
	if uri == "" {
		return doc.Root, true, nil
	}
	id, ok := strings.CutPrefix(uri, "#")
	if !ok || id == "" || strings.HasPrefix(id, "xpointer(") {
		return nil, false, fmt.Errorf("%w: unsupported reference URI %q", ErrSignedDataNotFound, uri)
	}
	e, err := doc.ElementByID(id)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrSignedDataNotFound, err)
	}
	return e, false, nil
}

func within(e, ancestor *Element) bool {
	for x := e; x != nil; x = x.Parent {
		if x == ancestor {
			return true
		}
	}
	return false
}

func keyInfoCerts(ki *Element) ([]*cert.Certificate, error) {
	var out []*cert.Certificate
	for _, xd := range ki.ChildrenNamed(NamespaceDSig, "X509Data") {
		for _, xc := range xd.ChildrenNamed(NamespaceDSig, "X509Certificate") {
			if len(out) >= maxKeyInfoCerts {
				return nil, fmt.Errorf("%w: more than %d KeyInfo certificates", ErrFormat, maxKeyInfoCerts)
			}
			der, err := decodeBase64(xc.Text(), cert.MaxSize*2)
			if err != nil {
				return nil, fmt.Errorf("%w: KeyInfo certificate %d: %v", ErrFormat, len(out)+1, err)
			}
			c, err := cert.Parse(der)
			if err != nil {
				return nil, fmt.Errorf("%w: KeyInfo certificate %d: %v", ErrFormat, len(out)+1, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// decodeBase64 decodes base64 text with embedded whitespace (XML-DSig
// values are often wrapped, sometimes with &#xD;).
func decodeBase64(s string, max int) ([]byte, error) {
	if len(s) > max*2 {
		return nil, fmt.Errorf("base64 value of %d characters is too long", len(s))
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty base64 value")
	}
	return b, nil
}

func signingTime(objects []*Element) time.Time {
	for _, o := range objects {
		qp := o.Child(NamespaceXAdES132, "QualifyingProperties")
		st := qp.Path(NamespaceXAdES132, "SignedProperties", "SignedSignatureProperties", "SigningTime")
		if st == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(st.Text())); err == nil {
			return t
		}
	}
	return time.Time{}
}

// ParseAndVerify parses data with lim and verifies its enveloped signature.
func ParseAndVerify(data []byte, lim Limits, opts Options) (*Document, *Signature, error) {
	doc, err := Parse(data, lim)
	if err != nil {
		return nil, nil, err
	}
	sig, err := Verify(doc, opts)
	if err != nil {
		return doc, nil, err
	}
	return doc, sig, nil
}
