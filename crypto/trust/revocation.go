package trust

import (
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// reasonRemoveFromCRL releases a certificate from hold.
const reasonRemoveFromCRL = 8

// RevocationStatus is the revocation evidence found for one certificate.
type RevocationStatus struct {
	Subject string
	// Status is OCSPGood, OCSPRevoked or "" when no usable evidence exists.
	Status         string
	Source         string // "CRL thisUpdate ..." or "OCSP producedAt ..."
	RevocationTime time.Time
	Reason         int
	ThisUpdate     time.Time
	NextUpdate     time.Time
	// Fresh is set when good evidence was issued at or after the reference
	// time (POE, else signing time) or its validity window contains the
	// validation time.
	Fresh bool
	// Detail explains evidence that was present but not usable.
	Detail string
}

type evidence struct {
	status         string
	revocationTime time.Time
	reason         int
	thisUpdate     time.Time
	nextUpdate     time.Time
	source         string
}

// revocation collects the CRL and OCSP evidence about c (issued by issuer)
// and reduces it to one status: any valid revocation wins; otherwise the
// freshest good evidence.
func (s *Store) revocation(c, issuer *cert.Certificate, in Input) RevocationStatus {
	out := RevocationStatus{Subject: subject(c), Reason: -1}
	var evs []evidence
	var notes []string
	for i, crl := range in.CRLs {
		ev, err := crlEvidence(crl, c, issuer)
		if err == nil && ev != nil {
			err = s.revocationIssuerUsable(issuer, in)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("CRL %d: %v", i+1, err))
			continue
		}
		if ev != nil {
			evs = append(evs, *ev)
		}
	}
	for i, r := range in.OCSP {
		ev, signer, err := ocspEvidence(r, c, issuer)
		if err == nil && ev != nil {
			err = s.revocationIssuerUsable(signer, in)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("OCSP %d: %v", i+1, err))
			continue
		}
		if ev != nil {
			evs = append(evs, *ev)
		}
	}
	out.Detail = strings.Join(notes, "; ")
	if len(evs) == 0 {
		if out.Detail == "" {
			out.Detail = "no CRL or OCSP response for this certificate"
		}
		return out
	}
	ref := in.POE
	if ref.IsZero() {
		ref = in.SigningTime
	}
	var best *evidence
	for i := range evs {
		e := &evs[i]
		if e.status == OCSPRevoked {
			if best == nil || best.status != OCSPRevoked || e.revocationTime.Before(best.revocationTime) {
				best = e
			}
			continue
		}
		if best == nil || (best.status != OCSPRevoked && e.thisUpdate.After(best.thisUpdate)) {
			best = e
		}
	}
	out.Status, out.Source = best.status, best.source
	out.RevocationTime, out.Reason = best.revocationTime, best.reason
	out.ThisUpdate, out.NextUpdate = best.thisUpdate, best.nextUpdate
	if best.status == OCSPGood {
		t := in.Time
		inWindow := !best.thisUpdate.After(t) && (best.nextUpdate.IsZero() || !t.After(best.nextUpdate))
		afterRef := !ref.IsZero() && !best.thisUpdate.Before(ref)
		// Evidence issued at or after a time also proves the certificate was
		// not revoked at that time: revocation is permanent.
		afterT := !best.thisUpdate.Before(t)
		out.Fresh = inWindow || afterRef || afterT
	}
	return out
}

func crlEvidence(crl *CRL, c, issuer *cert.Certificate) (*evidence, error) {
	if !cert.NameEqual(crl.RawIssuer, c.RawIssuer) {
		return nil, nil // about another CA
	}
	if crl.Unsupported != "" {
		return nil, fmt.Errorf("unusable: %s", crl.Unsupported)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, err
	}
	if (crl.OnlyCACerts && !c.IsCA) || (crl.OnlyUserCerts && c.IsCA) {
		return nil, nil
	}
	src := "CRL thisUpdate " + crl.ThisUpdate.Format(time.RFC3339)
	ev := &evidence{status: OCSPGood, reason: -1, thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate, source: src}
	if e, ok := crl.Lookup(c.SerialNumber); ok && e.Reason != reasonRemoveFromCRL {
		ev.status, ev.revocationTime, ev.reason = OCSPRevoked, e.RevocationTime, e.Reason
		return ev, nil
	}
	// An expired certificate may have been dropped from the CRL: absence
	// proves nothing unless the CRL keeps expired entries.
	if crl.ThisUpdate.After(c.NotAfter) && (crl.ExpiredCertsOnCRL.IsZero() || crl.ExpiredCertsOnCRL.After(c.NotAfter)) {
		return nil, fmt.Errorf("CRL issued after the certificate expired and does not keep expired entries")
	}
	return ev, nil
}

// revocationIssuerUsable decides whether evidence signed by signer (the CA
// for a CRL, the responder for OCSP) may be relied on at the validation
// time (EN 319 102-1, 5.2.5 and 5.6.2.3; DSS's RevocationIssuerNotExpired):
// the signer's certificate must be valid then, unless a proof of existence
// of the evidence falls within that certificate's validity, so that a later
// compromise of the expired key could not have produced it. A trust anchor
// is trusted as such, whatever its validity period says.
func (s *Store) revocationIssuerUsable(signer *cert.Certificate, in Input) error {
	if s.anchorFor(signer) != nil || within(signer, in.Time) {
		return nil
	}
	if !in.RevocationPOE.IsZero() && within(signer, in.RevocationPOE) {
		return nil
	}
	detail := fmt.Sprintf("issuer certificate %s (valid %s to %s) not valid at the validation time %s", subject(signer),
		signer.NotBefore.Format(time.RFC3339), signer.NotAfter.Format(time.RFC3339), in.Time.Format(time.RFC3339))
	if in.RevocationPOE.IsZero() {
		return fmt.Errorf("%s and no proof of existence of the revocation data", detail)
	}
	return fmt.Errorf("%s and the revocation data is proven to exist only from %s", detail, in.RevocationPOE.Format(time.RFC3339))
}

func within(c *cert.Certificate, t time.Time) bool {
	return !t.Before(c.NotBefore) && !t.After(c.NotAfter)
}

func ocspEvidence(r *OCSPResponse, c, issuer *cert.Certificate) (*evidence, *cert.Certificate, error) {
	single, ok := r.Find(c, issuer)
	if !ok {
		return nil, nil, nil
	}
	signer, err := r.CheckSignature(issuer)
	if err != nil {
		return nil, nil, err
	}
	if !within(signer, r.ProducedAt) {
		return nil, nil, fmt.Errorf("responder certificate %s not valid at producedAt %s", subject(signer), r.ProducedAt.Format(time.RFC3339))
	}
	src := "OCSP producedAt " + r.ProducedAt.Format(time.RFC3339)
	ev := &evidence{reason: single.Reason, thisUpdate: single.ThisUpdate, nextUpdate: single.NextUpdate, source: src}
	switch single.Status {
	case OCSPGood:
		ev.status = OCSPGood
	case OCSPRevoked:
		if single.Reason == reasonRemoveFromCRL {
			ev.status = OCSPGood
		} else {
			ev.status, ev.revocationTime = OCSPRevoked, single.RevocationTime
		}
	default:
		return nil, nil, fmt.Errorf("responder reports status unknown")
	}
	return ev, signer, nil
}
