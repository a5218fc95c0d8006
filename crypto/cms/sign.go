package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// SignOptions describe the SignedData Sign makes.
type SignOptions struct {
	// Signer makes the signature value: an *rsa.PrivateKey,
	// *ecdsa.PrivateKey, ed25519.PrivateKey or a PKCS#11 key behind
	// crypto.Signer (crypto/pkcs11).
	Signer crypto.Signer
	// Certificates are DER certificates for the certificates field: the
	// signer's first (required, it identifies the signer and is referenced
	// by the signing-certificate-v2 attribute), then its chain.
	Certificates [][]byte
	// CRLs are DER CertificateLists for the crls field
	// (RevocationInfoChoices), so that a validator has revocation data for
	// the certificates without fetching it (what DSS needs to reach a
	// conclusive verdict offline). Left out with OmitCertificates.
	CRLs [][]byte
	// OmitCertificates leaves the certificates field out; the signer is
	// still identified by the issuer and serial of Certificates[0]. A TSA
	// does so when the request's certReq is false (RFC 3161 section 2.4.1).
	OmitCertificates bool
	// Hash is the digest algorithm: SHA-256 (default), SHA-384 or SHA-512.
	// Ed25519 always uses SHA-512 (RFC 8419).
	Hash crypto.Hash
	// PSS selects RSASSA-PSS (salt length equal to the hash length) instead
	// of PKCS#1 v1.5 for RSA keys.
	PSS bool
	// Detached leaves the content out of the SignedData.
	Detached bool
	// ContentType is the eContentType; default id-data. A TSA signs
	// id-ct-TSTInfo (OIDTSTInfo).
	ContentType asn1.ObjectIdentifier
	// SigningTime, when not zero, is put in a signing-time attribute
	// (truncated to seconds). CAdES-B-B (ETSI EN 319 122-1) requires it,
	// and DSS's default policy fails a signature without it: set it for
	// anything but timestamp tokens.
	SigningTime time.Time
	// SignedAttributes are further signed attributes (Type and Values, the
	// values complete DER elements); contentType, messageDigest,
	// signingTime and signingCertificateV2 are added by Sign and must not
	// be among them.
	SignedAttributes []Attribute
	// UnsignedAttributes go into unsignedAttrs as they are.
	UnsignedAttributes []Attribute
	// Rand is the randomness for RSA-PSS and ECDSA; default crypto/rand.
	Rand io.Reader
}

// maxSignAttributes caps the caller's attributes; a signer never needs more.
const maxSignAttributes = 32

// Sign makes a CMS SignedData (RFC 5652) over content as a DER
// ContentInfo, with the signed attributes CAdES-B requires (ETSI EN 319
// 122-1 section 5.2: content-type, message-digest, signing-certificate-v2
// of RFC 5035) and optionally signing-time. The signature value is checked
// with the signer certificate's key before it is returned, so that a
// faulty token or a key that does not belong to the certificate is caught
// here and not by the relying party.
func Sign(ctx context.Context, content []byte, opts SignOptions) ([]byte, error) {
	return SignReader(ctx, bytes.NewReader(content), opts)
}

// SignReader is Sign with the content read from r. Detached content is
// hashed as it is read and not kept, so it may be of any size; attached
// content is held and capped at MaxSize.
func SignReader(ctx context.Context, r io.Reader, opts SignOptions) ([]byte, error) {
	s, err := newCMSSigner(opts)
	if err != nil {
		return nil, err
	}
	h := s.hash.New()
	var keep bytes.Buffer
	w := io.Writer(h)
	if !opts.Detached {
		w = io.MultiWriter(h, &keep)
	}
	src := io.Reader(ctxReader{ctx: ctx, r: r})
	if !opts.Detached {
		src = io.LimitReader(src, MaxSize+1)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return nil, fmt.Errorf("cms: sign: read content: %w", err)
	}
	if !opts.Detached && n > MaxSize {
		return nil, fmt.Errorf("cms: sign: attached content exceeds %d bytes", MaxSize)
	}
	var content []byte
	if !opts.Detached {
		content = keep.Bytes()
	}
	return s.sign(h.Sum(nil), content)
}

// ctxReader stops reading when the context ends: content may be large.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type cmsSigner struct {
	opts     SignOptions
	cert     *cert.Certificate
	hash     crypto.Hash
	digestAI []byte // DER AlgorithmIdentifier
	sigAI    []byte // DER AlgorithmIdentifier
	alg      sigalg.Algorithm
	signOpts crypto.SignerOpts
}

func newCMSSigner(opts SignOptions) (*cmsSigner, error) {
	if opts.Signer == nil {
		return nil, errors.New("cms: sign: no signer")
	}
	if len(opts.Certificates) == 0 {
		return nil, errors.New("cms: sign: no signer certificate")
	}
	if len(opts.Certificates) > maxCertificates {
		return nil, fmt.Errorf("cms: sign: %d certificates, at most %d", len(opts.Certificates), maxCertificates)
	}
	if len(opts.SignedAttributes) > maxSignAttributes || len(opts.UnsignedAttributes) > maxSignAttributes {
		return nil, fmt.Errorf("cms: sign: more than %d extra attributes", maxSignAttributes)
	}
	for _, a := range opts.SignedAttributes {
		for _, own := range uniqueSignedAttrs {
			if a.Type.Equal(own) {
				return nil, fmt.Errorf("cms: sign: attribute %s is made by Sign", a.Type)
			}
		}
	}
	c, err := cert.Parse(opts.Certificates[0])
	if err != nil {
		return nil, fmt.Errorf("cms: sign: signer certificate: %w", err)
	}
	for i, der := range opts.Certificates[1:] {
		if _, err := cert.Parse(der); err != nil {
			return nil, fmt.Errorf("cms: sign: certificate %d: %w", i+1, err)
		}
	}
	if len(opts.CRLs) > maxCRLs {
		return nil, fmt.Errorf("cms: sign: %d CRLs, at most %d", len(opts.CRLs), maxCRLs)
	}
	for i, der := range opts.CRLs {
		if err := checkSequence(der); err != nil {
			return nil, fmt.Errorf("cms: sign: CRL %d: %w", i, err)
		}
	}
	if c.PublicKey == nil {
		return nil, fmt.Errorf("cms: sign: signer certificate key: %w", c.PublicKeyError)
	}
	if !samePublicKey(c.PublicKey, opts.Signer.Public()) {
		return nil, errors.New("cms: sign: the signer's key does not belong to the signer certificate")
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.ContentType == nil {
		opts.ContentType = OIDData
	}
	s := &cmsSigner{opts: opts, cert: c, hash: opts.Hash}
	if s.hash == 0 {
		s.hash = crypto.SHA256
	}
	if err := s.chooseAlgorithm(); err != nil {
		return nil, err
	}
	return s, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func (s *cmsSigner) chooseAlgorithm() error {
	var sigOID asn1.ObjectIdentifier
	var params []byte
	switch s.opts.Signer.Public().(type) {
	case *rsa.PublicKey:
		if s.opts.PSS {
			sigOID = sigalg.OIDRSASSAPSS
			params = pssParams(s.hash)
			s.signOpts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: s.hash}
		} else {
			sigOID = map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: sigalg.OIDSHA256WithRSA,
				crypto.SHA384: sigalg.OIDSHA384WithRSA, crypto.SHA512: sigalg.OIDSHA512WithRSA}[s.hash]
			params = []byte{0x05, 0x00}
			s.signOpts = s.hash
		}
	case *ecdsa.PublicKey:
		sigOID = map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: sigalg.OIDECDSAWithSHA256,
			crypto.SHA384: sigalg.OIDECDSAWithSHA384, crypto.SHA512: sigalg.OIDECDSAWithSHA512}[s.hash]
		s.signOpts = s.hash
	case ed25519.PublicKey:
		if s.opts.Hash != 0 && s.opts.Hash != crypto.SHA512 {
			return fmt.Errorf("cms: sign: Ed25519 signs with SHA-512, not %s", sigalg.HashName(s.opts.Hash))
		}
		s.hash, sigOID, s.signOpts = crypto.SHA512, sigalg.OIDEd25519, crypto.Hash(0)
	default:
		return fmt.Errorf("cms: sign: unsupported key type %T", s.opts.Signer.Public())
	}
	if sigOID == nil {
		return fmt.Errorf("cms: sign: unsupported digest %s (SHA-256, SHA-384 or SHA-512)", sigalg.HashName(s.hash))
	}
	s.digestAI = algorithmIdentifier(sigalg.DigestOID(s.hash), nil)
	s.sigAI = algorithmIdentifier(sigOID, params)
	ai, err := sigalg.ParseAlgorithmIdentifier(s.sigAI)
	if err != nil {
		return err
	}
	alg, err := sigalg.ParseSignatureAlgorithm(ai)
	if err != nil {
		return fmt.Errorf("cms: sign: %w", err)
	}
	s.alg = alg.WithHash(s.hash)
	return nil
}

func algorithmIdentifier(oid asn1.ObjectIdentifier, params []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if params != nil {
			b.AddBytes(params)
		}
	})
	return b.BytesOrPanic()
}

// pssParams are RSASSA-PSS-params (RFC 4055) for hash h, MGF1 with h and a
// salt as long as the hash; the trailer field keeps its default.
func pssParams(h crypto.Hash) []byte {
	hashAI := algorithmIdentifier(sigalg.DigestOID(h), nil)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(hashAI) })
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(algorithmIdentifier(sigalg.OIDMGF1, hashAI))
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(int64(h.Size()))
		})
	})
	return b.BytesOrPanic()
}

func (s *cmsSigner) sign(digest, content []byte) ([]byte, error) {
	signedAttrs, err := s.signedAttributes(digest)
	if err != nil {
		return nil, err
	}
	var sig []byte
	if s.signOpts.HashFunc() == 0 {
		sig, err = s.opts.Signer.Sign(s.opts.Rand, signedAttrs, s.signOpts)
	} else {
		sig, err = s.opts.Signer.Sign(s.opts.Rand, hashOf(s.hash, signedAttrs), s.signOpts)
	}
	if err != nil {
		return nil, fmt.Errorf("cms: sign: signature value: %w", err)
	}
	if err := s.alg.Verify(s.cert.PublicKey, signedAttrs, sig); err != nil {
		return nil, fmt.Errorf("cms: sign: the signature value made does not verify: %w", err)
	}
	unsigned, err := encodeAttributeSet(s.opts.UnsignedAttributes)
	if err != nil {
		return nil, fmt.Errorf("cms: sign: unsigned attributes: %w", err)
	}

	version := int64(1)
	if !s.opts.ContentType.Equal(OIDData) {
		version = 3 // RFC 5652 section 5.1
	}
	certs := slices.Clone(s.opts.Certificates)
	slices.SortFunc(certs, bytes.Compare) // DER SET OF
	certs = slices.CompactFunc(certs, bytes.Equal)
	crls := slices.Clone(s.opts.CRLs)
	slices.SortFunc(crls, bytes.Compare)

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(s.digestAI) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(s.opts.ContentType)
					if content != nil {
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(content)
						})
					}
				})
				if !s.opts.OmitCertificates {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range certs {
							b.AddBytes(c)
						}
					})
					if len(crls) > 0 {
						b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							for _, c := range crls {
								b.AddBytes(c)
							}
						})
					}
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1) // issuerAndSerialNumber
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(s.cert.RawIssuer)
							b.AddASN1BigInt(s.cert.SerialNumber)
						})
						b.AddBytes(s.digestAI)
						b.AddBytes(implicitTag(signedAttrs, 0xa0))
						b.AddBytes(s.sigAI)
						b.AddASN1OctetString(sig)
						if unsigned != nil {
							b.AddBytes(implicitTag(unsigned, 0xa1))
						}
					})
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: sign: encode: %w", err)
	}
	return out, nil
}

// implicitTag returns a copy of the DER element el with its tag replaced.
func implicitTag(el []byte, tag byte) []byte {
	out := slices.Clone(el)
	out[0] = tag
	return out
}

// signedAttributes returns the DER SET OF the signed attributes, the bytes
// the signature covers.
func (s *cmsSigner) signedAttributes(digest []byte) ([]byte, error) {
	oid := func(o asn1.ObjectIdentifier) []byte {
		var b cryptobyte.Builder
		b.AddASN1ObjectIdentifier(o)
		return b.BytesOrPanic()
	}
	octets := func(d []byte) []byte {
		var b cryptobyte.Builder
		b.AddASN1OctetString(d)
		return b.BytesOrPanic()
	}
	attrs := []Attribute{
		{Type: OIDAttrContentType, Values: [][]byte{oid(s.opts.ContentType)}},
		{Type: OIDAttrMessageDigest, Values: [][]byte{octets(digest)}},
		{Type: OIDAttrSigningCertificateV2, Values: [][]byte{s.signingCertificateV2()}},
	}
	if !s.opts.SigningTime.IsZero() {
		t, err := encodeTime(s.opts.SigningTime)
		if err != nil {
			return nil, fmt.Errorf("cms: sign: signing time: %w", err)
		}
		attrs = append(attrs, Attribute{Type: OIDAttrSigningTime, Values: [][]byte{t}})
	}
	attrs = append(attrs, s.opts.SignedAttributes...)
	set, err := encodeAttributeSet(attrs)
	if err != nil {
		return nil, fmt.Errorf("cms: sign: signed attributes: %w", err)
	}
	return set, nil
}

// encodeTime encodes a Time as RFC 5652 section 11.3 demands: UTCTime for
// the years 1950 to 2049, GeneralizedTime otherwise.
func encodeTime(t time.Time) ([]byte, error) {
	t = t.UTC().Truncate(time.Second)
	var b cryptobyte.Builder
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
	return b.Bytes()
}

// signingCertificateV2 is the SigningCertificateV2 (RFC 5035) value naming
// the signer certificate by its digest (the signature's digest algorithm;
// SHA-256, the default, is omitted as DER requires) and issuer and serial.
func (s *cmsSigner) signingCertificateV2() []byte {
	d, _ := s.cert.Digest(s.hash) // s.hash is one of SHA-256/384/512
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if s.hash != crypto.SHA256 {
					b.AddBytes(s.digestAI)
				}
				b.AddASN1OctetString(d)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddBytes(s.cert.RawIssuer)
						})
					})
					b.AddASN1BigInt(s.cert.SerialNumber)
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// encodeAttributeSet encodes attributes as a DER SET OF Attribute (sorted
// by encoding); nil for none.
func encodeAttributeSet(attrs []Attribute) ([]byte, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	els := make([][]byte, 0, len(attrs))
	for _, a := range attrs {
		el, err := encodeAttribute(a)
		if err != nil {
			return nil, err
		}
		els = append(els, el)
	}
	slices.SortFunc(els, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, e := range els {
			b.AddBytes(e)
		}
	})
	return b.Bytes()
}

// encodeAttribute encodes one Attribute, its values a DER SET OF.
func encodeAttribute(a Attribute) ([]byte, error) {
	if len(a.Values) == 0 {
		return nil, fmt.Errorf("attribute %s without values", a.Type)
	}
	for _, v := range a.Values {
		if err := checkElement(v); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Type, err)
		}
	}
	vals := slices.Clone(a.Values)
	slices.SortFunc(vals, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(a.Type)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, v := range vals {
				b.AddBytes(v)
			}
		})
	})
	return b.Bytes()
}

// checkElement accepts exactly one complete DER element.
func checkElement(v []byte) error {
	s := cryptobyte.String(v)
	var el cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&el, &tag) || !s.Empty() {
		return errors.New("value is not one DER element")
	}
	return nil
}

// checkSequence accepts exactly one DER SEQUENCE (a CertificateList).
func checkSequence(v []byte) error {
	s := cryptobyte.String(v)
	var el cryptobyte.String
	if !s.ReadASN1Element(&el, cbasn1.SEQUENCE) || !s.Empty() {
		return errors.New("not one DER SEQUENCE")
	}
	return nil
}
