package cert

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func (c *Certificate) parseExtensions(exts cryptobyte.String) error {
	if !exts.ReadASN1(&exts, cbasn1.SEQUENCE) {
		return errors.New("malformed extensions")
	}
	seen := map[string]bool{}
	for !exts.Empty() {
		if len(c.Extensions) >= maxExtensions {
			return fmt.Errorf("more than %d extensions", maxExtensions)
		}
		var ext cryptobyte.String
		var e pkix.Extension
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.Id) ||
			!readOptionalBool(&ext, &e.Critical) {
			return errors.New("malformed extension")
		}
		var val cryptobyte.String
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) || !ext.Empty() {
			return errors.New("malformed extension value")
		}
		e.Value = val
		if seen[e.Id.String()] {
			return fmt.Errorf("duplicate extension %s", e.Id)
		}
		seen[e.Id.String()] = true
		c.Extensions = append(c.Extensions, e)
		handled, err := c.applyExtension(e)
		if err != nil {
			if e.Critical {
				return fmt.Errorf("critical extension %s: %w", e.Id, err)
			}
			// A malformed non-critical extension (seen: non-minimal
			// lengths in certificate policies of an Italian QTSP) is
			// recorded, not fatal: it may be ignored by definition.
			c.ExtensionErrors = append(c.ExtensionErrors, fmt.Sprintf("extension %s: %v", e.Id, err))
		}
		if !handled && e.Critical {
			c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, e.Id)
		}
	}
	return nil
}

// applyExtension interprets one extension; handled is false for extensions
// this package only keeps raw.
func (c *Certificate) applyExtension(e pkix.Extension) (handled bool, err error) {
	v := cryptobyte.String(e.Value)
	switch {
	case e.Id.Equal(OIDExtSubjectKeyID):
		var ski cryptobyte.String
		if !v.ReadASN1(&ski, cbasn1.OCTET_STRING) || !v.Empty() {
			return true, errors.New("malformed subject key identifier")
		}
		c.SubjectKeyID = ski
	case e.Id.Equal(OIDExtAuthorityKeyID):
		return true, c.parseAKI(v)
	case e.Id.Equal(OIDExtKeyUsage):
		var bits asn1.BitString
		if !v.ReadASN1BitString(&bits) || !v.Empty() {
			return true, errors.New("malformed key usage")
		}
		c.HasKeyUsage = true
		for i := 0; i < 9; i++ {
			if bits.At(i) != 0 {
				c.KeyUsage |= x509.KeyUsage(1 << uint(i))
			}
		}
	case e.Id.Equal(OIDExtExtKeyUsage):
		var seq cryptobyte.String
		if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() {
			return true, errors.New("malformed extended key usage")
		}
		for !seq.Empty() {
			var oid asn1.ObjectIdentifier
			if !seq.ReadASN1ObjectIdentifier(&oid) {
				return true, errors.New("malformed extended key usage")
			}
			c.ExtKeyUsage = append(c.ExtKeyUsage, oid)
		}
		c.ExtKeyUsageCritical = e.Critical
	case e.Id.Equal(OIDExtBasicConstraints):
		var seq cryptobyte.String
		if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() ||
			!readOptionalBool(&seq, &c.IsCA) {
			return true, errors.New("malformed basic constraints")
		}
		if seq.PeekASN1Tag(cbasn1.INTEGER) {
			var n int64
			if !seq.ReadASN1Int64WithTag(&n, cbasn1.INTEGER) || n < 0 || n > 1<<20 {
				return true, errors.New("malformed path length constraint")
			}
			c.MaxPathLen = int(n)
		}
		if !seq.Empty() {
			return true, errors.New("trailing data in basic constraints")
		}
		c.BasicConstraintsValid = true
	case e.Id.Equal(OIDExtCertPolicies):
		return true, c.parsePolicies(v)
	case e.Id.Equal(OIDExtCRLDistribution):
		return true, c.parseCRLDP(v)
	case e.Id.Equal(OIDExtAuthorityInfo):
		return true, c.parseAIA(v)
	case e.Id.Equal(OIDExtQCStatements):
		c.QCStatementsRaw = e.Value
		qc, err := ParseQCStatements(e.Value)
		if err != nil {
			return true, err
		}
		c.QC = qc
	default:
		return false, nil
	}
	return true, nil
}

func (c *Certificate) parseAKI(v cryptobyte.String) error {
	var seq cryptobyte.String
	if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() {
		return errors.New("malformed authority key identifier")
	}
	var kid, issuer, serial cryptobyte.String
	var hasKid, hasIssuer, hasSerial bool
	if !seq.ReadOptionalASN1(&kid, &hasKid, cbasn1.Tag(0).ContextSpecific()) ||
		!seq.ReadOptionalASN1(&issuer, &hasIssuer, cbasn1.Tag(1).ContextSpecific().Constructed()) ||
		!seq.ReadOptionalASN1(&serial, &hasSerial, cbasn1.Tag(2).ContextSpecific()) || !seq.Empty() {
		return errors.New("malformed authority key identifier")
	}
	if hasKid {
		c.AuthorityKeyID = kid
	}
	if hasIssuer {
		c.AuthorityCertIssuer = issuer
	}
	if hasSerial {
		if len(serial) == 0 || len(serial) > 64 {
			return errors.New("malformed authority certificate serial")
		}
		c.AuthorityCertSerial = new(big.Int).SetBytes(serial)
	}
	return nil
}

func (c *Certificate) parsePolicies(v cryptobyte.String) error {
	var seq cryptobyte.String
	if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() {
		return errors.New("malformed certificate policies")
	}
	for !seq.Empty() {
		var pi cryptobyte.String
		var p Policy
		if !seq.ReadASN1(&pi, cbasn1.SEQUENCE) || !pi.ReadASN1ObjectIdentifier(&p.OID) {
			return errors.New("malformed policy information")
		}
		if !pi.Empty() {
			var q cryptobyte.String
			if !pi.ReadASN1Element(&q, cbasn1.SEQUENCE) || !pi.Empty() {
				return errors.New("malformed policy qualifiers")
			}
			p.Qualifiers = q
		}
		c.Policies = append(c.Policies, p)
	}
	return nil
}

// uriTag is GeneralName uniformResourceIdentifier [6] IA5String.
var uriTag = cbasn1.Tag(6).ContextSpecific()

func readURIs(names cryptobyte.String) ([]string, error) {
	var out []string
	for !names.Empty() {
		var tag cbasn1.Tag
		var val cryptobyte.String
		if !names.ReadAnyASN1(&val, &tag) {
			return nil, errors.New("malformed general name")
		}
		if tag == uriTag {
			out = append(out, string(val))
		}
	}
	return out, nil
}

func (c *Certificate) parseCRLDP(v cryptobyte.String) error {
	var seq cryptobyte.String
	if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() {
		return errors.New("malformed CRL distribution points")
	}
	for !seq.Empty() {
		var dp, dpName cryptobyte.String
		var has bool
		if !seq.ReadASN1(&dp, cbasn1.SEQUENCE) ||
			!dp.ReadOptionalASN1(&dpName, &has, cbasn1.Tag(0).ContextSpecific().Constructed()) {
			return errors.New("malformed distribution point")
		}
		if !has {
			continue
		}
		var full cryptobyte.String
		var hasFull bool
		if !dpName.ReadOptionalASN1(&full, &hasFull, cbasn1.Tag(0).ContextSpecific().Constructed()) {
			return errors.New("malformed distribution point name")
		}
		if hasFull {
			uris, err := readURIs(full)
			if err != nil {
				return err
			}
			c.CRLDistributionPoints = append(c.CRLDistributionPoints, uris...)
		}
	}
	return nil
}

func (c *Certificate) parseAIA(v cryptobyte.String) error {
	var seq cryptobyte.String
	if !v.ReadASN1(&seq, cbasn1.SEQUENCE) || !v.Empty() {
		return errors.New("malformed authority information access")
	}
	for !seq.Empty() {
		var ad cryptobyte.String
		var method asn1.ObjectIdentifier
		if !seq.ReadASN1(&ad, cbasn1.SEQUENCE) || !ad.ReadASN1ObjectIdentifier(&method) {
			return errors.New("malformed access description")
		}
		uris, err := readURIs(ad)
		if err != nil {
			return err
		}
		switch {
		case method.Equal(OIDAccessOCSP):
			c.OCSPServers = append(c.OCSPServers, uris...)
		case method.Equal(OIDAccessCAIssuers):
			c.IssuingCertificateURL = append(c.IssuingCertificateURL, uris...)
		}
	}
	return nil
}

// NameEqual compares two DER Names: byte equality, else the comparison of
// RFC 5280 section 7.1 simplified to case-insensitive matching of string
// values with collapsed white space. CAs re-encode names (PrintableString
// vs UTF8String) between a certificate's issuer and their own subject.
func NameEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ra, rb pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a, &ra); err != nil || len(rest) != 0 {
		return false
	}
	if rest, err := asn1.Unmarshal(b, &rb); err != nil || len(rest) != 0 {
		return false
	}
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if len(ra[i]) != len(rb[i]) {
			return false
		}
		for _, x := range ra[i] {
			found := false
			for _, y := range rb[i] {
				if x.Type.Equal(y.Type) && valueEqual(x.Value, y.Value) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

func valueEqual(a, b any) bool {
	sa, okA := a.(string)
	sb, okB := b.(string)
	if okA && okB {
		return strings.EqualFold(strings.Join(strings.Fields(sa), " "), strings.Join(strings.Fields(sb), " "))
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// readOptionalBool reads a BOOLEAN DEFAULT FALSE. cryptobyte's
// ReadOptionalASN1Boolean cannot be used with the universal BOOLEAN tag.
func readOptionalBool(s *cryptobyte.String, out *bool) bool {
	*out = false
	if !s.PeekASN1Tag(cbasn1.BOOLEAN) {
		return true
	}
	return s.ReadASN1Boolean(out)
}
