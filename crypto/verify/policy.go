package verify

import (
	"fmt"

	"github.com/poststelle/poststelle/crypto/report"
)

// Freshness says how current the revocation data of a certificate must be.
type Freshness string

// Revocation freshness rules.
const (
	// FreshnessIgnore accepts any revocation data that is otherwise valid,
	// however old: DSS's default policy (RevocationFreshness IGNORE), and
	// ours. An embedded CRL past its nextUpdate still says the certificate
	// was not revoked when the CRL was issued.
	FreshnessIgnore Freshness = "ignore"
	// FreshnessNextUpdate wants good evidence issued at or after the proof
	// of existence of the signature (or its claimed signing time), or current
	// at the validation time (thisUpdate ≤ validation time ≤ nextUpdate);
	// otherwise the result is INDETERMINATE/TRY_LATER.
	FreshnessNextUpdate Freshness = "next-update"
)

// DefaultPolicyName names DefaultPolicy in reports.
const DefaultPolicyName = "poststelle default (DSS 6.4 default validation policy)"

// CustomPolicyName names a policy that differs from the default and was
// given no name of its own.
const CustomPolicyName = "custom"

// Policy is the validation policy: the choices EN 319 102-1 leaves to the
// verifier. Every report names the policy it was made under. The zero
// value means DefaultPolicy.
type Policy struct {
	// Name identifies the policy in reports; empty: DefaultPolicyName when
	// every setting is the default's, else CustomPolicyName.
	Name string `yaml:"name"`
	// RevocationFreshness is FreshnessIgnore (default) or FreshnessNextUpdate.
	RevocationFreshness Freshness `yaml:"revocation_freshness"`
}

// DefaultPolicy is DSS's default validation policy as far as this verifier
// implements its constraints; docs/verification.md argues the choice.
func DefaultPolicy() Policy {
	return Policy{Name: DefaultPolicyName, RevocationFreshness: FreshnessIgnore}
}

// Resolve fills unset settings from DefaultPolicy and checks the values; a
// policy that cannot be applied is a configuration error.
func (p Policy) Resolve() (Policy, error) {
	def := DefaultPolicy()
	switch p.RevocationFreshness {
	case "":
		p.RevocationFreshness = def.RevocationFreshness
	case FreshnessIgnore, FreshnessNextUpdate:
	default:
		return Policy{}, fmt.Errorf("verify: policy: revocation freshness %q is neither %q nor %q", p.RevocationFreshness, FreshnessIgnore, FreshnessNextUpdate)
	}
	if p.Name == "" {
		p.Name = def.Name
		if p.RevocationFreshness != def.RevocationFreshness {
			p.Name = CustomPolicyName
		}
	}
	return p, nil
}

// Report describes p for a report (p as Resolve returned it).
func (p Policy) Report() *report.Policy {
	return &report.Policy{Name: p.Name, Constraints: []report.PolicyConstraint{
		{Name: "revocationFreshness", Value: string(p.RevocationFreshness)},
	}}
}
