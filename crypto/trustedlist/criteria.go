package trustedlist

import (
	"crypto/x509"
	"encoding/asn1"
	"slices"

	"github.com/poststelle/poststelle/crypto/cert"
)

var keyUsageBits = map[string]x509.KeyUsage{
	"digitalSignature":  x509.KeyUsageDigitalSignature,
	"nonRepudiation":    x509.KeyUsageContentCommitment,
	"contentCommitment": x509.KeyUsageContentCommitment,
	"keyEncipherment":   x509.KeyUsageKeyEncipherment,
	"dataEncipherment":  x509.KeyUsageDataEncipherment,
	"keyAgreement":      x509.KeyUsageKeyAgreement,
	"keyCertSign":       x509.KeyUsageCertSign,
	"crlSign":           x509.KeyUsageCRLSign,
	"encipherOnly":      x509.KeyUsageEncipherOnly,
	"decipherOnly":      x509.KeyUsageDecipherOnly,
}

// Match reports whether c meets the criteria list. A list with an
// unsupported or no criterion matches nothing: a qualifier must never be
// granted on a criterion we could not check.
func (cr *Criteria) Match(c *cert.Certificate) bool {
	if len(cr.Unsupported) > 0 {
		return false
	}
	var results []bool
	for _, ku := range cr.KeyUsage {
		results = append(results, matchKeyUsage(ku, c))
	}
	for _, set := range cr.PolicySets {
		results = append(results, hasAllPolicies(c, set))
	}
	for _, set := range cr.ExtendedKeyUsage {
		results = append(results, hasAllEKUs(c, set))
	}
	for i := range cr.Nested {
		results = append(results, cr.Nested[i].Match(c))
	}
	if len(results) == 0 {
		return false
	}
	switch cr.Assert {
	case "all":
		return !slices.Contains(results, false)
	case "atLeastOne":
		return slices.Contains(results, true)
	case "none":
		return !slices.Contains(results, true)
	}
	return false
}

func matchKeyUsage(bits map[string]bool, c *cert.Certificate) bool {
	if len(bits) == 0 {
		return false
	}
	for name, want := range bits {
		bit, ok := keyUsageBits[name]
		if !ok {
			return false
		}
		have := c.HasKeyUsage && c.KeyUsage&bit != 0
		if have != want {
			return false
		}
	}
	return true
}

func hasAllPolicies(c *cert.Certificate, oids []string) bool {
	if len(oids) == 0 {
		return false
	}
	for _, o := range oids {
		if !slices.ContainsFunc(c.Policies, func(p cert.Policy) bool { return p.OID.String() == o }) {
			return false
		}
	}
	return true
}

func hasAllEKUs(c *cert.Certificate, oids []string) bool {
	if len(oids) == 0 {
		return false
	}
	for _, o := range oids {
		if !slices.ContainsFunc(c.ExtKeyUsage, func(e asn1.ObjectIdentifier) bool { return e.String() == o }) {
			return false
		}
	}
	return true
}
