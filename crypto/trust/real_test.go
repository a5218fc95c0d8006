package trust

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/internal/corpus"
)

func TestDTrustRootCRL(t *testing.T) {
	s := NewStore()
	if err := s.LoadAnchors(context.Background(), corpus.Path(t, "signatures", "pki", "D-TRUST_Root_CA_1_2017.crt")); err != nil {
		t.Fatal(err)
	}
	root := s.Anchors()[0].Cert
	data, err := os.ReadFile(corpus.Path(t, "signatures", "pki", "d-trust_root_ca_1_2017.crl"))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := ParseCRL(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatalf("RSA-PSS CRL signature: %v", err)
	}
	if crl.ThisUpdate.Format(time.DateOnly) != "2018-06-05" || crl.NextUpdate.IsZero() || len(crl.Entries) != 0 || crl.Unsupported != "" {
		t.Errorf("CRL %v %v %d %q", crl.ThisUpdate, crl.NextUpdate, len(crl.Entries), crl.Unsupported)
	}
	// One bit flipped in the signed part must break the signature.
	der := append([]byte(nil), crl.Raw...)
	der[len(crl.RawTBS)/2] ^= 0x01
	if bad, err := ParseCRL(der); err == nil {
		if err := bad.CheckSignatureFrom(root); err == nil {
			t.Error("tampered CRL verified")
		}
	}
	// The root validates as itself; CA 3-1 2016 belongs to another root.
	r := s.Validate(Input{Leaf: root, Time: time.Date(2018, 7, 1, 0, 0, 0, 0, time.UTC)})
	if r.Indication != Passed || len(r.Chain) != 1 {
		t.Errorf("root: %s/%s", r.Indication, r.SubIndication)
	}
	caData, err := os.ReadFile(corpus.Path(t, "signatures", "pki", "D-TRUST_CA_3-1_2016.cer"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cert.Parse(caData)
	if err != nil {
		t.Fatal(err)
	}
	r = s.Validate(Input{Leaf: ca, Time: time.Date(2018, 7, 1, 0, 0, 0, 0, time.UTC)})
	if r.Indication != Indeterminate || r.SubIndication != SubNoCertificateChainFound {
		t.Errorf("CA 3-1: %s/%s", r.Indication, r.SubIndication)
	}
}

func certsFromP7MCorpus(t *testing.T, name string) []*cert.Certificate {
	return certsFromP7M(t, corpus.Path(t, "signatures", "cades", name))
}

// certsFromP7M extracts the certificates of a CMS file with the openssl CLI.
func certsFromP7M(t *testing.T, path string) []*cert.Certificate {
	t.Helper()
	out, err := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", path, "-print_certs").Output()
	if err != nil {
		t.Fatalf("openssl pkcs7: %v", err)
	}
	// -print_certs writes subject= lines before each block; cert.ParseAll
	// wants the input to start with the PEM header.
	if i := bytes.Index(out, []byte("-----BEGIN")); i > 0 {
		out = out[i:]
	}
	cs, err := cert.ParseAll(out)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestGermanQESFromTrustedList runs the real chain of a 2011 D-TRUST
// qualified certificate (secrypt plugtest signer) against the 2015 German
// trusted list: the issuing CA is a CA/QC service "undersupervision"
// (pre-eIDAS), the certificate carries QcCompliance.
func TestGermanQESFromTrustedList(t *testing.T) {
	tlData, err := os.ReadFile(corpus.Path(t, "signatures", "tl", "de-tl.xml"))
	if err != nil {
		t.Fatal(err)
	}
	_, sig, err := xmldsig.ParseAndVerify(tlData, xmldsig.Limits{}, xmldsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := trustedlist.Load(tlData, trustedlist.Config{SigningCertificates: []*cert.Certificate{sig.Signer}, AcceptedVersions: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore()
	if err := s.AddTrustedList(tl); err != nil {
		t.Fatal(err)
	}
	certs := certsFromP7M(t, corpus.Path(t, "signatures", "cades", "Signature-C-DE_CRY-3.p7m"))
	var leaf *cert.Certificate
	for _, c := range certs {
		if c.Subject.CommonName == "Matthias Schlede" {
			leaf = c
		}
	}
	at := time.Date(2014, 6, 1, 0, 0, 0, 0, time.UTC)
	r := s.Validate(Input{Leaf: leaf, Intermediates: certs, Time: at, RevocationOptional: true})
	if r.Indication != Passed {
		t.Fatalf("%s/%s %+v", r.Indication, r.SubIndication, r.Checks)
	}
	if got := subject(r.Chain[len(r.Chain)-1]); got != "D-TRUST Qualified CA 1 2008:PN" {
		t.Errorf("anchor %s", got)
	}
	// The certificate has QcCompliance but no QcSSCD and no QCP+ policy, and
	// the list's QCWithSSCD qualifier has criteria (keyCertSign=true) that
	// only a CA certificate meets, so the QSCD status is not established:
	// "QC for eSig", as DSS's rules give it, not QESig.
	q := r.Qualification
	if q.Final.Name != QCForESig || r.SignatureQualification(Passed) != AdESigQC ||
		r.SignatureQualification(Indeterminate) != "Indeterminate AdESig-QC" || r.SignatureQualification(Failed) != NotAdESQC {
		t.Errorf("qualification %+v / %s; %+v", q.Final, r.SignatureQualification(Passed), q.Checks)
	}
	// Without revocation data the chain is INDETERMINATE/TRY_LATER.
	r = s.Validate(Input{Leaf: leaf, Intermediates: certs, Time: at})
	if r.Indication != Indeterminate || r.SubIndication != SubTryLater {
		t.Errorf("without revocation: %s/%s", r.Indication, r.SubIndication)
	}
	// After expiry (2015-11-27) without proof of existence.
	r = s.Validate(Input{Leaf: leaf, Intermediates: certs, Time: time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), RevocationOptional: true})
	if r.SubIndication != SubOutOfBoundsNoPOE {
		t.Errorf("after expiry: %s/%s", r.Indication, r.SubIndication)
	}
}

func TestPlugtestChain(t *testing.T) {
	certs := certsFromP7M(t, corpus.Path(t, "signatures", "cades", "Signature-C-B-LTA-10.p7m"))
	s := NewStore()
	var leaf *cert.Certificate
	for _, c := range certs {
		switch c.Subject.CommonName {
		case "RootCAOK":
			s.AddCertificate(c, "p7m")
		case "Andrea Röck":
			leaf = c
		}
	}
	if leaf == nil || len(s.Anchors()) != 1 {
		t.Fatal("plugtest certificates not found")
	}
	at := leaf.NotBefore.Add(24 * time.Hour)
	r := s.Validate(Input{Leaf: leaf, Intermediates: certs, Time: at, RevocationOptional: true})
	if r.Indication != Passed || len(r.Chain) != 4 {
		t.Fatalf("%s/%s chain %d", r.Indication, r.SubIndication, len(r.Chain))
	}
	if r.SignatureQualification(Passed) != SigNA {
		t.Errorf("qualification without TL: %s", r.SignatureQualification(Passed))
	}
}
