package egvp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// vhnPKI makes, with openssl, a VHN CA and a beBPo VHN certificate for the sender of
// TestnachrichtEeb_1, and a second CA of the same name that did not issue it.
func vhnPKI(t *testing.T) (ca, forger, leaf *cert.Certificate) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required for these tests (apt-get install openssl): %v", err)
	}
	dir := t.TempDir()
	const caSubj = "/CN=beBPo VHN CA Test/O=Poststelle Test/C=DE"
	for _, name := range []string{"ca", "forger"} {
		openssl(t, dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name+".key", "-out", name+".pem",
			"-days", "30", "-subj", caSubj, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	}
	openssl(t, dir, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-utf8",
		"-subj", "/UID=DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650/CN=VHN - besonderes elektronisches Behördenpostfach/C=DE")
	if err := os.WriteFile(filepath.Join(dir, "leaf.ext"), []byte("keyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=clientAuth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "4711",
		"-days", "10", "-extfile", "leaf.ext", "-out", "leaf.pem")
	return readPEM(t, dir, "ca.pem"), readPEM(t, dir, "forger.pem"), readPEM(t, dir, "leaf.pem")
}

func readPEM(t *testing.T, dir, name string) *cert.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := cert.ParseAll(data)
	if err != nil || len(cs) != 1 {
		t.Fatalf("%s: %v", name, err)
	}
	return cs[0]
}

// withTransportCertificate puts leaf in place of the sample's VHN certificate, with the
// intermediary's positive inspection of it and a receipt within its validity.
func withTransportCertificate(t *testing.T, leaf *cert.Certificate) Delivery {
	t.Helper()
	d := sampleDelivery(t, "TestnachrichtEeb_1")
	transportEntry(&d).Cert = leaf
	pc := d.Envelope.ProcessCards()[0]
	pc.Card.Creation.Plain = time.Now()
	pc.Report[0].X509Serial = leaf.SerialNumber
	pc.Report[0].X509IssuerName = "CN=" + leaf.Issuer.CommonName + ",O=Poststelle Test,C=DE"
	return d
}

func TestOriginAnchors(t *testing.T) {
	ca, forger, leaf := vhnPKI(t)
	tests := []struct {
		name    string
		anchors []*cert.Certificate
		level   Level
		check   string
	}{
		{"issued by the configured CA", []*cert.Certificate{forger, ca}, LevelVHN, "issued by the configured beBPo VHN CA Test"},
		{"a CA of the same name did not issue it", []*cert.Certificate{forger}, LevelSenderSigned, ""},
		{"no anchors: the intermediary is relied on", nil, LevelVHN, "no VHN CA configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Read(context.Background(), withTransportCertificate(t, leaf), Config{VHNAnchors: tc.anchors}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			o := m.Origin
			if o.Level != tc.level || tc.check != "" && !strings.Contains(strings.Join(o.Checks, "; "), tc.check) {
				t.Errorf("level %s (%s), checks %q; want %s with %q", o.Level, o.Reason, o.Checks, tc.level, tc.check)
			}
			if tc.level == LevelSenderSigned && o.Reason != "the VHN certificate is not issued by a configured VHN CA" {
				t.Errorf("reason %q", o.Reason)
			}
		})
	}
}
