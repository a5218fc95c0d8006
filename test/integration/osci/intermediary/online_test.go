package intermediary

import (
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/poststelle/poststelle/test/integration/osci/vhnpki"
)

// TestInspectOnline: a certificate that names a loopback OCSP responder gets the
// responder's verified answer as its online result, with the response kept; one whose
// responder is elsewhere, down, or signs with another key gets none.
func TestInspectOnline(t *testing.T) {
	ca, err := vhnpki.NewCA("Justiz VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	other, err := vhnpki.NewCA("Justiz VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(c *vhnpki.CA, responders ...string) *x509.Certificate {
		if responders == nil {
			responders = []string{c.OCSPURL()}
		}
		l, err := c.IssueWithResponders("VHN - Justiz", "", responders)
		if err != nil {
			t.Fatal(err)
		}
		return l.Certificate
	}
	good, revoked, remote := issue(ca), issue(ca), issue(ca, "http://ocsp.example.org/")
	ca.Revoke(revoked)
	down := issue(other)
	// A responder that is not the issuer's: other's certificate
	// names ca's responder, whose answer does not verify against other's CA.
	foreign := issue(other, ca.OCSPURL())
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	keys, err := SampleKeys(certDir)
	if err != nil {
		t.Fatal(err)
	}
	keys.Roots = append(keys.Roots, ca.Certificate, other.Certificate)
	srv, err := Start(t.Context(), Config{Keys: keys, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		c      *x509.Certificate
		online string
		status int
	}{
		{"good", good, "ok", ocsp.Good},
		{"revoked", revoked, "revoked", ocsp.Revoked},
		{"responder not on loopback", remote, "", 0},
		{"responder down", down, "", 0},
		{"responder of another CA", foreign, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := srv.inspect(t.Context(), parsed(t, tc.c), time.Now())
			if in.OnlineResult != tc.online {
				t.Fatalf("online result %q, want %q", in.OnlineResult, tc.online)
			}
			if tc.online == "" {
				if in.OCSP != nil {
					t.Error("an OCSP response kept without an online result")
				}
				return
			}
			if in.MathResult != "ok" || in.OfflineResult != "valid" {
				t.Errorf("math %s offline %s", in.MathResult, in.OfflineResult)
			}
			issuer := ca.Certificate
			r, err := ocsp.ParseResponseForCert(in.OCSP, tc.c, issuer)
			if err != nil || r.Status != tc.status {
				t.Errorf("kept OCSP response: %v, status %v", err, r)
			}
		})
	}
}
