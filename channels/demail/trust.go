package demail

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
)

// Provider is one De-Mail provider (DMDA) the operator trusts, as
// configured: never looked up in DNS, because TR 01201 Teil 3.4 clause
// 3.1.21 forbids taking the key from DNS.
type Provider struct {
	// Name is the provider's FQDN as it writes it in
	// X-de-mail-originator-provider.
	Name string
	// Anchors are the CA certificates the provider's signature
	// certificates chain to.
	Anchors []*cert.Certificate
	// Intermediates may complete the chain; the message carries only the
	// signature certificate itself.
	Intermediates []*cert.Certificate
	// Pinned, when not empty, restricts the signature certificate to these
	// SHA-256 fingerprints of the DER: a CA that serves several providers
	// then cannot vouch for one provider's messages with another's key.
	Pinned [][32]byte
	// CRLs are the provider CA's revocation lists as the operator fetched
	// them; the message carries no revocation data of its own.
	CRLs []*trust.CRL
}

// Trust is the set of configured providers. It is read-only once built.
type Trust struct {
	providers map[string]*providerTrust
	// qualified holds the trusted lists (ETSI TS 119 612) that decide
	// whether a provider's certificate is qualified; nil when none is
	// configured, and then no message satisfies the written form.
	qualified *trust.Store
}

type providerTrust struct {
	p     Provider
	store *trust.Store
}

// NewTrust builds the trust from the configured providers.
func NewTrust(providers []Provider) (*Trust, error) {
	t := &Trust{providers: map[string]*providerTrust{}}
	for _, p := range providers {
		name := strings.ToLower(strings.TrimSuffix(p.Name, "."))
		if !validFQDN(name) {
			return nil, fmt.Errorf("demail provider %q: name is not a fully qualified domain name", p.Name)
		}
		if len(p.Anchors) == 0 {
			return nil, fmt.Errorf("demail provider %s: no CA certificate configured", name)
		}
		if _, dup := t.providers[name]; dup {
			return nil, fmt.Errorf("demail provider %s configured twice", name)
		}
		s := trust.NewStore()
		for _, a := range p.Anchors {
			s.AddCertificate(a, "demail provider "+name)
		}
		s.AddIntermediates(p.Intermediates...)
		t.providers[name] = &providerTrust{p: p, store: s}
	}
	return t, nil
}

// WithQualification returns a copy of t that decides the qualified status
// of provider certificates with store, built from trusted lists. Only the
// trusted list says whether a certificate is qualified (eIDAS Art. 22);
// the configured provider CA says only whose it is.
func (t *Trust) WithQualification(store *trust.Store) *Trust {
	c := *t
	c.qualified = store
	return &c
}

// provider returns the configured provider of that FQDN, nil if none.
func (t *Trust) provider(name string) *providerTrust {
	if t == nil {
		return nil
	}
	return t.providers[name]
}

func (pt *providerTrust) pinned(c *cert.Certificate) bool {
	if len(pt.p.Pinned) == 0 {
		return true
	}
	fp := sha256.Sum256(c.Raw)
	for _, p := range pt.p.Pinned {
		if p == fp {
			return true
		}
	}
	return false
}
