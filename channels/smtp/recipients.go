package smtp

import (
	"errors"
	"fmt"
	"strings"
)

// recipientPolicy decides which RCPT TO addresses the receiver accepts.
// Addresses compare case-insensitively; RFC 5321 lets the local part be
// case-sensitive, but no authority runs mailboxes that differ only in case.
type recipientPolicy struct {
	all       bool
	domains   map[string]bool
	addresses map[string]bool
}

func newRecipientPolicy(cfg Config) (recipientPolicy, error) {
	p := recipientPolicy{all: cfg.AcceptAll, domains: map[string]bool{}, addresses: map[string]bool{}}
	for i, d := range cfg.AcceptDomains {
		d = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(d, "@")))
		if d == "" || strings.ContainsAny(d, "@ \t") {
			return p, fmt.Errorf("smtp: accept_domains[%d]: %q is not a domain", i, cfg.AcceptDomains[i])
		}
		p.domains[d] = true
	}
	for i, a := range cfg.AcceptAddresses {
		n, ok := normalizeAddress(a)
		if !ok {
			return p, fmt.Errorf("smtp: accept_addresses[%d]: %q is not an address", i, a)
		}
		p.addresses[n] = true
	}
	if !p.all && len(p.domains) == 0 && len(p.addresses) == 0 {
		return p, errors.New("smtp: no recipient would be accepted: set accept_all, accept_domains or accept_addresses")
	}
	return p, nil
}

func (p recipientPolicy) accepts(addr string) bool {
	if p.all || p.addresses[addr] {
		return true
	}
	_, domain, _ := strings.Cut(addr, "@")
	return p.domains[domain]
}

// normalizeAddress lower-cases an envelope address and checks its shape:
// one @ with something on both sides, no spaces or angle brackets.
func normalizeAddress(a string) (string, bool) {
	a = strings.ToLower(strings.TrimSpace(a))
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(a, " \t<>\r\n") || strings.Contains(domain, "@") || len(a) > 320 {
		return "", false
	}
	return a, true
}
