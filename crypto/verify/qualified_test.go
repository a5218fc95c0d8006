package verify

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// TestQualifiedEndToEnd reaches the eIDAS qualifications from a signed
// test trusted list (TS 119 612 v5, its signer configured as the list's
// signer, as in production) and signers with QC statements, with nothing
// but the list as trust: QESig, QESeal, AdESig-QC (no QSCD), and AdESig
// when the CA/QC service was withdrawn before the signature. The oracle
// repeats these cases with DSS (test/integration/dss/golden/gen-qualified).
func TestQualifiedEndToEnd(t *testing.T) {
	p := verifytest.New(t, "p256")
	now := time.Now().UTC().Truncate(time.Second)
	year := 365 * 24 * time.Hour
	signers := map[string]verifytest.Signer{
		"esig":   {Cert: p.SignerCert, Key: p.SignerKey},
		"eseal":  p.NewSigner(t, "seal", "/CN=Bauamt Musterstadt/O=Stadt Musterstadt/C=DE", verifytest.QC{Compliance: true, SSCD: true, Type: "eseal", Policy: "0.4.0.194112.1.3"}),
		"nosscd": p.NewSigner(t, "nosscd", "/CN=Max Mustermann/C=DE", verifytest.QC{Compliance: true, Type: "esign", Policy: "0.4.0.194112.1.0"}),
	}
	lists := map[string][]verifytest.ServiceStatus{
		"granted":   {{Status: verifytest.StatusGranted, Start: now.Add(-year)}},
		"withdrawn": {{Status: verifytest.StatusWithdrawn, Start: now.Add(-time.Hour)}, {Status: verifytest.StatusGranted, Start: now.Add(-year)}},
	}
	dir := t.TempDir()
	content := []byte("Antrag auf Akteneinsicht\r\n")
	tests := []struct {
		list, signer string
		want         report.Qualification
	}{
		{"granted", "esig", report.QESig},
		{"granted", "eseal", report.QESeal},
		{"granted", "nosscd", report.AdESigQC},
		{"withdrawn", "esig", report.AdESig},
	}
	stores := map[string]*TrustConfig{}
	for name, statuses := range lists {
		tl, operator := verifytest.TrustedList(t, verifytest.TLOptions{CACert: p.CACert, Statuses: statuses, Issued: now.Add(-time.Minute)})
		tlPath, opPath := filepath.Join(dir, name+".xml"), filepath.Join(dir, name+"-operator.pem")
		if err := os.WriteFile(tlPath, tl, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(opPath, operator, 0o600); err != nil {
			t.Fatal(err)
		}
		stores[name] = &TrustConfig{Paths: []string{tlPath}, TLSigners: []string{opPath}}
	}
	for _, tc := range tests {
		store, err := LoadTrust(context.Background(), *stores[tc.list])
		if err != nil {
			t.Fatalf("%s list: %v", tc.list, err)
		}
		sig := p.SignAs(t, signers[tc.signer], content, false)
		rep, err := Verify(context.Background(), sig, Options{Trust: store, Detached: content, Time: now.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		s := rep.Signatures[0]
		if s.Indication != report.TotalPassed || s.Qualification != tc.want {
			for _, c := range s.Checks {
				t.Logf("%s %s: %s", c.ID, c.Result, c.Detail)
			}
			t.Errorf("%s list, %s signer: %s/%s, qualification %q, want TOTAL_PASSED %q", tc.list, tc.signer, s.Indication, s.SubIndication, s.Qualification, tc.want)
		}
	}
}
