package trust

import (
	"crypto/x509"
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
