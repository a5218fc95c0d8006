package xmldsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// Examples of the Exclusive XML Canonicalization recommendation, section 2.2.
const excSpecDoc = `<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>`

func TestC14NSubtree(t *testing.T) {
	doc, err := Parse([]byte(excSpecDoc), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	elem2 := doc.Root.Elements()[0]
	tests := []struct {
		name string
		c    C14N
		want string
	}{
		{"exclusive", C14N{Exclusive: true}, `<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>`},
		{"inclusive", C14N{}, `<n1:elem2 xmlns:n0="foo:bar" xmlns:n1="http://example.net" xmlns:n3="ftp://example.org" xml:lang="en"><n3:stuff></n3:stuff></n1:elem2>`},
		{"exclusive with prefix list", C14N{Exclusive: true, InclusivePrefixes: []string{"n0"}}, `<n1:elem2 xmlns:n0="foo:bar" xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>`},
		// Canonical XML 1.1 renders like 1.0 here: only xml:id and xml:base
		// are treated differently, and the sample has neither.
		{"inclusive 1.1", C14N{V11: true}, `<n1:elem2 xmlns:n0="foo:bar" xmlns:n1="http://example.net" xmlns:n3="ftp://example.org" xml:lang="en"><n3:stuff></n3:stuff></n1:elem2>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.c.Canonicalize(elem2, nil)); got != tc.want {
				t.Errorf("\ngot  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestC14NDocument(t *testing.T) {
	tests := []struct {
		name, in, want string
		c              C14N
	}{
		{"escaping and attribute order",
			"<?xml version=\"1.0\"?>\n<?pi  data?>\n<!--c--><a b=\"&quot;&#xA;&#9;\" a=\"&lt;&amp;>\" xmlns=\"urn:d\"><![CDATA[<x>&]]>\r\n&#xD;<e/></a>\n<!--c2-->",
			"<?pi data?>\n<a xmlns=\"urn:d\" a=\"&lt;&amp;>\" b=\"&quot;&#xA;&#x9;\">&lt;x&gt;&amp;\n&#xD;<e></e></a>", C14N{Exclusive: true}},
		{"comments kept", "<!--c--><a><!--in--></a><!--c2-->", "<!--c-->\n<a><!--in--></a>\n<!--c2-->", C14N{Comments: true}},
		{"default namespace undeclared", `<a xmlns="urn:x"><b xmlns=""><c/></b></a>`, `<a xmlns="urn:x"><b xmlns=""><c></c></b></a>`, C14N{Exclusive: true}},
		{"unused prefix dropped", `<a xmlns:p="urn:p" xmlns:q="urn:q" q:at="1"><p:b/></a>`, `<a xmlns:q="urn:q" q:at="1"><p:b xmlns:p="urn:p"></p:b></a>`, C14N{Exclusive: true}},
		{"inclusive keeps unused", `<a xmlns:p="urn:p"><b/></a>`, `<a xmlns:p="urn:p"><b></b></a>`, C14N{}},
		{"attributes by namespace URI", `<a xmlns:z="urn:a" xmlns:b="urn:b" b:x="1" z:y="2" c="3"/>`, `<a xmlns:b="urn:b" xmlns:z="urn:a" c="3" z:y="2" b:x="1"></a>`, C14N{Exclusive: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Parse([]byte(tc.in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(tc.c.CanonicalizeDocument(doc, nil)); got != tc.want {
				t.Errorf("\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// testSigner makes enveloped signatures over generated documents, so that
// wrapping variants can be built whose signature value is genuinely valid.
type testSigner struct {
	key  crypto.Signer
	cert *cert.Certificate
	der  []byte
	alg  string
}

func newTestSigner(t *testing.T, ec bool) *testSigner {
	t.Helper()
	var key crypto.Signer
	alg := "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	var err error
	if ec {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		alg = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TL signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{key: key, cert: c, der: der, alg: alg}
}

// sign fills the signature template in doc: the placeholders DIGEST and
// SIGVALUE. digestOf names the element whose canonical form (minus the
// signature) is digested: "" for the document.
func (s *testSigner) sign(t *testing.T, tmpl, digestID string) string {
	t.Helper()
	tmpl = strings.ReplaceAll(tmpl, "{{CERT}}", base64.StdEncoding.EncodeToString(s.der))
	tmpl = strings.ReplaceAll(tmpl, "{{ALG}}", s.alg)
	doc, err := Parse([]byte(tmpl), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := findSignature(doc)
	if err != nil {
		// wrapping variants put the signature deeper; search for it
		sig = findDeep(doc.Root, "Signature")
	}
	c := C14N{Exclusive: true}
	var octets []byte
	if digestID == "" {
		octets = c.CanonicalizeDocument(doc, sig)
	} else {
		target, err := doc.ElementByID(digestID)
		if err != nil {
			t.Fatal(err)
		}
		octets = c.Canonicalize(target, sig)
	}
	h := crypto.SHA256.New()
	h.Write(octets)
	tmpl = strings.Replace(tmpl, "{{DIGEST}}", base64.StdEncoding.EncodeToString(h.Sum(nil)), 1)
	doc, err = Parse([]byte(tmpl), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	si := findDeep(doc.Root, "SignedInfo")
	digest := crypto.SHA256.New()
	digest.Write(c.Canonicalize(si, nil))
	var value []byte
	if k, ok := s.key.(*ecdsa.PrivateKey); ok {
		r, ss, err := ecdsa.Sign(rand.Reader, k, digest.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		value = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	} else {
		value, err = s.key.Sign(rand.Reader, digest.Sum(nil), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
	}
	return strings.Replace(tmpl, "{{SIGVALUE}}", base64.StdEncoding.EncodeToString(value), 1)
}

func findDeep(e *Element, local string) *Element {
	if e.Is(NamespaceDSig, local) {
		return e
	}
	for _, c := range e.Elements() {
		if f := findDeep(c, local); f != nil {
			return f
		}
	}
	return nil
}

const sigTmpl = `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{{ALG}}"/><ds:Reference URI="{{REFURI}}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>{{DIGEST}}</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>{{SIGVALUE}}</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{{CERT}}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`

func withRef(uri string) string { return strings.Replace(sigTmpl, "{{REFURI}}", uri, 1) }

func TestGeneratedSignatures(t *testing.T) {
	for _, ec := range []bool{false, true} {
		s := newTestSigner(t, ec)
		valid := s.sign(t, `<TSL xmlns="urn:tsl" Id="tsl"><Name>Genuine</Name>`+withRef("")+`</TSL>`, "")
		if _, sig, err := ParseAndVerify([]byte(valid), Limits{}, Options{}); err != nil || !sig.Signer.Equal(s.cert) {
			t.Fatalf("ec=%v valid: %v", ec, err)
		}
		byID := s.sign(t, `<TSL xmlns="urn:tsl" Id="tsl"><Name>Genuine</Name>`+withRef("#tsl")+`</TSL>`, "tsl")
		if _, _, err := ParseAndVerify([]byte(byID), Limits{}, Options{}); err != nil {
			t.Fatalf("ec=%v by id: %v", ec, err)
		}
		other := newTestSigner(t, ec)
		if _, _, err := ParseAndVerify([]byte(valid), Limits{}, Options{Candidates: []*cert.Certificate{other.cert}}); !errors.Is(err, ErrSignature) {
			t.Errorf("ec=%v other key: %v", ec, err)
		}
		tampered := strings.Replace(valid, "Genuine", "Genuinf", 1)
		if _, _, err := ParseAndVerify([]byte(tampered), Limits{}, Options{}); !errors.Is(err, ErrDigest) {
			t.Errorf("ec=%v tampered: %v", ec, err)
		}
	}
}

func TestGeneratedWrappingAttacks(t *testing.T) {
	s := newTestSigner(t, false)
	// The signed list is wrapped under a new root with attacker content.
	wrapped := s.sign(t, `<TSL xmlns="urn:tsl"><Name>Evil</Name><TSL Id="orig"><Name>Genuine</Name></TSL>`+withRef("#orig")+`</TSL>`, "orig")
	if _, _, err := ParseAndVerify([]byte(wrapped), Limits{}, Options{}); !errors.Is(err, ErrSignedDataNotFound) {
		t.Errorf("wrapped: %v", err)
	}
	// A second element claims the signed id.
	dup := s.sign(t, `<TSL xmlns="urn:tsl" Id="tsl"><Name>Genuine</Name>`+withRef("#tsl")+`</TSL>`, "tsl")
	dup = strings.Replace(dup, "<Name>Genuine</Name>", `<Name>Genuine</Name><X Id="tsl"/>`, 1)
	if _, _, err := ParseAndVerify([]byte(dup), Limits{}, Options{}); !errors.Is(err, ErrSignedDataNotFound) {
		t.Errorf("duplicate id: %v", err)
	}
	// The signature moved into a child element is not the list's signature.
	valid := s.sign(t, `<TSL xmlns="urn:tsl"><Name>Genuine</Name>`+withRef("")+`</TSL>`, "")
	i := strings.Index(valid, "<ds:Signature")
	moved := valid[:i] + "<Ext>" + strings.TrimSuffix(valid[i:], "</TSL>") + "</Ext></TSL>"
	if _, _, err := ParseAndVerify([]byte(moved), Limits{}, Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("moved: %v", err)
	}
	// Two signatures: ambiguous.
	twice := strings.Replace(valid, "</TSL>", valid[i:len(valid)-len("</TSL>")]+"</TSL>", 1)
	if _, _, err := ParseAndVerify([]byte(twice), Limits{}, Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("two signatures: %v", err)
	}
}

// TestC14N11XMLAttributes: at a subtree apex Canonical XML 1.0 inherits
// every xml:* attribute of the ancestors, 1.1 leaves out xml:id (and
// xml:base, whose fix-up we do not do).
func TestC14N11XMLAttributes(t *testing.T) {
	doc, err := Parse([]byte(`<a xml:id="top" xml:lang="de" xml:space="preserve"><b Id="x">t</b></a>`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	b := doc.Root.Elements()[0]
	if got, want := string(C14N{}.Canonicalize(b, nil)), `<b Id="x" xml:id="top" xml:lang="de" xml:space="preserve">t</b>`; got != want {
		t.Errorf("1.0:\ngot  %s\nwant %s", got, want)
	}
	if got, want := string(C14N{V11: true}.Canonicalize(b, nil)), `<b Id="x" xml:lang="de" xml:space="preserve">t</b>`; got != want {
		t.Errorf("1.1:\ngot  %s\nwant %s", got, want)
	}
}
