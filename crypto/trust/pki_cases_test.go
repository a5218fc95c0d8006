package trust

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

func TestGeneratedPKI(t *testing.T) {
	p := newTestPKI(t)
	crl := p.crl("int")
	if err := crl.CheckSignatureFrom(p.cert["int"]); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if err := crl.CheckSignatureFrom(p.cert["root"]); err == nil {
		t.Fatal("CRL verified with the wrong issuer")
	}
	if e, ok := crl.Lookup(p.cert["revoked"].SerialNumber); !ok || e.Reason != 1 {
		t.Fatalf("revoked entry %+v %v", e, ok)
	}
	s := p.store()
	ints := []*cert.Certificate{p.cert["int"], p.cert["sub"]}
	crls := []*CRL{crl, p.crl("root")}
	now := p.now
	day := 24 * time.Hour
	tests := []struct {
		name     string
		in       Input
		wantInd  string
		wantSub  string
		wantQual string // signature qualification for a PASSED AdES
	}{
		{"valid with CRL", Input{Leaf: p.cert["leaf"], Intermediates: ints, CRLs: crls, Time: now}, Passed, "", SigNA},
		{"valid with OCSP", Input{Leaf: p.cert["leaf"], Intermediates: ints, CRLs: []*CRL{p.crl("root")}, OCSP: []*OCSPResponse{p.ocspFor("leaf")}, Time: now}, Passed, "", SigNA},
		{"no revocation data", Input{Leaf: p.cert["leaf"], Intermediates: ints, Time: now}, Indeterminate, SubTryLater, SigNA},
		{"no intermediates", Input{Leaf: p.cert["leaf"], CRLs: crls, Time: now}, Indeterminate, SubNoCertificateChainFound, SigNA},
		{"revoked", Input{Leaf: p.cert["revoked"], Intermediates: ints, CRLs: crls, Time: now}, Indeterminate, SubRevokedNoPOE, SigNA},
		{"revoked via OCSP", Input{Leaf: p.cert["revoked"], Intermediates: ints, OCSP: []*OCSPResponse{p.ocspFor("revoked")}, Time: now}, Indeterminate, SubRevokedNoPOE, SigNA},
		{"revoked, POE before revocation", Input{Leaf: p.cert["revoked"], Intermediates: ints, CRLs: crls, Time: now, POE: now.Add(-200 * day)}, Passed, "", SigNA},
		{"revoked, POE after revocation", Input{Leaf: p.cert["revoked"], Intermediates: ints, CRLs: crls, Time: now, POE: now.Add(-50 * day)}, Failed, SubRevoked, SigNA},
		{"revoked, validated before revocation", Input{Leaf: p.cert["revoked"], Intermediates: ints, CRLs: crls, Time: now.Add(-150 * day)}, Passed, "", SigNA},
		{"expired, OCSP good", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: crls, OCSP: []*OCSPResponse{p.ocspFor("expired")}, Time: now}, Indeterminate, SubOutOfBoundsNotRevoked, SigNA},
		// The CRL was issued after expiry and may have dropped the entry.
		{"expired, CRL only", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: crls, Time: now}, Indeterminate, SubOutOfBoundsNoPOE, SigNA},
		{"expired, POE after expiry", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: crls, Time: now, POE: now.Add(-5 * day)}, Failed, SubExpired, SigNA},
		{"expired, validated at POE", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: crls, OCSP: []*OCSPResponse{p.ocspFor("expired")}, Time: now.Add(-20 * day)}, Passed, "", SigNA},
		{"not yet valid", Input{Leaf: p.cert["leaf"], Intermediates: ints, CRLs: crls, Time: now.Add(-301 * day)}, Indeterminate, SubNotYetValid, SigNA},
		{"path length violated", Input{Leaf: p.cert["subleaf"], Intermediates: ints, Time: now, RevocationOptional: true}, Indeterminate, SubChainConstraintsFailure, SigNA},
		{"unknown critical extension", Input{Leaf: p.cert["badcrit"], Intermediates: ints, CRLs: crls, Time: now}, Indeterminate, SubChainConstraintsFailure, SigNA},
		{"leaf key usage required", Input{Leaf: p.cert["ocsp"], Intermediates: ints, CRLs: crls, Time: now, RequireKeyUsage: x509.KeyUsageContentCommitment}, Indeterminate, SubChainConstraintsFailure, SigNA},
	}
	t.Run("intermediate from the store pool", func(t *testing.T) {
		ps := p.store()
		ps.AddIntermediates(p.cert["int"])
		r := ps.Validate(Input{Leaf: p.cert["leaf"], CRLs: crls, Time: now})
		if r.Indication != Passed || len(r.Chain) != 3 {
			t.Fatalf("%s/%s", r.Indication, r.SubIndication)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Validate(tc.in)
			if r.Indication != tc.wantInd || r.SubIndication != tc.wantSub {
				for _, c := range r.Checks {
					t.Logf("%+v", c)
				}
				t.Fatalf("got %s/%s, want %s/%s", r.Indication, r.SubIndication, tc.wantInd, tc.wantSub)
			}
			if got := r.SignatureQualification(Passed); got != tc.wantQual {
				t.Errorf("qualification %s, want %s", got, tc.wantQual)
			}
		})
	}
}

// TestRevocationIssuerValidity: evidence signed by a certificate that has
// expired by the validation time proves nothing without a proof of
// existence of the evidence from the signer's validity period (EN 319 102-1;
// DSS's RevocationIssuerNotExpired, corpus sample Signature-C-B-LTA-10).
func TestRevocationIssuerValidity(t *testing.T) {
	p := newTestPKI(t)
	s := p.store()
	day := 24 * time.Hour
	ints := []*cert.Certificate{p.cert["int"]}
	rootCRL := []*CRL{p.crl("root")}
	// Without nextUpdate the answer would count as current for ever.
	expiredLeaf := []*OCSPResponse{p.ocspBy("expired", "ocspshort")}
	leaf := []*OCSPResponse{p.ocspBy("leaf", "ocspshort")}
	later := p.now.Add(10 * day)
	tests := []struct {
		name    string
		in      Input
		wantInd string
		wantSub string
		detail  string // in the leaf's revocation check
	}{
		{"responder valid at validation time", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: rootCRL, OCSP: expiredLeaf, Time: p.now},
			Indeterminate, SubOutOfBoundsNotRevoked, "not revoked per OCSP"},
		{"responder expired, no POE of the response", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: rootCRL, OCSP: expiredLeaf, Time: later},
			Indeterminate, SubOutOfBoundsNoPOE, "no proof of existence of the revocation data"},
		{"responder expired, response proven to exist before", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: rootCRL, OCSP: expiredLeaf, Time: later, RevocationPOE: p.now.Add(day)},
			Indeterminate, SubOutOfBoundsNotRevoked, "not revoked per OCSP"},
		{"responder expired, response proven to exist only after", Input{Leaf: p.cert["expired"], Intermediates: ints, CRLs: rootCRL, OCSP: expiredLeaf, Time: later, RevocationPOE: p.now.Add(3 * day)},
			Indeterminate, SubOutOfBoundsNoPOE, "proven to exist only from"},
		// A valid leaf: the signature's POE makes the answer fresh, but the
		// responder must still be trustworthy at the validation time.
		{"valid leaf, responder expired", Input{Leaf: p.cert["leaf"], Intermediates: ints, CRLs: rootCRL, OCSP: leaf, Time: later, POE: p.now.Add(-day)},
			Indeterminate, SubTryLater, "not valid at the validation time"},
		{"valid leaf, responder expired, POE of the response", Input{Leaf: p.cert["leaf"], Intermediates: ints, CRLs: rootCRL, OCSP: leaf, Time: later, POE: p.now.Add(-day), RevocationPOE: p.now.Add(day)},
			Passed, "", "not revoked per OCSP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Validate(tc.in)
			var detail string
			for _, c := range r.Checks {
				if c.Name == "revocation" && c.Index == 0 {
					detail = c.Detail
				}
			}
			if r.Indication != tc.wantInd || r.SubIndication != tc.wantSub || !strings.Contains(detail, tc.detail) {
				for _, c := range r.Checks {
					t.Logf("%+v", c)
				}
				t.Fatalf("got %s/%s (%q), want %s/%s (%q)", r.Indication, r.SubIndication, detail, tc.wantInd, tc.wantSub, tc.detail)
			}
		})
	}
}

func TestOCSPParseAndSignature(t *testing.T) {
	p := newTestPKI(t)
	r := p.ocspFor("revoked")
	single, ok := r.Find(p.cert["revoked"], p.cert["int"])
	if !ok || single.Status != OCSPRevoked || single.Reason != 1 {
		t.Fatalf("single %+v %v", single, ok)
	}
	signer, err := r.CheckSignature(p.cert["int"])
	if err != nil || !signer.Equal(p.cert["ocsp"]) {
		t.Fatalf("signer %v err %v", signer, err)
	}
	// The responder is not authorised by the root.
	if _, err := r.CheckSignature(p.cert["root"]); err == nil {
		t.Error("delegated responder accepted for the wrong CA")
	}
	if _, ok := r.Find(p.cert["leaf"], p.cert["int"]); ok {
		t.Error("response about another certificate matched")
	}
	// Tampering with the signed part breaks the signature.
	raw := append([]byte(nil), r.Raw...)
	raw[len(r.RawTBS)/2+4] ^= 1
	if r2, err := ParseBasicOCSPResponse(raw); err == nil {
		if _, err := r2.CheckSignature(p.cert["int"]); err == nil {
			t.Error("tampered OCSP response verified")
		}
	}
}
