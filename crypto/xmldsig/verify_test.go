package xmldsig

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/internal/corpus"
)

func readCorpus(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, append([]string{"signatures"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gematikSigner(t testing.TB) *cert.Certificate {
	t.Helper()
	cs, err := cert.ParseAll(readCorpus(t, "tl", "gematik-TSL-Signing-Unit-4.pem"))
	if err != nil || len(cs) != 1 {
		t.Fatalf("gematik signer: %v", err)
	}
	return cs[0]
}

func TestVerifyRealTrustedLists(t *testing.T) {
	tests := []struct {
		name   string
		path   []string
		alg    string
		signer string
	}{
		{"de-tl v4 RSA", []string{"tl", "de-tl.xml"}, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "14R-TSL 1:PN"},
		{"eu-lotl v5 RSA", []string{"tl", "eu-lotl.xml"}, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "Patrick Kremer (Signature)"},
		{"gematik brainpool", []string{"xades", "xades-ecc-brainpool.xml"}, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256", "TSL Signing Unit 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, sig, err := ParseAndVerify(readCorpus(t, tc.path...), Limits{}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if sig.Algorithm != tc.alg || sig.Signer.Subject.CommonName != tc.signer {
				t.Errorf("algorithm %s signer %q", sig.Algorithm, sig.Signer.Subject.CommonName)
			}
			if len(sig.References) != 2 || !sig.References[0].CoversDocument || sig.References[1].Type != TypeSignedProps {
				t.Errorf("references %+v", sig.References)
			}
		})
	}
}

func TestVerifyGematikWithConfiguredSigner(t *testing.T) {
	signer := gematikSigner(t)
	_, sig, err := ParseAndVerify(readCorpus(t, "xades", "xades-ecc-brainpool.xml"), Limits{}, Options{Candidates: []*cert.Certificate{signer}})
	if err != nil {
		t.Fatal(err)
	}
	if !sig.Signer.Equal(signer) || sig.SigAlg.Name() == "" || sig.SigningTime.IsZero() {
		t.Errorf("signer %v alg %s time %v", sig.Signer, sig.SigAlg.Name(), sig.SigningTime)
	}
	// The LOTL signer's key must not verify the gematik list.
	_, lotlSig, err := ParseAndVerify(readCorpus(t, "tl", "eu-lotl.xml"), Limits{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ParseAndVerify(readCorpus(t, "xades", "xades-ecc-brainpool.xml"), Limits{}, Options{Candidates: []*cert.Certificate{lotlSig.Signer}})
	if !errors.Is(err, ErrSignature) {
		t.Errorf("foreign key: got %v, want ErrSignature", err)
	}
}

func TestTamperedTrustedList(t *testing.T) {
	data := readCorpus(t, "tl", "eu-lotl.xml")
	i := bytes.Index(data, []byte("European Commission"))
	if i < 0 {
		t.Fatal("marker not found")
	}
	tampered := bytes.Clone(data)
	tampered[i] = 'e'
	_, _, err := ParseAndVerify(tampered, Limits{}, Options{})
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("tampered name: got %v, want ErrDigest", err)
	}
	// Tampering inside SignedInfo breaks the signature value instead.
	j := bytes.Index(data, []byte(`Id="xml_ref_id"`))
	tampered = bytes.Clone(data)
	copy(tampered[j:], `Id="xml_ref_iD"`)
	_, _, err = ParseAndVerify(tampered, Limits{}, Options{})
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered SignedInfo: got %v, want ErrSignature", err)
	}
}

func TestHostileXML(t *testing.T) {
	_, err := Parse(readCorpus(t, "xades", "xades-with-dtd-injection.xml"), Limits{})
	if !errors.Is(err, ErrDTD) {
		t.Errorf("DTD: got %v", err)
	}
	tests := []struct {
		name string
		doc  string
		lim  Limits
		want string
	}{
		{"billion laughs", `<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>`, Limits{}, "document type"},
		{"undefined entity", `<a>&x;</a>`, Limits{}, "invalid character entity"},
		{"too deep", strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70), Limits{}, "nested deeper"},
		{"too big", `<a>` + strings.Repeat("x", 100) + `</a>`, Limits{MaxBytes: 50}, "byte limit"},
		{"too many nodes", `<a>` + strings.Repeat("<b/>", 20) + `</a>`, Limits{MaxNodes: 10}, "nodes"},
		{"undeclared prefix", `<p:a/>`, Limits{}, "undeclared prefix"},
		{"mismatched end", `<a></b>`, Limits{}, "unexpected end element"},
		{"duplicate attribute via prefixes", `<a xmlns:p="u" xmlns:q="u" p:x="1" q:x="2"/>`, Limits{}, "duplicate attribute"},
		{"two roots", `<a/><b/>`, Limits{}, "second document element"},
		{"text after root", `<a/>x`, Limits{}, "text outside"},
		{"unclosed", `<a><b>`, Limits{}, "not closed"},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, Limits{}, "CharsetReader is nil"},
		{"huge attribute", `<a b="` + strings.Repeat("x", 70<<10) + `"/>`, Limits{}, "more than 65536"},
		{"external entity", `<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>`, Limits{}, "document type"},
		{"parameter entity", `<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1/x">%p;]><a/>`, Limits{}, "document type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// The XSW samples are XAdES, not trusted lists, but each wraps or moves
// signed content; none may pass as a signature over its document element.
func TestSignatureWrapping(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		// The signed subtree #TLISK-102 was moved under a new document element.
		{"XSW-enveloped-fake-content.xml", ErrSignedDataNotFound},
		// Needs an XPath transform, which we do not implement.
		{"XSW-enveloped-fake-signedProperties.xml", ErrFormat},
		// Enveloping signatures: the signature is the document element.
		{"XSW-enveloping-fake-manifest.xml", ErrFormat},
		{"XSW-enveloping-fake-object.xml", ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseAndVerify(readCorpus(t, "xades", "xsw", tc.name), Limits{}, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDuplicateIDIsAmbiguous(t *testing.T) {
	doc, err := Parse([]byte(`<a Id="x"><b Id="x"/></a>`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.ElementByID("x"); err == nil {
		t.Fatal("duplicate id resolved")
	}
}
