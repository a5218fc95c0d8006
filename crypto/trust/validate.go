package trust

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// Indications (ETSI EN 319 102-1) of one check or of a whole validation.
const (
	Passed        = "PASSED"
	Failed        = "FAILED"
	Indeterminate = "INDETERMINATE"
	Info          = "INFO" // recorded, no effect on the outcome
)

// Sub-indications (ETSI EN 319 102-1 clause 5.1.3) this package produces.
const (
	SubNoCertificateChainFound = "NO_CERTIFICATE_CHAIN_FOUND"
	SubOutOfBoundsNoPOE        = "OUT_OF_BOUNDS_NO_POE"
	SubOutOfBoundsNotRevoked   = "OUT_OF_BOUNDS_NOT_REVOKED"
	SubRevoked                 = "REVOKED"
	SubRevokedNoPOE            = "REVOKED_NO_POE"
	SubRevokedCANoPOE          = "REVOKED_CA_NO_POE"
	SubExpired                 = "EXPIRED"
	SubNotYetValid             = "NOT_YET_VALID"
	SubChainConstraintsFailure = "CHAIN_CONSTRAINTS_FAILURE"
	SubCryptoConstraints       = "CRYPTO_CONSTRAINTS_FAILURE"
	SubTryLater                = "TRY_LATER"
)

// maxChainLength bounds path building (leaf and anchor included).
const maxChainLength = 10

// maxPaths bounds how many candidate paths are validated.
const maxPaths = 8

// Check is one decision with its outcome.
type Check struct {
	Name string // e.g. "signature", "validity", "revocation", "qualifiedAtSigningTime"
	// Index is the position in the chain (0 = leaf), -1 for chain-wide checks.
	Index         int
	Subject       string
	Result        string // Passed, Failed, Indeterminate or Info
	SubIndication string
	Detail        string
}

// Input is what Validate works on: the intermediates, CRLs and OCSP
// responses embedded in the signature; only Online (or the store's source)
// fetches anything.
type Input struct {
	Leaf          *cert.Certificate
	Intermediates []*cert.Certificate
	CRLs          []*CRL
	OCSP          []*OCSPResponse
	// Time is the validation time. It is never taken from the signature.
	Time time.Time
	// POE is a trusted proof of existence of the signature (e.g. the
	// genTime of a verified signature timestamp); zero if none.
	POE time.Time
	// RevocationPOE is a trusted proof of existence of the embedded
	// revocation data (e.g. the genTime of a verified archive timestamp
	// covering it); zero if none. It lets evidence whose issuer has since
	// expired count.
	RevocationPOE time.Time
	// SigningTime is the best signature time for the qualification
	// decision; zero means Time.
	SigningTime time.Time
	// RevocationOptional records missing revocation data as Info instead of
	// INDETERMINATE/TRY_LATER (e.g. for a trusted-list signer).
	RevocationOptional bool
	// IgnoreRevocationFreshness accepts good revocation evidence that is not
	// fresh (see RevocationStatus.Fresh) as proof of non-revocation, as
	// DSS's default policy does (RevocationFreshness IGNORE). The zero value
	// demands freshness.
	IgnoreRevocationFreshness bool
	// RequireKeyUsage: the leaf must have at least one of these bits.
	RequireKeyUsage x509.KeyUsage
	// Online, when set, is asked for revocation data the signature lacks
	// (see ValidateContext); nil: nothing is fetched.
	Online RevocationSource
	ctx    context.Context
}

// Result is the outcome of Validate.
type Result struct {
	Indication    string
	SubIndication string
	// Chain runs from the leaf to the anchor certificate; nil when none was found.
	Chain      []*cert.Certificate
	Anchor     *Anchor
	Checks     []Check
	Revocation []RevocationStatus
	// Fetched lists the revocation data obtained online through Input.Online.
	Fetched []FetchedEvidence
	// Qualification is the eIDAS qualification of the leaf (never nil when
	// a chain was found).
	Qualification *Qualification
}

// Validate builds the paths from in.Leaf to the store's anchors and
// validates them at in.Time; the first valid path wins, else the first
// path's result is returned.
func (s *Store) Validate(in Input) *Result {
	if in.Leaf == nil || in.Time.IsZero() {
		return &Result{Indication: Indeterminate, SubIndication: SubNoCertificateChainFound,
			Checks: []Check{{Name: "input", Index: -1, Result: Indeterminate, SubIndication: SubNoCertificateChainFound, Detail: "no certificate or no validation time"}}}
	}
	paths, tried := s.buildPaths(in.Leaf, in.Intermediates)
	if len(paths) == 0 {
		return &Result{Indication: Indeterminate, SubIndication: SubNoCertificateChainFound,
			Checks: []Check{{Name: "chain", Index: 0, Subject: subject(in.Leaf), Result: Indeterminate,
				SubIndication: SubNoCertificateChainFound, Detail: tried}}}
	}
	var first *Result
	for _, p := range paths {
		r := s.validatePath(p, in)
		if r.Indication == Passed {
			return r
		}
		if first == nil {
			first = r
		}
	}
	return first
}

type pathBuilder struct {
	store *Store
	pool  []*cert.Certificate
	paths [][]*cert.Certificate
	sigOK map[[2][32]byte]error
	notes []string
}

func (s *Store) buildPaths(leaf *cert.Certificate, intermediates []*cert.Certificate) ([][]*cert.Certificate, string) {
	pool := append(append([]*cert.Certificate(nil), intermediates...), s.pool...)
	b := &pathBuilder{store: s, pool: pool, sigOK: map[[2][32]byte]error{}}
	b.extend([]*cert.Certificate{leaf})
	detail := "no path from " + subject(leaf) + " to a trust anchor"
	if len(b.notes) > 0 {
		detail += ": " + b.notes[0]
	}
	return b.paths, detail
}

func (b *pathBuilder) extend(path []*cert.Certificate) {
	if len(b.paths) >= maxPaths {
		return
	}
	last := path[len(path)-1]
	if a := b.store.anchorFor(last); a != nil {
		b.paths = append(b.paths, append([]*cert.Certificate(nil), path...))
		return
	}
	if len(path) >= maxChainLength {
		return
	}
	candidates := append(b.store.issuersOf(last), b.pool...)
	for _, c := range candidates {
		if !cert.NameEqual(c.RawSubject, last.RawIssuer) || inPath(path, c) {
			continue
		}
		if len(last.AuthorityKeyID) > 0 && len(c.SubjectKeyID) > 0 && string(last.AuthorityKeyID) != string(c.SubjectKeyID) {
			continue
		}
		if err := b.checkSig(last, c); err != nil {
			b.notes = append(b.notes, fmt.Sprintf("%s is not signed by %s: %v", subject(last), subject(c), err))
			continue
		}
		b.extend(append(path, c))
	}
}

func (b *pathBuilder) checkSig(child, parent *cert.Certificate) error {
	k := [2][32]byte{sha256.Sum256(child.Raw), sha256.Sum256(parent.Raw)}
	if err, ok := b.sigOK[k]; ok {
		return err
	}
	err := child.CheckSignatureFrom(parent)
	if err != nil && checkSignatureLargeExponent(child, parent) == nil {
		err = nil
	}
	b.sigOK[k] = err
	return err
}

func inPath(path []*cert.Certificate, c *cert.Certificate) bool {
	for _, p := range path {
		if p.Equal(c) || subjectKey(p) == subjectKey(c) {
			return true
		}
	}
	return false
}

func subject(c *cert.Certificate) string {
	if c == nil {
		return ""
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

type checker struct {
	r  *Result
	in Input
}

func (k *checker) add(name string, i int, result, sub, detail string) {
	s := ""
	if i >= 0 && i < len(k.r.Chain) {
		s = subject(k.r.Chain[i])
	}
	k.r.Checks = append(k.r.Checks, Check{Name: name, Index: i, Subject: s, Result: result, SubIndication: sub, Detail: detail})
}

func (s *Store) validatePath(chain []*cert.Certificate, in Input) *Result {
	r := &Result{Chain: chain, Anchor: s.anchorFor(chain[len(chain)-1])}
	k := &checker{r: r, in: in}
	n := len(chain)
	k.add("trustAnchor", n-1, Passed, "", "anchor from "+r.Anchor.Source)
	for i := 0; i < n-1; i++ {
		c, issuer := chain[i], chain[i+1]
		k.add("nameChaining", i, Passed, "", "issuer name matches "+subject(issuer))
		alg, _ := c.SignatureAlgorithmParsed()
		k.add("signature", i, Passed, "", alg.Name()+" signature by "+subject(issuer)+" verified")
		rev := s.onlineRevocation(r, c, issuer, in, s.revocation(c, issuer, in))
		r.Revocation = append(r.Revocation, rev)
		k.criticalExtensions(i)
		k.validity(i, rev)
		k.revocationCheck(i, rev)
	}
	for i := 1; i < n; i++ {
		k.caConstraints(i)
	}
	k.leafKeyUsage()
	r.Indication, r.SubIndication = conclude(r.Checks)
	r.Qualification = s.qualify(chain, in)
	return r
}

func (k *checker) criticalExtensions(i int) {
	c := k.r.Chain[i]
	if len(c.UnhandledCriticalExtensions) > 0 {
		k.add("criticalExtensions", i, Indeterminate, SubChainConstraintsFailure, fmt.Sprintf("unhandled critical extensions %v", c.UnhandledCriticalExtensions))
		return
	}
	k.add("criticalExtensions", i, Passed, "", "")
}

// validity checks the validity period at the validation time; an expired
// certificate may still be fine when a proof of existence predates expiry.
func (k *checker) validity(i int, rev RevocationStatus) {
	c, t, poe := k.r.Chain[i], k.in.Time, k.in.POE
	period := fmt.Sprintf("valid %s to %s, validation time %s", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), t.Format(time.RFC3339))
	switch {
	case t.Before(c.NotBefore):
		k.add("validity", i, Indeterminate, SubNotYetValid, period)
	case !t.After(c.NotAfter):
		k.add("validity", i, Passed, "", period)
	case !poe.IsZero() && poe.After(c.NotAfter):
		if i == 0 {
			k.add("validity", i, Failed, SubExpired, period+"; signature exists only from "+poe.Format(time.RFC3339))
		} else {
			k.add("validity", i, Indeterminate, SubOutOfBoundsNoPOE, period+"; proof of existence after expiry")
		}
	case !poe.IsZero() && !poe.Before(c.NotBefore):
		k.add("validity", i, Passed, "", period+"; proof of existence at "+poe.Format(time.RFC3339)+" within the validity period")
	case rev.Status == OCSPGood && rev.Fresh:
		k.add("validity", i, Indeterminate, SubOutOfBoundsNotRevoked, period+"; expired, not revoked, no proof of existence before expiry")
	default:
		k.add("validity", i, Indeterminate, SubOutOfBoundsNoPOE, period+"; expired, no proof of existence before expiry")
	}
}

func (k *checker) revocationCheck(i int, rev RevocationStatus) {
	c := k.r.Chain[i]
	switch rev.Status {
	case OCSPRevoked:
		detail := fmt.Sprintf("revoked at %s (reason %d) per %s", rev.RevocationTime.Format(time.RFC3339), rev.Reason, rev.Source)
		poe := k.in.POE
		switch {
		case rev.RevocationTime.After(k.in.Time):
			k.add("revocation", i, Passed, "", detail+"; after the validation time")
		case !poe.IsZero() && poe.Before(rev.RevocationTime):
			k.add("revocation", i, Passed, "", detail+"; proof of existence before revocation")
		case !poe.IsZero() && i == 0:
			k.add("revocation", i, Failed, SubRevoked, detail+"; signature exists only after revocation")
		case i == 0:
			k.add("revocation", i, Indeterminate, SubRevokedNoPOE, detail)
		default:
			k.add("revocation", i, Indeterminate, SubRevokedCANoPOE, detail)
		}
	case OCSPGood:
		if rev.Fresh {
			k.add("revocation", i, Passed, "", "not revoked per "+rev.Source)
			return
		}
		if k.in.IgnoreRevocationFreshness {
			k.add("revocation", i, Passed, "", "not revoked per "+rev.Source+staleness(rev)+"; the policy does not require fresh revocation data")
			return
		}
		k.add("revocation", i, Indeterminate, SubTryLater, "revocation data not fresh: "+rev.Source)
	default:
		if k.in.RevocationOptional {
			k.add("revocation", i, Info, "", "no revocation data for "+subject(c)+"; "+rev.Detail)
			return
		}
		k.add("revocation", i, Indeterminate, SubTryLater, "no usable revocation data; "+rev.Detail)
	}
}

// staleness says how old evidence that is not fresh was.
func staleness(rev RevocationStatus) string {
	if rev.NextUpdate.IsZero() {
		return ""
	}
	return ", next update due " + rev.NextUpdate.Format(time.RFC3339)
}

// caConstraints checks an issuing certificate: CA flag, path length and
// keyCertSign. A version 1 self-signed anchor is accepted as a CA.
func (k *checker) caConstraints(i int) {
	c := k.r.Chain[i]
	isAnchor := i == len(k.r.Chain)-1
	switch {
	case c.BasicConstraintsValid && c.IsCA:
		k.add("basicConstraints", i, Passed, "", "cA=true")
	case isAnchor && c.Version == 1:
		k.add("basicConstraints", i, Passed, "", "version 1 trust anchor")
	default:
		k.add("basicConstraints", i, Indeterminate, SubChainConstraintsFailure, "issuing certificate is not a CA")
	}
	if c.MaxPathLen >= 0 {
		below := 0
		for j := 1; j < i; j++ {
			if !k.r.Chain[j].SelfIssued() {
				below++
			}
		}
		if below > c.MaxPathLen {
			k.add("pathLength", i, Indeterminate, SubChainConstraintsFailure, fmt.Sprintf("%d intermediate CA certificates below, pathLenConstraint %d", below, c.MaxPathLen))
		} else {
			k.add("pathLength", i, Passed, "", fmt.Sprintf("%d of at most %d", below, c.MaxPathLen))
		}
	}
	if c.HasKeyUsage && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		k.add("keyUsage", i, Indeterminate, SubChainConstraintsFailure, "issuing certificate lacks keyCertSign")
	} else {
		k.add("keyUsage", i, Passed, "", "")
	}
}

func (k *checker) leafKeyUsage() {
	want := k.in.RequireKeyUsage
	if want == 0 {
		return
	}
	c := k.r.Chain[0]
	if c.HasKeyUsage && c.KeyUsage&want != 0 {
		k.add("keyUsage", 0, Passed, "", "")
		return
	}
	k.add("keyUsage", 0, Indeterminate, SubChainConstraintsFailure, fmt.Sprintf("key usage %#x lacks the required %#x", c.KeyUsage, want))
}

// subRank orders indeterminate sub-indications: the most telling first.
// OUT_OF_BOUNDS_NO_POE ranks above OUT_OF_BOUNDS_NOT_REVOKED: when one
// expired certificate of the chain is known not revoked and another is not,
// the chain as a whole is not known to be unrevoked (DSS reports the same).
var subRank = []string{
	SubNoCertificateChainFound, SubRevokedNoPOE, SubRevokedCANoPOE, SubNotYetValid,
	SubOutOfBoundsNoPOE, SubOutOfBoundsNotRevoked, SubChainConstraintsFailure,
	SubCryptoConstraints, SubTryLater,
}

func conclude(checks []Check) (string, string) {
	for _, c := range checks {
		if c.Result == Failed {
			return Failed, c.SubIndication
		}
	}
	best, bestRank := "", len(subRank)+1
	for _, c := range checks {
		if c.Result != Indeterminate {
			continue
		}
		rank := len(subRank)
		for i, s := range subRank {
			if s == c.SubIndication {
				rank = i
			}
		}
		if rank < bestRank {
			best, bestRank = c.SubIndication, rank
		}
	}
	if bestRank <= len(subRank) {
		return Indeterminate, best
	}
	return Passed, ""
}
