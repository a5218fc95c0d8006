package ers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// Suitability is a catalogue entry: an algorithm is suitable until the end
// of Until; a zero Until means no end is foreseen by the catalogue (BSI
// TR-02102-1 writes "2031+": beyond its prognosis horizon).
type Suitability struct {
	Until  time.Time
	Source string
}

// KeyRule makes a TSA public key suitable when its size is at least MinBits.
type KeyRule struct {
	// Kind is "RSA", "ECDSA" or "Ed25519".
	Kind    string
	MinBits int
	Suitability
}

// Policy is the renewal policy, in the notions of BSI TR-03125 (TR-ESOR)
// Annex TR-ESOR-ERS and module TR-ESOR-M.3: a timestamp is renewed
// ("Erneuerung von Zeitstempeln") before the newest TSA certificate expires
// or its key stops being suitable; the hash tree is renewed
// ("Hashbaum-Erneuerung") before the chain's hash algorithm stops being
// suitable. Algorithms absent from the catalogue are treated as unsuitable:
// renewing once too often costs a timestamp, once too few the evidence.
type Policy struct {
	// CertificateMargin: renew the timestamp this long before the newest
	// TSA certificate's notAfter.
	CertificateMargin time.Duration
	// AlgorithmMargin: renew this long before an algorithm's end.
	AlgorithmMargin time.Duration
	Hashes          map[crypto.Hash]Suitability
	// Keys are checked in order; the first rule of the key's kind whose
	// MinBits the key reaches applies.
	Keys []KeyRule
}

// Sources of the default catalogue.
const (
	srcTR02102 = "BSI TR-02102-1 (2025-1), sections 3.5 and 4 (hash functions), table 1.2 (prognosis 2031+)"
	srcRSA     = "BSI TR-02102-1 (2025-1), section 5.4.1 (RSA): at least 3000 bits from 2024 on; 2000 bits until the end of 2023"
	srcECDSA   = "BSI TR-02102-1 (2025-1), section 5.4.3 (ECDSA): prime-order subgroup of at least 250 bits"
	srcEdDSA   = "SOG-IS Agreed Cryptographic Mechanisms v1.3 (2023), section 6 (EdDSA over Ed25519 agreed)"
)

// DefaultPolicy is the policy Poststelle runs with: renew timestamps 180
// days before the TSA certificate expires and a year before an algorithm's
// end. The catalogue is deliberately small and must be reviewed when BSI
// TR-02102-1 is (yearly); SHA-1, MD5, SHA-224 and RIPEMD-160 are absent and
// so count as unsuitable.
func DefaultPolicy() *Policy {
	open := func(src string) Suitability { return Suitability{Source: src} }
	return &Policy{
		CertificateMargin: 180 * 24 * time.Hour,
		AlgorithmMargin:   365 * 24 * time.Hour,
		Hashes: map[crypto.Hash]Suitability{
			crypto.SHA256:     open(srcTR02102),
			crypto.SHA384:     open(srcTR02102),
			crypto.SHA512:     open(srcTR02102),
			crypto.SHA512_256: open(srcTR02102),
			crypto.SHA3_256:   open(srcTR02102),
			crypto.SHA3_384:   open(srcTR02102),
			crypto.SHA3_512:   open(srcTR02102),
		},
		Keys: []KeyRule{
			{Kind: "RSA", MinBits: 3000, Suitability: open(srcRSA)},
			{Kind: "RSA", MinBits: 1900, Suitability: Suitability{Until: time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC), Source: srcRSA}},
			{Kind: "ECDSA", MinBits: 250, Suitability: open(srcECDSA)},
			{Kind: "Ed25519", MinBits: 0, Suitability: open(srcEdDSA)},
		},
	}
}

func (s Suitability) suitableAt(t time.Time, margin time.Duration) bool {
	return s.Until.IsZero() || t.Before(s.Until.Add(-margin))
}

// hashSuitable reports whether h is in the catalogue and suitable at t.
func (p *Policy) hashSuitable(h crypto.Hash, t time.Time) (bool, string) {
	s, ok := p.Hashes[h]
	if !ok {
		return false, "not in the algorithm catalogue"
	}
	if !s.suitableAt(t, 0) {
		return false, fmt.Sprintf("suitable only until %s (%s)", s.Until.Format(time.DateOnly), s.Source)
	}
	return true, ""
}

func keyKind(pub crypto.PublicKey) (string, int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ECDSA", k.Curve.Params().N.BitLen()
	case ed25519.PublicKey:
		return "Ed25519", 255
	}
	return fmt.Sprintf("%T", pub), 0
}

// keyRule finds the catalogue entry for a public key.
func (p *Policy) keyRule(pub crypto.PublicKey) (KeyRule, bool) {
	kind, bits := keyKind(pub)
	for _, r := range p.Keys {
		if r.Kind == kind && bits >= r.MinBits {
			return r, true
		}
	}
	return KeyRule{}, false
}

func (p *Policy) keySuitable(pub crypto.PublicKey, t time.Time) (bool, string) {
	kind, bits := keyKind(pub)
	r, ok := p.keyRule(pub)
	if !ok {
		return false, fmt.Sprintf("%s-%d not in the algorithm catalogue", kind, bits)
	}
	if !r.suitableAt(t, 0) {
		return false, fmt.Sprintf("%s-%d suitable only until %s (%s)", kind, bits, r.Until.Format(time.DateOnly), r.Source)
	}
	return true, ""
}

// Action is what a record needs.
type Action int

// Actions, from none to the most thorough; a hash-tree renewal includes a
// new timestamp.
const (
	NoRenewal Action = iota
	RenewTimestamp
	RenewHashTree
)

func (a Action) String() string {
	switch a {
	case RenewTimestamp:
		return "timestamp renewal"
	case RenewHashTree:
		return "hash-tree renewal"
	}
	return "none"
}

// Decision is the policy's verdict on a record.
type Decision struct {
	Action Action
	Reason string
	// Due is when the next renewal falls due if nothing changes in the
	// catalogue (zero when none is foreseen); for scheduling.
	Due time.Time
}

// Decide says what the record needs at now (TR-ESOR-M.3: the ArchiSafe
// module's periodic check of stored evidence records).
func (p *Policy) Decide(er *EvidenceRecord, now time.Time) Decision {
	last := er.Chains[len(er.Chains)-1]
	h := last.Hash()
	var due time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	hs, ok := p.Hashes[h]
	if !ok {
		return Decision{Action: RenewHashTree, Reason: fmt.Sprintf("hash algorithm %s is not in the catalogue", sigalg.HashName(h)), Due: now}
	}
	if !hs.suitableAt(now, p.AlgorithmMargin) {
		return Decision{Action: RenewHashTree, Reason: fmt.Sprintf("hash algorithm %s suitable until %s (%s)", sigalg.HashName(h), hs.Until.Format(time.DateOnly), hs.Source), Due: now}
	}
	if !hs.Until.IsZero() {
		earliest(hs.Until.Add(-p.AlgorithmMargin))
	}
	tok := last.Stamps[len(last.Stamps)-1].Token
	res := tok.Verify(tsp.VerifyOptions{})
	c := res.TSACertificate
	if c == nil {
		return Decision{Action: RenewTimestamp, Reason: "newest timestamp has no TSA certificate", Due: now}
	}
	renewAt := c.NotAfter.Add(-p.CertificateMargin)
	if !now.Before(renewAt) {
		return Decision{Action: RenewTimestamp, Reason: fmt.Sprintf("TSA certificate %q expires %s", c.Subject.String(), c.NotAfter.Format(time.DateOnly)), Due: now}
	}
	earliest(renewAt)
	kind, bits := keyKind(c.PublicKey)
	r, ok := p.keyRule(c.PublicKey)
	if !ok {
		return Decision{Action: RenewTimestamp, Reason: fmt.Sprintf("TSA key %s-%d is not in the catalogue", kind, bits), Due: now}
	}
	if !r.suitableAt(now, p.AlgorithmMargin) {
		return Decision{Action: RenewTimestamp, Reason: fmt.Sprintf("TSA key %s-%d suitable until %s (%s)", kind, bits, r.Until.Format(time.DateOnly), r.Source), Due: now}
	}
	if !r.Until.IsZero() {
		earliest(r.Until.Add(-p.AlgorithmMargin))
	}
	return Decision{Action: NoRenewal, Due: due}
}
