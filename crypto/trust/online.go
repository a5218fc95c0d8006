package trust

import (
	"context"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// RevocationSource obtains revocation data for one certificate from outside
// the signature (OCSP responders, CRL distribution points; see
// crypto/revocation). Validation asks it only when the embedded data gives
// no usable status or only data that is not fresh.
type RevocationSource interface {
	FetchRevocation(ctx context.Context, c, issuer *cert.Certificate) (*FetchedRevocation, error)
}

// FetchedRevocation is what a RevocationSource found. The parsed CRLs and
// OCSP responses are evaluated exactly like embedded ones (signature,
// responder authority, freshness); Evidence records where each came from.
type FetchedRevocation struct {
	CRLs     []*CRL
	OCSP     []*OCSPResponse
	Evidence []FetchedEvidence
}

// Kinds of FetchedEvidence.
const (
	EvidenceOCSP = "OCSP"
	EvidenceCRL  = "CRL"
)

// FetchedEvidence is one revocation object obtained online, kept so that the
// report lists it with its source URL and fetch time.
type FetchedEvidence struct {
	Kind      string // EvidenceOCSP or EvidenceCRL
	Subject   string // the certificate it was fetched for
	URL       string
	FetchedAt time.Time
	// FromCache is set when a cached copy (fetched at FetchedAt) was used.
	FromCache bool
	DER       []byte
	// Notes are observations that did not make the data unusable, e.g. a
	// responder that did not echo the nonce.
	Notes []string
}

// WithRevocationSource returns a copy of the store whose validations ask src
// for missing revocation data when Input.Online is nil. Call it once the
// store is complete: the copy shares the anchors, and anchors added to
// either afterwards may not show in the other.
func (s *Store) WithRevocationSource(src RevocationSource) *Store {
	c := *s
	c.online = src
	return &c
}

// ValidateContext is Validate with the context that bounds online
// revocation lookups through in.Online.
func (s *Store) ValidateContext(ctx context.Context, in Input) *Result {
	in.ctx = ctx
	return s.Validate(in)
}

// onlineRevocation consults in.Online when the embedded evidence about c is
// missing or not fresh, and re-evaluates with the fetched data added. The
// fetched objects are recorded in r.Fetched whether or not they helped.
func (s *Store) onlineRevocation(r *Result, c, issuer *cert.Certificate, in Input, rev RevocationStatus) RevocationStatus {
	src := in.Online
	if src == nil {
		src = s.online
	}
	if src == nil || rev.Status == OCSPRevoked || (rev.Status == OCSPGood && rev.Fresh) {
		return rev
	}
	// Without ValidateContext the source's own timeouts bound the fetch.
	ctx := in.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	got, err := src.FetchRevocation(ctx, c, issuer)
	if got != nil {
		r.Fetched = append(r.Fetched, got.Evidence...)
		recordFetched(r, c, got.Evidence)
	}
	if got == nil || (len(got.CRLs) == 0 && len(got.OCSP) == 0) {
		if err != nil {
			rev.Detail = joinDetail(rev.Detail, fmt.Sprintf("online: %v", err))
		}
		return rev
	}
	merged := in
	merged.CRLs = append(append([]*CRL(nil), got.CRLs...), in.CRLs...)
	merged.OCSP = append(append([]*OCSPResponse(nil), got.OCSP...), in.OCSP...)
	out := s.revocation(c, issuer, merged)
	if err != nil {
		out.Detail = joinDetail(out.Detail, fmt.Sprintf("online: %v", err))
	}
	return out
}

// recordFetched lists fetched evidence as Info checks, so that every report
// built from the checks names its source URL and fetch time.
func recordFetched(r *Result, c *cert.Certificate, evs []FetchedEvidence) {
	i := -1
	for j, p := range r.Chain {
		if p == c {
			i = j
		}
	}
	for _, ev := range evs {
		detail := fmt.Sprintf("%s from %s fetched %s", ev.Kind, ev.URL, ev.FetchedAt.UTC().Format(time.RFC3339))
		if ev.FromCache {
			detail += " (cached copy)"
		}
		for _, n := range ev.Notes {
			detail += "; " + n
		}
		r.Checks = append(r.Checks, Check{Name: "revocationFetched", Index: i, Subject: subject(c), Result: Info, Detail: detail})
	}
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
