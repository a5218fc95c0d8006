package verify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
)

func TestPolicyResolve(t *testing.T) {
	tests := []struct {
		in       Policy
		wantName string
		wantFr   Freshness
		wantErr  bool
	}{
		{Policy{}, DefaultPolicyName, FreshnessIgnore, false},
		{Policy{RevocationFreshness: FreshnessIgnore}, DefaultPolicyName, FreshnessIgnore, false},
		{Policy{RevocationFreshness: FreshnessNextUpdate}, CustomPolicyName, FreshnessNextUpdate, false},
		{Policy{Name: "Landesrichtlinie", RevocationFreshness: FreshnessNextUpdate}, "Landesrichtlinie", FreshnessNextUpdate, false},
		{Policy{RevocationFreshness: "IGNORE"}, "", "", true},
	}
	for _, tc := range tests {
		got, err := tc.in.Resolve()
		if (err != nil) != tc.wantErr {
			t.Fatalf("%+v: err %v, want error %v", tc.in, err, tc.wantErr)
		}
		if err == nil && (got.Name != tc.wantName || got.RevocationFreshness != tc.wantFr) {
			t.Errorf("%+v: resolved to %+v", tc.in, got)
		}
	}
	if _, err := Verify(context.Background(), []byte("x"), Options{Policy: Policy{RevocationFreshness: "sometimes"}}); err == nil {
		t.Error("Verify accepted an unknown policy setting")
	}
}

// TestPolicyRevocationFreshness verifies the oracle's generated signature
// twelve days after signing, when the CRL it embeds is past its nextUpdate
// (test/integration/dss/golden/gen-stale-crl): under the default policy the
// signature passes, as DSS's default policy says, and the report names that
// policy; a policy demanding fresh data leaves it INDETERMINATE/TRY_LATER.
func TestPolicyRevocationFreshness(t *testing.T) {
	golden := goldenFiles(t)
	for _, kt := range []string{"rsa", "p256"} {
		name := "gen-stale-crl/generated/" + kt + "/detached.p7s"
		d, ok := golden[name]
		if !ok {
			t.Fatalf("no golden result %s", name)
		}
		if d.Signatures[0].Indication != report.TotalPassed {
			t.Fatalf("%s: DSS says %s, the case no longer shows the default", name, d.Signatures[0].Indication)
		}
		for _, tc := range []struct {
			policy  Policy
			wantInd report.Indication
			wantSub report.SubIndication
			name    string
			detail  string
		}{
			{Policy{}, report.TotalPassed, report.NoSubIndication, DefaultPolicyName, "does not require fresh revocation data"},
			{Policy{RevocationFreshness: FreshnessNextUpdate}, report.Indeterminate, report.TryLater, CustomPolicyName, "revocation data not fresh"},
		} {
			rep := verifyGenerated(t, d, tc.policy)
			s := rep.Signatures[0]
			if s.Indication != tc.wantInd || s.SubIndication != tc.wantSub {
				t.Errorf("%s under %q: %s/%s, want %s/%s", name, tc.name, s.Indication, s.SubIndication, tc.wantInd, tc.wantSub)
			}
			if rep.Policy == nil || rep.Policy.Name != tc.name {
				t.Errorf("%s: report names policy %+v, want %q", name, rep.Policy, tc.name)
			}
			if !hasCheckDetail(s.Checks, "trust.revocation", tc.detail) {
				t.Errorf("%s under %q: no revocation check saying %q", name, tc.name, tc.detail)
			}
			var txt bytes.Buffer
			if err := report.WriteText(&txt, rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(txt.String(), "Policy:          "+tc.name) {
				t.Errorf("%s: text report does not name the policy:\n%s", name, txt.String())
			}
		}
	}
}

func verifyGenerated(t *testing.T, d *report.DSSResult, p Policy) *report.Report {
	t.Helper()
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(oracleDir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	at, err := time.Parse(time.RFC3339, d.ValidationTime)
	if err != nil {
		t.Fatal(err)
	}
	store, err := LoadTrust(context.Background(), TrustConfig{Paths: []string{filepath.Join(oracleDir, filepath.FromSlash(d.Input.Trust[0]))}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), read(d.Input.Signature), Options{
		Time: at, Trust: store, Detached: read(d.Input.Detached[0]), Policy: p,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasCheckDetail(cs []report.Check, id, detail string) bool {
	for _, c := range cs {
		if c.ID == id && strings.Contains(c.Detail, detail) {
			return true
		}
	}
	return false
}
