package revocation

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/verify"
)

// A CAdES signature made by openssl without revocation data: offline it is
// INDETERMINATE/TRY_LATER, with the revocation client behind the trust
// store crypto/verify passes it (good) or not (revoked), and the report
// names what was fetched.
func TestVerifyWithOnlineRevocation(t *testing.T) {
	s := newServers(t)
	p := s.pki
	content := []byte("Antrag auf Erteilung einer Baugenehmigung\n")
	in := filepath.Join(t.TempDir(), "content")
	if err := os.WriteFile(in, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sign := func(signer string) []byte {
		return run(t, p.dir, nil, "cms", "-sign", "-binary", "-cades", "-md", "sha256", "-in", in,
			"-signer", signer+".pem", "-inkey", signer+".key", "-outform", "DER")
	}
	store := trust.NewStore()
	store.AddCertificate(p.cert["ca"], "test")
	tests := []struct {
		name, signer string
		online       bool
		wantInd      report.Indication
		wantSub      report.SubIndication
		wantFetched  bool
	}{
		// crypto/verify reports a chain without revocation data as
		// CERTIFICATE_CHAIN_GENERAL_FAILURE.
		{"offline", "good", false, report.Indeterminate, report.CertificateChainGeneralFailure, false},
		{"online good", "good", true, report.TotalPassed, "", true},
		{"online revoked", "revoked", true, report.Indeterminate, report.RevokedNoPOE, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := store
			if tc.online {
				st = store.WithRevocationSource(newClient(t, Config{}, nil))
			}
			rep, err := verify.Verify(context.Background(), sign(tc.signer), verify.Options{Trust: st, Detached: content})
			if err != nil {
				t.Fatal(err)
			}
			sig := rep.Signatures[0]
			if sig.Indication != tc.wantInd || sig.SubIndication != tc.wantSub {
				t.Fatalf("%s/%s, want %s/%s", sig.Indication, sig.SubIndication, tc.wantInd, tc.wantSub)
			}
			fetched := false
			for _, c := range sig.Checks {
				if c.ID == "trust.revocationFetched" && strings.Contains(c.Detail, "OCSP from "+s.ocspURL) {
					fetched = true
				}
			}
			if fetched != tc.wantFetched {
				t.Errorf("report lists the fetched response: %v, want %v", fetched, tc.wantFetched)
			}
		})
	}
}
