package xmldsig

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Signature and digest method URIs Sign produces (RFC 6931, XML-DSig 1.1).
const (
	AlgRSASHA256    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSASHA512    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	AlgRSAPSSSHA256 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	AlgRSAPSSSHA512 = "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"
	AlgECDSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgECDSASHA384  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	DigestSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"
	DigestSHA512    = "http://www.w3.org/2001/04/xmlenc#sha512"
)

// maxSignedExternalC14N caps external content that a reference
// canonicalizes as XML, which has to be held in memory; raw external
// content is streamed into the digest and has no cap here.
const maxSignedExternalC14N = 16 << 20

// Resolver opens the content of a reference to data outside the document
// (in OSCI a cid: MIME part). The caller closes nothing: Sign closes what
// it opened.
type Resolver func(ctx context.Context, uri string) (io.ReadCloser, error)

// SignReference is one ds:Reference to make.
type SignReference struct {
	// URI is "" (the whole document), "#id" (an element of the document or
	// of an Object of this signature) or any other URI, whose content the
	// Resolver supplies.
	URI  string
	ID   string
	Type string
	// Transforms are transform URIs, applied in order. Nil means: for a
	// same-document reference the enveloped-signature transform when the
	// target contains the signature, then SignOptions.C14N; for external
	// content none (the digest is over the raw bytes, streamed).
	Transforms []string
	// InclusivePrefixes go into the exclusive c14n transform.
	InclusivePrefixes []string
	// Digest is the digest algorithm; default SHA-256.
	Digest crypto.Hash
}

// SignObject is a ds:Object of the signature; Content is inserted as it is
// and must be well-formed XML content with its namespaces declared.
type SignObject struct {
	ID, MimeType, Encoding string
	Content                []byte
}

// SignOptions describe the signature Sign makes.
type SignOptions struct {
	// Signer makes the value: an *rsa.PrivateKey, *ecdsa.PrivateKey or a
	// PKCS#11 key behind crypto.Signer.
	Signer crypto.Signer
	// Method is the signature method URI; default rsa-sha256 for RSA
	// keys, ecdsa-sha256 or ecdsa-sha384 by curve for ECDSA keys.
	Method string
	// C14N canonicalizes SignedInfo and, by default, same-document
	// references; default exclusive c14n.
	C14N              string
	InclusivePrefixes []string
	// Certificates (DER) go into ds:KeyInfo/ds:X509Data, signer's first.
	Certificates [][]byte
	// ID is the ds:Signature's Id; SignatureValueID the ds:SignatureValue's.
	ID, SignatureValueID string
	References           []SignReference
	Objects              []SignObject
	// Parent picks the element the signature becomes the last child of;
	// nil means the document element. Unused without a document.
	Parent func(*Document) (*Element, error)
	// Resolver opens external references' content.
	Resolver Resolver
	// Limits bound the parsing of the document and of external content a
	// reference canonicalizes.
	Limits Limits
	// Rand is the randomness for RSA-PSS and ECDSA; default crypto/rand.
	Rand io.Reader
}

// Sign makes an XML signature. With a document it inserts the ds:Signature
// as the last child of opts.Parent and returns the whole document (the
// rest of the bytes untouched); without one (nil) it returns the
// ds:Signature alone as a document, for enveloping and detached
// signatures. Digests are computed with the same dereferencing and
// transforms as VerifySignature, over the document as it is with the
// signature in place, and the value is checked with the signer's public
// key before it is returned.
func Sign(ctx context.Context, doc []byte, opts SignOptions) ([]byte, error) {
	s, err := newSigner(opts)
	if err != nil {
		return nil, err
	}
	place, err := s.placement(doc)
	if err != nil {
		return nil, err
	}
	digests := make([][]byte, len(s.opts.References))
	for i, r := range s.opts.References {
		digests[i] = make([]byte, r.Digest.Size())
	}
	if err := s.computeDigests(ctx, place, digests); err != nil {
		return nil, err
	}
	return s.signValue(place, digests)
}

type signer struct {
	opts   SignOptions
	alg    sigalg.Algorithm
	c14n   C14N
	ecSize int
}

func newSigner(opts SignOptions) (*signer, error) {
	if opts.Signer == nil {
		return nil, errors.New("xmldsig: sign: no signer")
	}
	if len(opts.References) == 0 || len(opts.References) > maxReferences {
		return nil, fmt.Errorf("xmldsig: sign: %d references, want 1 to %d", len(opts.References), maxReferences)
	}
	s := &signer{opts: opts}
	if s.opts.C14N == "" {
		s.opts.C14N = AlgExcC14N
	}
	c, err := ParseC14N(s.opts.C14N)
	if err != nil {
		return nil, fmt.Errorf("xmldsig: sign: %w", err)
	}
	c.InclusivePrefixes = opts.InclusivePrefixes
	s.c14n = c
	if err := s.chooseMethod(); err != nil {
		return nil, err
	}
	s.opts.References = append([]SignReference(nil), opts.References...)
	for i := range s.opts.References {
		r := &s.opts.References[i]
		if r.Digest == 0 {
			r.Digest = crypto.SHA256
		}
		if _, err := digestURI(r.Digest); err != nil {
			return nil, err
		}
	}
	if s.opts.Rand == nil {
		s.opts.Rand = rand.Reader
	}
	return s, nil
}

func (s *signer) chooseMethod() error {
	pub := s.opts.Signer.Public()
	if s.opts.Method == "" {
		switch k := pub.(type) {
		case *rsa.PublicKey:
			s.opts.Method = AlgRSASHA256
		case *ecdsa.PublicKey:
			s.opts.Method = AlgECDSASHA256
			if k.Curve == elliptic.P384() {
				s.opts.Method = AlgECDSASHA384
			}
		default:
			return fmt.Errorf("xmldsig: sign: unsupported key type %T", pub)
		}
	}
	alg, err := SignatureAlgorithm(s.opts.Method)
	if err != nil {
		return fmt.Errorf("xmldsig: sign: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg.Scheme != sigalg.SchemeRSAPKCS1v15 && alg.Scheme != sigalg.SchemeRSAPSS {
			return fmt.Errorf("xmldsig: sign: method %s does not fit an RSA key", s.opts.Method)
		}
	case *ecdsa.PublicKey:
		if alg.Scheme != sigalg.SchemePlainECDSA {
			return fmt.Errorf("xmldsig: sign: method %s does not fit an ECDSA key", s.opts.Method)
		}
		s.ecSize = (k.Curve.Params().BitSize + 7) / 8
	default:
		return fmt.Errorf("xmldsig: sign: unsupported key type %T", pub)
	}
	s.alg = alg
	return nil
}

func digestURI(h crypto.Hash) (string, error) {
	switch h {
	case crypto.SHA256:
		return DigestSHA256, nil
	case crypto.SHA384:
		return "http://www.w3.org/2001/04/xmldsig-more#sha384", nil
	case crypto.SHA512:
		return DigestSHA512, nil
	case crypto.SHA3_256:
		return "http://www.w3.org/2007/05/xmldsig-more#sha3-256", nil
	case crypto.SHA3_512:
		return "http://www.w3.org/2007/05/xmldsig-more#sha3-512", nil
	}
	return "", fmt.Errorf("xmldsig: sign: unsupported digest %v", h)
}

// placement is where the signature goes: the document split at the
// insertion point, and the path of child indices to the parent element so
// that the signature can be found again in the re-parsed document.
type placement struct {
	before, after []byte
	// selfClosing parents are rewritten from <p/> to <p>...</p>.
	closeTag string
	path     []int
	none     bool // no document: the signature is the document
}

func (s *signer) placement(doc []byte) (placement, error) {
	if doc == nil {
		return placement{none: true}, nil
	}
	d, err := Parse(doc, s.opts.Limits)
	if err != nil {
		return placement{}, fmt.Errorf("xmldsig: sign: %w", err)
	}
	parent := d.Root
	if s.opts.Parent != nil {
		if parent, err = s.opts.Parent(d); err != nil {
			return placement{}, fmt.Errorf("xmldsig: sign: choosing the parent: %w", err)
		}
		if parent == nil {
			return placement{}, errors.New("xmldsig: sign: no parent element")
		}
	}
	off := d.bom + parent.endTag
	p := placement{path: elementPath(parent)}
	if !parent.selfClosing {
		p.before, p.after = doc[:off], doc[off:]
		return p, nil
	}
	if off < 2 || string(doc[off-2:off]) != "/>" {
		return placement{}, errors.New("xmldsig: sign: cannot find the parent's end")
	}
	p.before, p.after = doc[:off-2], doc[off:]
	p.closeTag = ">"
	p.after = append([]byte("</"+parent.qname()+">"), p.after...)
	return p, nil
}

func elementPath(e *Element) []int {
	var path []int
	for ; e.Parent != nil; e = e.Parent {
		for i, c := range e.Parent.Elements() {
			if c == e {
				path = append([]int{i}, path...)
				break
			}
		}
	}
	return path
}

func (p placement) assemble(sig []byte) []byte {
	if p.none {
		return append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"), sig...)
	}
	out := make([]byte, 0, len(p.before)+len(p.closeTag)+len(sig)+len(p.after))
	out = append(append(append(append(out, p.before...), p.closeTag...), sig...), p.after...)
	return out
}

// find returns the inserted signature in the re-parsed document.
func (p placement) find(d *Document) (*Element, error) {
	if p.none {
		return d.Root, nil
	}
	e := d.Root
	for _, i := range p.path {
		els := e.Elements()
		if i >= len(els) {
			return nil, errors.New("xmldsig: sign: lost the parent element")
		}
		e = els[i]
	}
	els := e.Elements()
	if len(els) == 0 || !els[len(els)-1].Is(NamespaceDSig, "Signature") {
		return nil, errors.New("xmldsig: sign: lost the signature")
	}
	return els[len(els)-1], nil
}

// xml writes the ds:Signature with the digests and value given.
func (s *signer) xml(digests [][]byte, value []byte) []byte {
	var b bytes.Buffer
	o := s.opts
	b.WriteString(`<ds:Signature xmlns:ds="` + NamespaceDSig + `"`)
	attr(&b, "Id", o.ID)
	b.WriteString(`><ds:SignedInfo>`)
	transform(&b, "ds:CanonicalizationMethod", o.C14N, o.InclusivePrefixes)
	b.WriteString(`<ds:SignatureMethod Algorithm="` + o.Method + `"/>`)
	for i, r := range o.References {
		b.WriteString(`<ds:Reference`)
		attr(&b, "Id", r.ID)
		attr(&b, "Type", r.Type)
		b.WriteString(` URI="`)
		escapeAttr(&b, r.URI)
		b.WriteString(`">`)
		if len(r.Transforms) > 0 {
			b.WriteString(`<ds:Transforms>`)
			for _, t := range r.Transforms {
				transform(&b, "ds:Transform", t, r.InclusivePrefixes)
			}
			b.WriteString(`</ds:Transforms>`)
		}
		uri, _ := digestURI(r.Digest)
		b.WriteString(`<ds:DigestMethod Algorithm="` + uri + `"/><ds:DigestValue>`)
		b.WriteString(base64.StdEncoding.EncodeToString(digests[i]))
		b.WriteString(`</ds:DigestValue></ds:Reference>`)
	}
	b.WriteString(`</ds:SignedInfo><ds:SignatureValue`)
	attr(&b, "Id", o.SignatureValueID)
	b.WriteString(`>` + base64.StdEncoding.EncodeToString(value) + `</ds:SignatureValue>`)
	if len(o.Certificates) > 0 {
		b.WriteString(`<ds:KeyInfo><ds:X509Data>`)
		for _, c := range o.Certificates {
			b.WriteString(`<ds:X509Certificate>` + base64.StdEncoding.EncodeToString(c) + `</ds:X509Certificate>`)
		}
		b.WriteString(`</ds:X509Data></ds:KeyInfo>`)
	}
	for _, obj := range o.Objects {
		b.WriteString(`<ds:Object`)
		attr(&b, "Id", obj.ID)
		attr(&b, "MimeType", obj.MimeType)
		attr(&b, "Encoding", obj.Encoding)
		b.WriteString(`>`)
		b.Write(obj.Content)
		b.WriteString(`</ds:Object>`)
	}
	b.WriteString(`</ds:Signature>`)
	return b.Bytes()
}

func attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + `="`)
	escapeAttr(b, value)
	b.WriteByte('"')
}

func transform(b *bytes.Buffer, el, alg string, prefixes []string) {
	b.WriteString("<" + el + ` Algorithm="`)
	escapeAttr(b, alg)
	if len(prefixes) == 0 || (alg != AlgExcC14N && alg != AlgExcC14NWithComments) {
		b.WriteString(`"/>`)
		return
	}
	b.WriteString(`"><ec:InclusiveNamespaces xmlns:ec="` + AlgExcC14N + `" PrefixList="`)
	escapeAttr(b, strings.Join(prefixes, " "))
	b.WriteString(`"/></` + el + ">")
}

// computeDigests fills in every reference's transforms and digest, working
// on the document with the signature (placeholder digests) in place.
func (s *signer) computeDigests(ctx context.Context, place placement, digests [][]byte) error {
	d, sigEl, err := s.parseWith(place, digests, nil)
	if err != nil {
		return err
	}
	res := &Result{Element: sigEl}
	parts, err := splitSignature(sigEl)
	if err != nil {
		return fmt.Errorf("xmldsig: sign: %w", err)
	}
	if res.XAdES, err = readXAdES(sigEl, parts.objects, s.opts.ID); err != nil {
		return fmt.Errorf("xmldsig: sign: %w", err)
	}
	for i := range s.opts.References {
		if err := ctx.Err(); err != nil {
			return err
		}
		if digests[i], err = s.digest(ctx, d, res, i); err != nil {
			return err
		}
	}
	return nil
}

func (s *signer) parseWith(place placement, digests [][]byte, value []byte) (*Document, *Element, error) {
	data := place.assemble(s.xml(digests, value))
	d, err := Parse(data, s.opts.Limits)
	if err != nil {
		return nil, nil, fmt.Errorf("xmldsig: sign: parsing the signed document: %w", err)
	}
	sigEl, err := place.find(d)
	return d, sigEl, err
}

func (s *signer) digest(ctx context.Context, d *Document, res *Result, i int) ([]byte, error) {
	r := &s.opts.References[i]
	h := r.Digest.New()
	if r.URI != "" && !strings.HasPrefix(r.URI, "#") {
		if err := s.digestExternal(ctx, r, h); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	rr := ReferenceResult{Reference: Reference{URI: r.URI, Type: r.Type}}
	target, whole, err := resolveReference(d, res, &rr)
	if err != nil {
		return nil, fmt.Errorf("xmldsig: sign: reference %d: %w", i+1, err)
	}
	if r.Transforms == nil {
		if within(res.Element, target) {
			r.Transforms = append(r.Transforms, TransformEnveloped)
		}
		r.Transforms = append(r.Transforms, s.opts.C14N)
		r.InclusivePrefixes = s.opts.InclusivePrefixes
	}
	octets, err := transformNodes(d, res.Element, target, whole, transformElements(r))
	if err != nil {
		return nil, fmt.Errorf("xmldsig: sign: reference %d: %w", i+1, err)
	}
	h.Write(octets)
	return h.Sum(nil), nil
}

// transformElements makes the ds:Transform elements the transform code
// reads from a reference's description.
func transformElements(r *SignReference) []*Element {
	out := make([]*Element, 0, len(r.Transforms))
	for _, t := range r.Transforms {
		e := &Element{Prefix: "ds", Local: "Transform", Space: NamespaceDSig, Attrs: []Attr{{Local: "Algorithm", Value: t}}}
		if len(r.InclusivePrefixes) > 0 && (t == AlgExcC14N || t == AlgExcC14NWithComments) {
			in := &Element{Prefix: "ec", Local: "InclusiveNamespaces", Space: AlgExcC14N, Parent: e,
				Attrs: []Attr{{Local: "PrefixList", Value: strings.Join(r.InclusivePrefixes, " ")}}}
			e.Children = []Node{{Kind: KindElement, Element: in}}
		}
		out = append(out, e)
	}
	return out
}

func (s *signer) digestExternal(ctx context.Context, r *SignReference, h io.Writer) error {
	if s.opts.Resolver == nil {
		return fmt.Errorf("xmldsig: sign: no resolver for %q", r.URI)
	}
	rc, err := s.opts.Resolver(ctx, r.URI)
	if err != nil {
		return fmt.Errorf("xmldsig: sign: opening %q: %w", r.URI, err)
	}
	defer rc.Close()
	if len(r.Transforms) == 0 {
		if _, err := io.Copy(h, rc); err != nil {
			return fmt.Errorf("xmldsig: sign: reading %q: %w", r.URI, err)
		}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxSignedExternalC14N+1))
	if err != nil {
		return fmt.Errorf("xmldsig: sign: reading %q: %w", r.URI, err)
	}
	if len(data) > maxSignedExternalC14N {
		return fmt.Errorf("xmldsig: sign: %q is over %d bytes, too large to transform", r.URI, maxSignedExternalC14N)
	}
	octets, err := transformOctets(data, transformElements(r), s.opts.Limits)
	if err != nil {
		return fmt.Errorf("xmldsig: sign: %q: %w", r.URI, err)
	}
	_, err = h.Write(octets)
	return err
}

// signValue canonicalizes SignedInfo in place, signs it, checks the value
// with the public key and returns the finished document.
func (s *signer) signValue(place placement, digests [][]byte) ([]byte, error) {
	_, sigEl, err := s.parseWith(place, digests, nil)
	if err != nil {
		return nil, err
	}
	si := sigEl.Child(NamespaceDSig, "SignedInfo")
	c, err := c14nFromElement(si.Elements()[0])
	if err != nil {
		return nil, fmt.Errorf("xmldsig: sign: %w", err)
	}
	signed := c.Canonicalize(si, nil)
	value, err := s.signBytes(signed)
	if err != nil {
		return nil, err
	}
	if err := s.alg.Verify(s.opts.Signer.Public(), signed, value); err != nil {
		return nil, fmt.Errorf("xmldsig: sign: the signer's value does not verify with its public key: %w", err)
	}
	return place.assemble(s.xml(digests, value)), nil
}

func (s *signer) signBytes(msg []byte) ([]byte, error) {
	h := s.alg.Hash.New()
	h.Write(msg)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = s.alg.Hash
	if s.alg.Scheme == sigalg.SchemeRSAPSS {
		opts = &rsa.PSSOptions{SaltLength: s.alg.Hash.Size(), Hash: s.alg.Hash}
	}
	sig, err := s.opts.Signer.Sign(s.opts.Rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("xmldsig: sign: signing SignedInfo: %w", err)
	}
	if s.ecSize > 0 {
		return plainECDSA(sig, s.ecSize)
	}
	return sig, nil
}

// plainECDSA turns a crypto.Signer's DER ECDSA-Sig-Value into XML-DSig
// 1.1's r||s of the curve's size.
func plainECDSA(der []byte, size int) ([]byte, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) > 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.BitLen() > 8*size || v.S.BitLen() > 8*size {
		return nil, errors.New("xmldsig: sign: the signer returned no valid ECDSA signature")
	}
	out := make([]byte, 2*size)
	v.R.FillBytes(out[:size])
	v.S.FillBytes(out[size:])
	return out, nil
}
