// Package cms parses and verifies CMS SignedData (RFC 5652) as used by
// CAdES (ETSI EN 319 122) and RFC 3161 timestamp tokens.
//
// Parsing accepts BER (indefinite lengths, segmented OCTET STRINGs) in
// linear time and never panics; signed attributes are verified over the
// bytes as transmitted. Verification returns a structured result per signer
// with one entry per check, so that a report can map each outcome to an
// ETSI EN 319 102-1 sub-indication. Trust in certificates is not decided
// here: that is crypto/trust's job.
package cms

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Limits on hostile input.
const (
	// MaxSize caps the encoded SignedData; enveloping signatures carry the
	// document, so this is the largest document we accept embedded.
	MaxSize         = 256 << 20
	maxSigners      = 64
	maxCertificates = 512
	maxCRLs         = 512
	maxAttributes   = 128
	maxAttrValues   = 64
	// maxNesting bounds countersignatures and timestamps inside timestamps.
	maxNesting = 4
	// maxVerifications bounds the public-key operations of one Verify call
	// (signers, countersignatures, timestamps, candidate certificates and
	// attribute encodings): hostile input must not buy unbounded CPU.
	maxVerifications = 256
	// maxTimestamps bounds the timestamps evaluated per signer; each may
	// hash the whole content.
	maxTimestamps = 16
)

// ErrFormat is wrapped by all parse errors, so callers can map them to
// FORMAT_FAILURE.
var ErrFormat = errors.New("cms: malformed")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// SignedData is a parsed SignedData. Byte slices alias the normalized
// input, which the SignedData owns.
type SignedData struct {
	// Raw is the normalized (definite-length) ContentInfo.
	Raw []byte
	// BER reports that the input was not DER in length or string encoding
	// and had to be normalized.
	BER     bool
	Version int

	DigestAlgorithms []sigalg.AlgorithmIdentifier

	EContentType asn1.ObjectIdentifier
	// Content is the encapsulated content, joined if it was segmented; nil
	// when the signature is detached.
	Content []byte
	// HasContent distinguishes empty attached content from detached content.
	HasContent bool

	Certificates []*cert.Certificate
	// CertificateErrors lists certificates that could not be parsed; they
	// are reported, not fatal, since the signer's may still be present.
	CertificateErrors []string
	// OtherCertificates are non-X.509 CertificateChoices (attribute
	// certificates and others), raw.
	OtherCertificates [][]byte
	// CRLs are CertificateLists from RevocationInfoChoices, raw DER.
	CRLs [][]byte
	// OCSPResponses are id-ri-ocsp-response entries of RevocationInfoChoices, raw.
	OCSPResponses [][]byte
	// OtherRevocationInfo are other RevocationInfoChoices, raw.
	OtherRevocationInfo [][]byte

	Signers []*SignerInfo

	origin *origin
}

// SignerIdentifier is IssuerAndSerialNumber or SubjectKeyIdentifier.
type SignerIdentifier struct {
	Issuer       []byte // DER Name, nil when identified by key identifier
	SerialNumber *big.Int
	SubjectKeyID []byte
}

// String describes the identifier for reports.
func (id SignerIdentifier) String() string {
	if id.SubjectKeyID != nil {
		return fmt.Sprintf("subjectKeyIdentifier %X", id.SubjectKeyID)
	}
	name := "?"
	if n, err := cert.ParseName(id.Issuer); err == nil {
		name = n.String()
	}
	return fmt.Sprintf("issuer %q serial %s", name, id.SerialNumber.Text(16))
}

// Matches reports whether c is the certificate identified.
func (id SignerIdentifier) Matches(c *cert.Certificate) bool {
	if id.SubjectKeyID != nil {
		return len(c.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyID, id.SubjectKeyID)
	}
	return c.IssuedBySerial(id.Issuer, id.SerialNumber)
}

// Attribute is one CMS attribute.
type Attribute struct {
	Type asn1.ObjectIdentifier
	// Values are the complete DER elements of attrValues.
	Values [][]byte
	// Raw is the complete Attribute element.
	Raw []byte
}

// SignerInfo is a parsed SignerInfo.
type SignerInfo struct {
	Raw     []byte
	Version int
	SID     SignerIdentifier

	DigestAlgorithm    sigalg.AlgorithmIdentifier
	SignatureAlgorithm sigalg.AlgorithmIdentifier
	Signature          []byte

	// SignedAttrsRaw is the signedAttrs element with the SET OF tag (0x31)
	// instead of the transmitted [0] IMPLICIT tag: the exact bytes the
	// signature covers. Nil when there are no signed attributes.
	SignedAttrsRaw []byte
	// SignedAttrsNormalized is set when the transmitted signed attributes
	// had non-minimal lengths: the same attributes with minimal lengths.
	SignedAttrsNormalized []byte
	SignedAttrs           []Attribute
	// UnsignedAttrsRaw is the transmitted unsignedAttrs element, nil if absent.
	UnsignedAttrsRaw []byte
	UnsignedAttrs    []Attribute
}

// Parse parses a ContentInfo holding SignedData. BER is accepted.
func Parse(input []byte) (*SignedData, error) {
	if len(input) > MaxSize {
		return nil, formatErr("input of %d bytes exceeds the %d byte limit", len(input), MaxSize)
	}
	der, original, err := normalizeBER(input)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	sd, err := parseContentInfo(der, &origin{raw: der, original: original})
	if err != nil {
		return nil, err
	}
	sd.BER = !bytes.Equal(der, input)
	return sd, nil
}

// origin relates normalized bytes to the transmitted ones.
type origin struct {
	raw      []byte
	original map[int][]byte
}

// transmitted returns the input bytes of an element of o.raw, or el itself.
func (o *origin) transmitted(el []byte) []byte {
	if o == nil || len(el) == 0 {
		return el
	}
	off := cap(o.raw) - cap(el)
	if off < 0 || off >= len(o.raw) {
		return el
	}
	if orig, ok := o.original[off]; ok {
		return orig
	}
	return el
}

func parseContentInfo(der []byte, o *origin) (*SignedData, error) {
	s := cryptobyte.String(der)
	var ci, content cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, formatErr("not a ContentInfo")
	}
	if !ct.Equal(OIDSignedData) {
		return nil, formatErr("content type %s is not signedData", ct)
	}
	if !ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.Empty() {
		return nil, formatErr("malformed ContentInfo content")
	}
	sd := &SignedData{Raw: der, origin: o}
	if err := sd.parse(content); err != nil {
		return nil, err
	}
	return sd, nil
}

func (sd *SignedData) parse(content cryptobyte.String) error {
	var s cryptobyte.String
	if !content.ReadASN1(&s, cbasn1.SEQUENCE) || !content.Empty() {
		return formatErr("malformed SignedData")
	}
	var version int64
	if !s.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) || version < 0 || version > 5 {
		return formatErr("malformed SignedData version")
	}
	sd.Version = int(version)
	var algs cryptobyte.String
	if !s.ReadASN1(&algs, cbasn1.SET) {
		return formatErr("malformed digestAlgorithms")
	}
	for !algs.Empty() {
		var ai sigalg.AlgorithmIdentifier
		if !sigalg.ReadAlgorithmIdentifier(&algs, &ai) || len(sd.DigestAlgorithms) >= maxSigners {
			return formatErr("malformed digestAlgorithms")
		}
		sd.DigestAlgorithms = append(sd.DigestAlgorithms, ai)
	}
	if err := sd.parseEncapContent(&s); err != nil {
		return err
	}
	var certs, crls cryptobyte.String
	var hasCerts, hasCRLs bool
	if !s.ReadOptionalASN1(&certs, &hasCerts, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return formatErr("malformed certificates")
	}
	if hasCerts {
		if err := sd.parseCertificates(certs); err != nil {
			return err
		}
	}
	if !s.ReadOptionalASN1(&crls, &hasCRLs, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return formatErr("malformed crls")
	}
	if hasCRLs {
		if err := sd.parseRevocationInfo(crls); err != nil {
			return err
		}
	}
	var signers cryptobyte.String
	if !s.ReadASN1(&signers, cbasn1.SET) || !s.Empty() {
		return formatErr("malformed signerInfos")
	}
	for i := 0; !signers.Empty(); i++ {
		if i >= maxSigners {
			return formatErr("more than %d signers", maxSigners)
		}
		si, err := parseSignerInfo(&signers, sd.origin)
		if err != nil {
			return fmt.Errorf("cms: parse signer info %d: %w", i+1, err)
		}
		sd.Signers = append(sd.Signers, si)
	}
	return nil
}

func (sd *SignedData) parseEncapContent(s *cryptobyte.String) error {
	var eci cryptobyte.String
	if !s.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&sd.EContentType) {
		return formatErr("malformed encapContentInfo")
	}
	var explicit cryptobyte.String
	if !eci.ReadOptionalASN1(&explicit, &sd.HasContent, cbasn1.Tag(0).Constructed().ContextSpecific()) || !eci.Empty() {
		return formatErr("malformed eContent")
	}
	if sd.HasContent {
		// Segmented content was joined into one OCTET STRING by normalizeBER.
		var octets cryptobyte.String
		if !explicit.ReadASN1(&octets, cbasn1.OCTET_STRING) || !explicit.Empty() {
			return formatErr("eContent is not an OCTET STRING")
		}
		sd.Content = octets
	}
	return nil
}

func (sd *SignedData) parseCertificates(certs cryptobyte.String) error {
	for !certs.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&el, &tag) {
			return formatErr("malformed CertificateChoices")
		}
		if len(sd.Certificates)+len(sd.OtherCertificates)+len(sd.CertificateErrors) >= maxCertificates {
			return formatErr("more than %d certificates", maxCertificates)
		}
		if tag != cbasn1.SEQUENCE {
			sd.OtherCertificates = append(sd.OtherCertificates, el)
			continue
		}
		c, err := cert.Parse(el)
		if err != nil {
			sd.CertificateErrors = append(sd.CertificateErrors, fmt.Sprintf("certificate %d: %v", len(sd.Certificates)+len(sd.CertificateErrors)+1, err))
			continue
		}
		sd.Certificates = append(sd.Certificates, c)
	}
	return nil
}

func (sd *SignedData) parseRevocationInfo(crls cryptobyte.String) error {
	otherTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	for n := 0; !crls.Empty(); n++ {
		if n >= maxCRLs {
			return formatErr("more than %d revocation entries", maxCRLs)
		}
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !crls.ReadAnyASN1Element(&el, &tag) {
			return formatErr("malformed RevocationInfoChoices")
		}
		switch tag {
		case cbasn1.SEQUENCE:
			sd.CRLs = append(sd.CRLs, el)
		case otherTag:
			inner := el
			var body cryptobyte.String
			var format asn1.ObjectIdentifier
			if !inner.ReadASN1(&body, otherTag) || !body.ReadASN1ObjectIdentifier(&format) {
				return formatErr("malformed OtherRevocationInfoFormat")
			}
			if format.Equal(OIDRevocationInfoOCSP) {
				sd.OCSPResponses = append(sd.OCSPResponses, body)
			} else {
				sd.OtherRevocationInfo = append(sd.OtherRevocationInfo, el)
			}
		default:
			sd.OtherRevocationInfo = append(sd.OtherRevocationInfo, el)
		}
	}
	return nil
}

func parseSignerInfo(signers *cryptobyte.String, o *origin) (*SignerInfo, error) {
	var raw, s cryptobyte.String
	if !signers.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return nil, formatErr("malformed SignerInfo")
	}
	si := &SignerInfo{Raw: raw}
	s = raw
	s.ReadASN1(&s, cbasn1.SEQUENCE)
	var version int64
	if !s.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) || version < 0 || version > 5 {
		return nil, formatErr("malformed SignerInfo version")
	}
	si.Version = int(version)
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias cryptobyte.String
		var issuer cryptobyte.String
		si.SID.SerialNumber = new(big.Int)
		if !s.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!readSerial(&ias, si.SID.SerialNumber) || !ias.Empty() {
			return nil, formatErr("malformed IssuerAndSerialNumber")
		}
		si.SID.Issuer = issuer
	case s.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		var ski cryptobyte.String
		if !s.ReadASN1(&ski, cbasn1.Tag(0).ContextSpecific()) {
			return nil, formatErr("malformed SubjectKeyIdentifier")
		}
		si.SID.SubjectKeyID = ski
	default:
		return nil, formatErr("unknown SignerIdentifier")
	}
	if !sigalg.ReadAlgorithmIdentifier(&s, &si.DigestAlgorithm) {
		return nil, formatErr("malformed digestAlgorithm")
	}
	signedTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if s.PeekASN1Tag(signedTag) {
		var el cryptobyte.String
		if !s.ReadASN1Element(&el, signedTag) {
			return nil, formatErr("malformed signedAttrs")
		}
		// The signature covers the SET OF encoding: same bytes as
		// transmitted, universal tag.
		tr := o.transmitted(el)
		si.SignedAttrsRaw = append([]byte{0x31}, tr[1:]...)
		if !bytes.Equal(tr, el) {
			si.SignedAttrsNormalized = append([]byte{0x31}, el[1:]...)
		}
		attrs, err := parseAttributes(el, signedTag)
		if err != nil {
			return nil, fmt.Errorf("signed attributes: %w", err)
		}
		si.SignedAttrs = attrs
	}
	if !sigalg.ReadAlgorithmIdentifier(&s, &si.SignatureAlgorithm) {
		return nil, formatErr("malformed signatureAlgorithm")
	}
	var sig cryptobyte.String
	if !s.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, formatErr("malformed signature")
	}
	si.Signature = sig
	unsignedTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if s.PeekASN1Tag(unsignedTag) {
		var el cryptobyte.String
		if !s.ReadASN1Element(&el, unsignedTag) {
			return nil, formatErr("malformed unsignedAttrs")
		}
		si.UnsignedAttrsRaw = el
		attrs, err := parseAttributes(el, unsignedTag)
		if err != nil {
			return nil, fmt.Errorf("unsigned attributes: %w", err)
		}
		si.UnsignedAttrs = attrs
	}
	if !s.Empty() {
		return nil, formatErr("trailing data in SignerInfo")
	}
	return si, nil
}

// readSerial reads an INTEGER serial number. Negative and non-minimal
// serials exist in the wild, so they are read leniently as two's complement.
func readSerial(s *cryptobyte.String, out *big.Int) bool {
	var b cryptobyte.String
	if !s.ReadASN1(&b, cbasn1.INTEGER) || len(b) == 0 || len(b) > 64 {
		return false
	}
	out.SetBytes(b)
	if b[0]&0x80 != 0 {
		out.Sub(out, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return true
}

func parseAttributes(el cryptobyte.String, tag cbasn1.Tag) ([]Attribute, error) {
	var set cryptobyte.String
	if !el.ReadASN1(&set, tag) {
		return nil, formatErr("malformed attribute set")
	}
	var attrs []Attribute
	for !set.Empty() {
		if len(attrs) >= maxAttributes {
			return nil, formatErr("more than %d attributes", maxAttributes)
		}
		var raw cryptobyte.String
		if !set.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
			return nil, formatErr("malformed attribute")
		}
		a := Attribute{Raw: raw}
		body := raw
		var values cryptobyte.String
		if !body.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&a.Type) ||
			!body.ReadASN1(&values, cbasn1.SET) || !body.Empty() {
			return nil, formatErr("malformed attribute")
		}
		for !values.Empty() {
			var v cryptobyte.String
			if !values.ReadAnyASN1Element(&v, nil) || len(a.Values) >= maxAttrValues {
				return nil, formatErr("malformed value of attribute %s", a.Type)
			}
			a.Values = append(a.Values, v)
		}
		if len(a.Values) == 0 {
			return nil, formatErr("attribute %s without values", a.Type)
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

// Attributes returns all attributes of the given type in attrs.
func Attributes(attrs []Attribute, oid asn1.ObjectIdentifier) []Attribute {
	var out []Attribute
	for _, a := range attrs {
		if a.Type.Equal(oid) {
			out = append(out, a)
		}
	}
	return out
}
