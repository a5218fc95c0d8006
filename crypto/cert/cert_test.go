package cert

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/internal/corpus"
)

func readCorpus(t *testing.T, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorpusCertificatesAgreeWithX509 parses every certificate file of the
// corpus and compares the fields with crypto/x509 where it parses them too.
func TestCorpusCertificatesAgreeWithX509(t *testing.T) {
	dir := corpus.Dir(t)
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".cer", ".crt", ".pem":
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 20 {
		t.Fatalf("found only %d certificate files in the corpus", len(files))
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		t.Run(rel, func(t *testing.T) {
			data, _ := os.ReadFile(f)
			certs, err := ParseAll(data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			for _, c := range certs {
				compareWithX509(t, c)
			}
		})
	}
}

func compareWithX509(t *testing.T, c *Certificate) {
	t.Helper()
	xc, err := c.X509()
	if err != nil {
		t.Logf("crypto/x509 refuses %s: %v", c.Subject, err)
		return
	}
	if c.SerialNumber.Cmp(xc.SerialNumber) != 0 || !c.NotBefore.Equal(xc.NotBefore) || !c.NotAfter.Equal(xc.NotAfter) ||
		c.Subject.String() != xc.Subject.String() || c.Issuer.String() != xc.Issuer.String() {
		t.Errorf("basic fields differ from crypto/x509")
	}
	if !bytes.Equal(c.SubjectKeyID, xc.SubjectKeyId) || !bytes.Equal(c.AuthorityKeyID, xc.AuthorityKeyId) {
		t.Errorf("key identifiers differ")
	}
	if c.HasKeyUsage && c.KeyUsage != xc.KeyUsage {
		t.Errorf("key usage %v, x509 %v", c.KeyUsage, xc.KeyUsage)
	}
	if c.IsCA != xc.IsCA || c.BasicConstraintsValid != xc.BasicConstraintsValid {
		t.Errorf("basic constraints differ")
	}
	if strings.Join(c.OCSPServers, ",") != strings.Join(xc.OCSPServer, ",") ||
		strings.Join(c.CRLDistributionPoints, ",") != strings.Join(xc.CRLDistributionPoints, ",") {
		t.Errorf("URLs differ: %v %v / %v %v", c.OCSPServers, c.CRLDistributionPoints, xc.OCSPServer, xc.CRLDistributionPoints)
	}
	if len(c.Policies) != len(xc.PolicyIdentifiers) {
		t.Errorf("policies %d, x509 %d", len(c.Policies), len(xc.PolicyIdentifiers))
	}
	if xc.PublicKey == nil { // crypto/x509 leaves RSASSA-PSS keys unparsed
		if c.PublicKey == nil {
			t.Errorf("no public key")
		}
		return
	}
	if c.PublicKey == nil || !xc.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
		t.Errorf("public key differs")
	}
}

func TestRSAPSSRootSelfSigned(t *testing.T) {
	root, err := Parse(readCorpus(t, "signatures", "pki", "D-TRUST_Root_CA_1_2017.crt"))
	if err != nil {
		t.Fatal(err)
	}
	alg, err := root.SignatureAlgorithmParsed()
	if err != nil {
		t.Fatal(err)
	}
	if alg.Scheme != sigalg.SchemeRSAPSS || alg.Name() != "SHA-512withRSAandMGF1" {
		t.Errorf("algorithm %s", alg.Name())
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Fatalf("self-signature: %v", err)
	}
	if !root.IsCA || !root.SelfIssued() {
		t.Errorf("IsCA=%v selfIssued=%v", root.IsCA, root.SelfIssued())
	}
	ca, err := Parse(readCorpus(t, "signatures", "pki", "D-TRUST_CA_3-1_2016.cer"))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := ca.SignatureAlgorithmParsed(); a.Scheme != sigalg.SchemeRSAPSS || a.Hash.Size() != 64 {
		t.Errorf("CA 3-1 algorithm %s", a.Name())
	}
	// Tampering with the TBS must break the signature.
	bad, _ := Parse(root.Raw)
	bad.RawTBSCertificate = bytes.Clone(root.RawTBSCertificate)
	bad.RawTBSCertificate[len(bad.RawTBSCertificate)-1] ^= 1
	if err := bad.CheckSignature(root.PublicKey); err == nil {
		t.Fatal("tampered TBS verified")
	}
}

func TestBrainpoolCertificate(t *testing.T) {
	certs, err := ParseAll(readCorpus(t, "signatures", "tl", "gematik-TSL-Signing-Unit-4.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if _, err := c.X509(); err == nil {
		t.Errorf("crypto/x509 unexpectedly parses a brainpool certificate; the reason for this package weakens")
	}
	if got := sigalg.KeyTypeName(c.PublicKey); got != "ECDSA brainpoolP256r1" {
		t.Errorf("key %s", got)
	}
	if c.Subject.CommonName != "TSL Signing Unit 4" {
		t.Errorf("subject %q", c.Subject.CommonName)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	der := readCorpus(t, "signatures", "pki", "D-TRUST_CA_3-1_2016.cer")
	for i := 0; i < len(der); i += 7 {
		if _, err := Parse(der[:i]); err == nil {
			t.Fatalf("truncation at %d accepted", i)
		}
	}
	if _, err := Parse(append(bytes.Clone(der), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Fatal("oversize accepted")
	}
}

func TestX509Compatibility(t *testing.T) {
	der := readCorpus(t, "signatures", "pki", "D-TRUST_CA_3-1_2016.cer")
	c, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	xc, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	compareWithX509(t, c)
	if c.Subject.String() != xc.Subject.String() {
		t.Fatal("subject")
	}
}
