// Package cert parses X.509 certificates strictly and without the
// restrictions of crypto/x509: brainpool keys and RSASSA-PSS signatures with
// SHA-3 occur in German qualified certificates and must be readable.
//
// Only what signature validation and qualification need is interpreted; all
// extensions stay available raw.
package cert

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// MaxSize caps the encoded size of one certificate. Real certificates are
// a few KB; the largest qualified ones with long policy texts stay far below.
const MaxSize = 64 << 10

// maxExtensions caps the number of extensions, to bound work per certificate.
const maxExtensions = 64

// Extension object identifiers.
var (
	OIDExtSubjectKeyID      = asn1.ObjectIdentifier{2, 5, 29, 14}
	OIDExtKeyUsage          = asn1.ObjectIdentifier{2, 5, 29, 15}
	OIDExtSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
	OIDExtBasicConstraints  = asn1.ObjectIdentifier{2, 5, 29, 19}
	OIDExtNameConstraints   = asn1.ObjectIdentifier{2, 5, 29, 30}
	OIDExtCRLDistribution   = asn1.ObjectIdentifier{2, 5, 29, 31}
	OIDExtCertPolicies      = asn1.ObjectIdentifier{2, 5, 29, 32}
	OIDExtPolicyConstraints = asn1.ObjectIdentifier{2, 5, 29, 36}
	OIDExtAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	OIDExtExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 37}
	OIDExtInhibitAnyPolicy  = asn1.ObjectIdentifier{2, 5, 29, 54}
	OIDExtAuthorityInfo     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	OIDExtQCStatements      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	OIDExtOCSPNoCheck       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

	OIDAccessOCSP      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	OIDAccessCAIssuers = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}

	OIDEKUTimeStamping     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	OIDEKUOCSPSigning      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
	OIDEKUAnyExtendedUsage = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
)

// Certificate is a parsed X.509 v1/v2/v3 certificate.
type Certificate struct {
	Raw                     []byte // complete DER
	RawTBSCertificate       []byte
	RawSubjectPublicKeyInfo []byte
	RawSubject              []byte
	RawIssuer               []byte

	Version      int // 1, 2 or 3
	SerialNumber *big.Int
	Issuer       pkix.Name
	Subject      pkix.Name
	NotBefore    time.Time
	NotAfter     time.Time

	// SignatureAlgorithm is the outer signatureAlgorithm; TBSSignatureAlgorithm
	// the copy inside the TBS, which must be equal.
	SignatureAlgorithm sigalg.AlgorithmIdentifier
	Signature          []byte

	PublicKeyAlgorithm sigalg.AlgorithmIdentifier
	// PublicKey is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey; nil
	// when PublicKeyError is set. An unsupported key does not make the
	// certificate unparseable: it can still be a chain member we only read.
	PublicKey      crypto.PublicKey
	PublicKeyError error

	Extensions []pkix.Extension
	// UnhandledCriticalExtensions lists critical extensions this package does
	// not interpret; path validation must reject the certificate for them
	// unless the caller handles them.
	UnhandledCriticalExtensions []asn1.ObjectIdentifier
	// ExtensionErrors lists non-critical extensions that could not be
	// interpreted; their fields stay empty.
	ExtensionErrors []string

	SubjectKeyID   []byte
	AuthorityKeyID []byte
	// AuthorityCertIssuer and AuthorityCertSerial are the optional issuer
	// name (raw GeneralNames) and serial of the AuthorityKeyIdentifier.
	AuthorityCertIssuer []byte
	AuthorityCertSerial *big.Int

	HasKeyUsage bool
	KeyUsage    x509.KeyUsage

	ExtKeyUsage         []asn1.ObjectIdentifier
	ExtKeyUsageCritical bool

	BasicConstraintsValid bool
	IsCA                  bool
	MaxPathLen            int // -1 when absent

	Policies []Policy

	// QCStatementsRaw is the qcStatements extension value; QC its interpretation.
	QCStatementsRaw []byte
	QC              *QCStatements

	CRLDistributionPoints []string
	OCSPServers           []string
	IssuingCertificateURL []string

	x509Once sync.Once
	x509Cert *x509.Certificate
	x509Err  error
}

// Policy is one PolicyInformation of the certificatePolicies extension.
type Policy struct {
	OID asn1.ObjectIdentifier
	// Qualifiers is the raw SEQUENCE OF PolicyQualifierInfo, nil if absent.
	Qualifiers []byte
}

// Parse parses one DER certificate. Trailing data is an error. The returned
// certificate does not alias der.
func Parse(der []byte) (*Certificate, error) {
	if len(der) > MaxSize {
		return nil, fmt.Errorf("cert: certificate of %d bytes exceeds the %d byte limit", len(der), MaxSize)
	}
	der = bytes.Clone(der)
	c, err := parse(der)
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	return c, nil
}

// ParseAll parses certificates from PEM (any number of CERTIFICATE blocks)
// or from a single DER certificate.
func ParseAll(data []byte) ([]*Certificate, error) {
	trimmed := bytes.TrimSpace(data)
	// PEM may be preceded by explanatory text (RFC 7468 section 5.2), such
	// as openssl's "subject=" lines; DER always starts with a SEQUENCE.
	if (len(trimmed) > 0 && trimmed[0] == 0x30) || !bytes.Contains(trimmed, []byte("-----BEGIN")) {
		c, err := Parse(data)
		if err != nil {
			return nil, err
		}
		return []*Certificate{c}, nil
	}
	var out []*Certificate
	rest := trimmed
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := Parse(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("cert: no CERTIFICATE in PEM input")
	}
	return out, nil
}

func parse(der []byte) (*Certificate, error) {
	c := &Certificate{Raw: der, MaxPathLen: -1}
	input := cryptobyte.String(der)
	var certSeq cryptobyte.String
	if !input.ReadASN1(&certSeq, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed certificate")
	}
	if !input.Empty() {
		return nil, errors.New("trailing data after certificate")
	}
	var tbs cryptobyte.String
	if !certSeq.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed tbsCertificate")
	}
	c.RawTBSCertificate = tbs
	if !sigalg.ReadAlgorithmIdentifier(&certSeq, &c.SignatureAlgorithm) {
		return nil, errors.New("malformed signatureAlgorithm")
	}
	var sig asn1.BitString
	if !certSeq.ReadASN1BitString(&sig) || !certSeq.Empty() {
		return nil, errors.New("malformed signature value")
	}
	if sig.BitLength%8 != 0 {
		return nil, errors.New("signature value is not whole bytes")
	}
	c.Signature = sig.Bytes
	if err := c.parseTBS(tbs); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Certificate) parseTBS(tbs cryptobyte.String) error {
	if !tbs.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return errors.New("malformed tbsCertificate")
	}
	version := int64(0)
	if !tbs.ReadOptionalASN1Integer(&version, cbasn1.Tag(0).Constructed().ContextSpecific(), int64(0)) {
		return errors.New("malformed version")
	}
	if version < 0 || version > 2 {
		return fmt.Errorf("invalid version %d", version)
	}
	c.Version = int(version) + 1
	c.SerialNumber = new(big.Int)
	if !tbs.ReadASN1Integer(c.SerialNumber) {
		return errors.New("malformed serial number")
	}
	var tbsAlg sigalg.AlgorithmIdentifier
	if !sigalg.ReadAlgorithmIdentifier(&tbs, &tbsAlg) {
		return errors.New("malformed tbs signature algorithm")
	}
	if !tbsAlg.OID.Equal(c.SignatureAlgorithm.OID) || !bytes.Equal(tbsAlg.Parameters, c.SignatureAlgorithm.Parameters) {
		return errors.New("signature algorithm in tbsCertificate differs from the outer one")
	}
	var issuer, subject cryptobyte.String
	if !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return errors.New("malformed issuer")
	}
	c.RawIssuer = issuer
	var validity cryptobyte.String
	if !tbs.ReadASN1(&validity, cbasn1.SEQUENCE) {
		return errors.New("malformed validity")
	}
	var err error
	if c.NotBefore, err = asn1time.Read(&validity); err != nil {
		return fmt.Errorf("notBefore: %w", err)
	}
	if c.NotAfter, err = asn1time.Read(&validity); err != nil {
		return fmt.Errorf("notAfter: %w", err)
	}
	if !validity.Empty() {
		return errors.New("trailing data in validity")
	}
	if !tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) {
		return errors.New("malformed subject")
	}
	c.RawSubject = subject
	if c.Issuer, err = ParseName(c.RawIssuer); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if c.Subject, err = ParseName(c.RawSubject); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	var spki cryptobyte.String
	if !tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return errors.New("malformed subjectPublicKeyInfo")
	}
	c.RawSubjectPublicKeyInfo = spki
	if info, err := sigalg.ParsePublicKeyInfo(spki); err != nil {
		if !errors.Is(err, sigalg.ErrUnsupported) {
			return fmt.Errorf("public key: %w", err)
		}
		c.PublicKeyError = err
		ai, _ := sigalg.ParseAlgorithmIdentifier(firstElementOfSeq(spki))
		c.PublicKeyAlgorithm = ai
	} else {
		c.PublicKey = info.Key
		c.PublicKeyAlgorithm = info.Algorithm
	}
	// issuerUniqueID [1] and subjectUniqueID [2] are skipped.
	for _, tag := range []cbasn1.Tag{cbasn1.Tag(1).ContextSpecific(), cbasn1.Tag(2).ContextSpecific()} {
		if !tbs.SkipOptionalASN1(tag) {
			return errors.New("malformed unique identifier")
		}
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(3).Constructed().ContextSpecific()) {
		return errors.New("malformed extensions")
	}
	if !tbs.Empty() {
		return errors.New("trailing data in tbsCertificate")
	}
	if hasExts {
		if c.Version != 3 {
			return errors.New("extensions in a certificate before version 3")
		}
		if err := c.parseExtensions(exts); err != nil {
			return err
		}
	}
	return nil
}

func firstElementOfSeq(der []byte) []byte {
	s := cryptobyte.String(der)
	var inner, first cryptobyte.String
	if s.ReadASN1(&inner, cbasn1.SEQUENCE) && inner.ReadASN1Element(&first, cbasn1.SEQUENCE) {
		return first
	}
	return nil
}

// ParseName decodes a DER Name. Values crypto/x509 cannot represent keep
// their attribute type with a hex value, so a name never makes a
// certificate unreadable.
func ParseName(der []byte) (pkix.Name, error) {
	var rdn pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdn)
	if err != nil {
		return pkix.Name{}, fmt.Errorf("malformed name: %w", err)
	}
	if len(rest) != 0 {
		return pkix.Name{}, errors.New("trailing data after name")
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n, nil
}

// X509 returns the certificate as parsed by crypto/x509, or its error when
// crypto/x509 refuses it (brainpool keys, some RSASSA-PSS parameters). The
// result is computed once.
func (c *Certificate) X509() (*x509.Certificate, error) {
	c.x509Once.Do(func() {
		c.x509Cert, c.x509Err = x509.ParseCertificate(c.Raw)
	})
	return c.x509Cert, c.x509Err
}

// SignatureAlgorithmParsed interprets the certificate's signature algorithm.
func (c *Certificate) SignatureAlgorithmParsed() (sigalg.Algorithm, error) {
	return sigalg.ParseSignatureAlgorithm(c.SignatureAlgorithm)
}

// CheckSignature verifies the certificate's signature with an issuer's public key.
func (c *Certificate) CheckSignature(issuerKey crypto.PublicKey) error {
	alg, err := c.SignatureAlgorithmParsed()
	if err != nil {
		return fmt.Errorf("cert: signature algorithm: %w", err)
	}
	if alg.Hash == 0 && alg.Scheme != sigalg.SchemeEd25519 {
		return fmt.Errorf("cert: signature algorithm %s names no digest", c.SignatureAlgorithm.OID)
	}
	if err := alg.Verify(issuerKey, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("cert: signature of %q: %w", c.Subject.String(), err)
	}
	return nil
}

// CheckSignatureFrom verifies that parent's key signed c. It checks only
// the signature and the name chaining, not CA flags or validity: that is
// path validation's job.
func (c *Certificate) CheckSignatureFrom(parent *Certificate) error {
	if parent.PublicKey == nil {
		return fmt.Errorf("cert: issuer key: %w", parent.PublicKeyError)
	}
	if !NameEqual(c.RawIssuer, parent.RawSubject) {
		return errors.New("cert: issuer name does not match the parent's subject")
	}
	return c.CheckSignature(parent.PublicKey)
}

// ValidAt reports whether t lies within the validity period (inclusive).
func (c *Certificate) ValidAt(t time.Time) bool {
	return !t.Before(c.NotBefore) && !t.After(c.NotAfter)
}

// Equal reports whether both certificates have identical encodings.
func (c *Certificate) Equal(o *Certificate) bool {
	return c != nil && o != nil && bytes.Equal(c.Raw, o.Raw)
}

// Digest returns the hash of the certificate's encoding, as used by
// ESSCertID(v2) and certificate references.
func (c *Certificate) Digest(h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("cert: hash %v not available", h)
	}
	d := h.New()
	d.Write(c.Raw)
	return d.Sum(nil), nil
}

// Fingerprint is the SHA-256 digest of the encoding, for logs and maps.
func (c *Certificate) Fingerprint() [32]byte { return sha256.Sum256(c.Raw) }

// SelfIssued reports whether subject and issuer are equal.
func (c *Certificate) SelfIssued() bool { return NameEqual(c.RawSubject, c.RawIssuer) }

// HasExtKeyUsage reports whether the EKU extension lists oid.
func (c *Certificate) HasExtKeyUsage(oid asn1.ObjectIdentifier) bool {
	for _, e := range c.ExtKeyUsage {
		if e.Equal(oid) {
			return true
		}
	}
	return false
}

// Extension returns the extension with the given OID, if present.
func (c *Certificate) Extension(oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// IssuedBySerial reports whether the certificate has the given issuer
// (DER Name) and serial number: the CMS IssuerAndSerialNumber match.
func (c *Certificate) IssuedBySerial(rawIssuer []byte, serial *big.Int) bool {
	return serial != nil && c.SerialNumber.Cmp(serial) == 0 && NameEqual(c.RawIssuer, rawIssuer)
}

// String names the certificate for logs: subject and serial.
func (c *Certificate) String() string {
	return fmt.Sprintf("%s (serial %s)", c.Subject.String(), c.SerialNumber.Text(16))
}
