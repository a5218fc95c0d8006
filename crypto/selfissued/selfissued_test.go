package selfissued

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestIssueAndReload(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	ca, err := LoadOrCreateCA(p("ca.pem"), p("ca-key.pem"), "Demo CA")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		profile Profile
		check   func(t *testing.T, c *x509.Certificate)
	}{
		{"tsa", TSA, func(t *testing.T, c *x509.Certificate) {
			var critical bool
			for _, e := range c.Extensions {
				if e.Id.Equal(oidExtKeyUsage) {
					critical = e.Critical
				}
			}
			if !critical || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
				t.Errorf("EKU %v critical=%v", c.ExtKeyUsage, critical)
			}
		}},
		{"seal", Seal, func(t *testing.T, c *x509.Certificate) {
			if c.KeyUsage&x509.KeyUsageContentCommitment == 0 || c.IsCA {
				t.Errorf("key usage %b, CA %v", c.KeyUsage, c.IsCA)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			issued, err := ca.LoadOrIssue(p(c.name+".pem"), p(c.name+"-key.pem"), c.name, c.profile)
			if err != nil || !issued {
				t.Fatalf("issued=%v err=%v", issued, err)
			}
			certs, err := ReadCertificates(p(c.name + ".pem"))
			if err != nil || len(certs) != 2 {
				t.Fatalf("%d certificates, %v", len(certs), err)
			}
			if err := certs[0].CheckSignatureFrom(ca.Cert); err != nil || !certs[1].Equal(ca.Cert) {
				t.Fatalf("chain: %v", err)
			}
			c.check(t, certs[0])
			if fi, _ := os.Stat(p(c.name + "-key.pem")); fi.Mode().Perm() != 0o600 {
				t.Errorf("key mode %v", fi.Mode())
			}
			// A second start reuses what is there.
			again, err := ca.LoadOrIssue(p(c.name+".pem"), p(c.name+"-key.pem"), c.name, c.profile)
			if err != nil || again {
				t.Fatalf("second start: issued=%v err=%v", again, err)
			}
		})
	}
	ca2, err := LoadOrCreateCA(p("ca.pem"), p("ca-key.pem"), "Demo CA")
	if err != nil || !ca2.Cert.Equal(ca.Cert) {
		t.Fatalf("reload CA: %v", err)
	}
	// Half a pair is refused rather than overwritten.
	if err := os.Remove(p("seal-key.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrIssue(p("seal.pem"), p("seal-key.pem"), "seal", Seal); err == nil {
		t.Fatal("half a pair accepted")
	}
	if _, err := LoadOrCreateCA(p("seal.pem"), p("ca-key.pem"), "x"); err == nil {
		t.Fatal("CA key not matching the certificate accepted")
	}
}

func TestCRL(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), "Demo CA")
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.CRL(filepath.Join(dir, "ca.crl"))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil || len(crl.RevokedCertificateEntries) != 0 ||
		!crl.NextUpdate.After(crl.ThisUpdate) {
		t.Fatalf("CRL: %v, %d entries, %v..%v", err, len(crl.RevokedCertificateEntries), crl.ThisUpdate, crl.NextUpdate)
	}
	if onDisk, _ := os.ReadFile(filepath.Join(dir, "ca.crl")); !bytes.Equal(onDisk, der) {
		t.Fatal("ca.crl differs from the CRL returned")
	}
}
