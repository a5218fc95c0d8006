package trust

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// MaxCRLSize caps a CRL. Large CA CRLs reach a few MB.
const MaxCRLSize = 16 << 20

// maxCRLEntries bounds the revoked-certificate list.
const maxCRLEntries = 1_000_000

var (
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidCRLReason         = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate    = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDP         = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidCertificateIssuer = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidExpiredCertsOnCRL = asn1.ObjectIdentifier{2, 5, 29, 60}
)

// CRL is a parsed RFC 5280 certificate revocation list.
type CRL struct {
	Raw                []byte
	RawTBS             []byte
	RawIssuer          []byte
	SignatureAlgorithm sigalg.AlgorithmIdentifier
	Signature          []byte
	ThisUpdate         time.Time
	NextUpdate         time.Time // zero if absent
	Number             *big.Int
	// ExpiredCertsOnCRL is set when the CRL keeps entries of expired
	// certificates from that date on (X.509 expiredCertsOnCRL).
	ExpiredCertsOnCRL time.Time
	Entries           []CRLEntry
	// OnlyUserCerts / OnlyCACerts come from the issuingDistributionPoint.
	OnlyUserCerts, OnlyCACerts bool
	// Unsupported is set for CRL features we cannot apply safely (delta
	// CRLs, indirect CRLs, partitioned by reasons, unknown critical
	// extensions); such a CRL is never used as evidence.
	Unsupported string
	index       map[string]int
}

// CRLEntry is one revoked certificate.
type CRLEntry struct {
	Serial         *big.Int
	RevocationTime time.Time
	Reason         int // CRLReason; -1 when absent
	InvalidityDate time.Time
}

// ParseCRL parses a DER or PEM ("X509 CRL") CRL.
func ParseCRL(data []byte) (*CRL, error) {
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("trust: CRL of %d bytes exceeds %d", len(data), MaxCRLSize)
	}
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		b, _ := pem.Decode(t)
		if b == nil || b.Type != "X509 CRL" {
			return nil, errors.New("trust: parse CRL: PEM block is not an X509 CRL")
		}
		data = b.Bytes
	}
	c, err := parseCRL(bytes.Clone(data))
	if err != nil {
		return nil, fmt.Errorf("trust: parse CRL: %w", err)
	}
	return c, nil
}

func parseCRL(der []byte) (*CRL, error) {
	c := &CRL{Raw: der, index: map[string]int{}}
	in := cryptobyte.String(der)
	var seq, tbs cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("malformed CertificateList")
	}
	if !seq.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed tbsCertList")
	}
	c.RawTBS = tbs
	if !sigalg.ReadAlgorithmIdentifier(&seq, &c.SignatureAlgorithm) {
		return nil, errors.New("malformed signatureAlgorithm")
	}
	if !seq.ReadASN1BitStringAsBytes(&c.Signature) || !seq.Empty() {
		return nil, errors.New("malformed signatureValue")
	}
	if !tbs.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed tbsCertList")
	}
	if tbs.PeekASN1Tag(cbasn1.INTEGER) {
		var v int
		if !tbs.ReadASN1Integer(&v) || v != 1 {
			return nil, errors.New("unsupported CRL version")
		}
	}
	var inner sigalg.AlgorithmIdentifier
	if !sigalg.ReadAlgorithmIdentifier(&tbs, &inner) {
		return nil, errors.New("malformed tbsCertList signature")
	}
	if !inner.OID.Equal(c.SignatureAlgorithm.OID) || !bytes.Equal(inner.Parameters, c.SignatureAlgorithm.Parameters) {
		return nil, errors.New("inner and outer signature algorithms differ")
	}
	var issuer cryptobyte.String
	if !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed issuer")
	}
	c.RawIssuer = issuer
	var err error
	if c.ThisUpdate, err = asn1time.Read(&tbs); err != nil {
		return nil, fmt.Errorf("thisUpdate: %w", err)
	}
	if tbs.PeekASN1Tag(cbasn1.UTCTime) || tbs.PeekASN1Tag(cbasn1.GeneralizedTime) {
		if c.NextUpdate, err = asn1time.Read(&tbs); err != nil {
			return nil, fmt.Errorf("nextUpdate: %w", err)
		}
	}
	if tbs.PeekASN1Tag(cbasn1.SEQUENCE) {
		var revoked cryptobyte.String
		tbs.ReadASN1(&revoked, cbasn1.SEQUENCE)
		if err := c.readEntries(revoked); err != nil {
			return nil, err
		}
	}
	if tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var exts cryptobyte.String
		if !tbs.ReadASN1(&exts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !exts.ReadASN1(&exts, cbasn1.SEQUENCE) {
			return nil, errors.New("malformed crlExtensions")
		}
		if err := c.readExtensions(exts); err != nil {
			return nil, err
		}
	}
	if !tbs.Empty() {
		return nil, errors.New("trailing data in tbsCertList")
	}
	return c, nil
}

func (c *CRL) readEntries(revoked cryptobyte.String) error {
	for !revoked.Empty() {
		if len(c.Entries) >= maxCRLEntries {
			return fmt.Errorf("more than %d entries", maxCRLEntries)
		}
		var e cryptobyte.String
		ent := CRLEntry{Serial: new(big.Int), Reason: -1}
		if !revoked.ReadASN1(&e, cbasn1.SEQUENCE) || !e.ReadASN1Integer(ent.Serial) {
			return fmt.Errorf("malformed revoked entry %d", len(c.Entries)+1)
		}
		var err error
		if ent.RevocationTime, err = asn1time.Read(&e); err != nil {
			return fmt.Errorf("entry %d revocationDate: %w", len(c.Entries)+1, err)
		}
		if !e.Empty() {
			var exts cryptobyte.String
			if !e.ReadASN1(&exts, cbasn1.SEQUENCE) || !e.Empty() {
				return fmt.Errorf("malformed entry %d extensions", len(c.Entries)+1)
			}
			if err := c.readEntryExtensions(exts, &ent); err != nil {
				return fmt.Errorf("entry %d: %w", len(c.Entries)+1, err)
			}
		}
		key := ent.Serial.String()
		if _, dup := c.index[key]; !dup {
			c.index[key] = len(c.Entries)
		}
		c.Entries = append(c.Entries, ent)
	}
	return nil
}

type extension struct {
	id       asn1.ObjectIdentifier
	critical bool
	value    cryptobyte.String
}

func readExtension(exts *cryptobyte.String) (extension, bool) {
	var e extension
	var ext cryptobyte.String
	if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.id) {
		return e, false
	}
	if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&e.critical) {
		return e, false
	}
	if !ext.ReadASN1(&e.value, cbasn1.OCTET_STRING) || !ext.Empty() {
		return e, false
	}
	return e, true
}

func (c *CRL) readEntryExtensions(exts cryptobyte.String, ent *CRLEntry) error {
	for !exts.Empty() {
		e, ok := readExtension(&exts)
		if !ok {
			return errors.New("malformed entry extension")
		}
		switch {
		case e.id.Equal(oidCRLReason):
			if !e.value.ReadASN1Enum(&ent.Reason) {
				return errors.New("malformed reasonCode")
			}
		case e.id.Equal(oidInvalidityDate):
			var err error
			if ent.InvalidityDate, err = asn1time.ReadGeneralized(&e.value); err != nil {
				return fmt.Errorf("invalidityDate: %w", err)
			}
		case e.id.Equal(oidCertificateIssuer):
			c.Unsupported = "indirect CRL (certificateIssuer entry extension)"
		default:
			if e.critical {
				c.Unsupported = "unknown critical entry extension " + e.id.String()
			}
		}
	}
	return nil
}

func (c *CRL) readExtensions(exts cryptobyte.String) error {
	for !exts.Empty() {
		e, ok := readExtension(&exts)
		if !ok {
			return errors.New("malformed CRL extension")
		}
		switch {
		case e.id.Equal(oidCRLNumber):
			c.Number = new(big.Int)
			if !e.value.ReadASN1Integer(c.Number) {
				return errors.New("malformed cRLNumber")
			}
		case e.id.Equal(oidDeltaCRLIndicator):
			c.Unsupported = "delta CRL"
		case e.id.Equal(oidExpiredCertsOnCRL):
			var err error
			if c.ExpiredCertsOnCRL, err = asn1time.ReadGeneralized(&e.value); err != nil {
				return fmt.Errorf("expiredCertsOnCRL: %w", err)
			}
		case e.id.Equal(oidIssuingDP):
			if err := c.readIDP(e.value); err != nil {
				return err
			}
		default:
			if e.critical {
				c.Unsupported = "unknown critical CRL extension " + e.id.String()
			}
		}
	}
	return nil
}

// readIDP interprets the issuingDistributionPoint flags; the distribution
// point name itself is not compared (we do not fetch by URL here).
func (c *CRL) readIDP(v cryptobyte.String) error {
	var idp cryptobyte.String
	if !v.ReadASN1(&idp, cbasn1.SEQUENCE) {
		return errors.New("malformed issuingDistributionPoint")
	}
	idp.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific())
	flag := func(tag int) (bool, bool) {
		var present bool
		var val cryptobyte.String
		if !idp.ReadOptionalASN1(&val, &present, cbasn1.Tag(tag).ContextSpecific()) {
			return false, false
		}
		return present && len(val) == 1 && val[0] != 0, true
	}
	var ok bool
	if c.OnlyUserCerts, ok = flag(1); !ok {
		return errors.New("malformed onlyContainsUserCerts")
	}
	if c.OnlyCACerts, ok = flag(2); !ok {
		return errors.New("malformed onlyContainsCACerts")
	}
	if idp.PeekASN1Tag(cbasn1.Tag(3).ContextSpecific()) {
		c.Unsupported = "CRL partitioned by reasons"
		return nil
	}
	if indirect, ok := flag(4); !ok || indirect {
		c.Unsupported = "indirect CRL"
	}
	return nil
}

// CheckSignatureFrom verifies the CRL's signature with the issuer's key and
// that the issuer names match.
func (c *CRL) CheckSignatureFrom(issuer *cert.Certificate) error {
	if !cert.NameEqual(c.RawIssuer, issuer.RawSubject) {
		return errors.New("trust: CRL issuer name does not match the certificate subject")
	}
	if issuer.HasKeyUsage && issuer.KeyUsage&crlSignBit == 0 {
		return errors.New("trust: CRL issuer certificate lacks the cRLSign key usage")
	}
	alg, err := sigalg.ParseSignatureAlgorithm(c.SignatureAlgorithm)
	if err != nil {
		return fmt.Errorf("trust: CRL signature algorithm: %w", err)
	}
	if issuer.PublicKey == nil {
		return fmt.Errorf("trust: CRL issuer key: %v", issuer.PublicKeyError)
	}
	if err := alg.Verify(issuer.PublicKey, c.RawTBS, c.Signature); err != nil {
		return fmt.Errorf("trust: CRL signature: %w", err)
	}
	return nil
}

// Lookup returns the entry for serial.
func (c *CRL) Lookup(serial *big.Int) (CRLEntry, bool) {
	i, ok := c.index[serial.String()]
	if !ok {
		return CRLEntry{}, false
	}
	return c.Entries[i], true
}

const crlSignBit = x509.KeyUsageCRLSign
