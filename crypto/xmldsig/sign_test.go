package xmldsig_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func selfSigned(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "xmldsig sign test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type signCase struct {
	name   string
	key    func(t testing.TB) crypto.Signer
	method string
}

func signCases() []signCase {
	ec := func(c elliptic.Curve) func(testing.TB) crypto.Signer {
		return func(t testing.TB) crypto.Signer {
			k, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
	}
	rsaK := func(t testing.TB) crypto.Signer { return testRSAKey(t) }
	return []signCase{
		{"rsa-sha256", rsaK, xmldsig.AlgRSASHA256},
		{"rsa-sha512", rsaK, xmldsig.AlgRSASHA512},
		{"rsa-pss-sha256", rsaK, xmldsig.AlgRSAPSSSHA256},
		{"rsa-pss-sha512", rsaK, xmldsig.AlgRSAPSSSHA512},
		{"ecdsa-p256", ec(elliptic.P256()), xmldsig.AlgECDSASHA256},
		{"ecdsa-p384", ec(elliptic.P384()), xmldsig.AlgECDSASHA384},
		{"ecdsa-p384-default", ec(elliptic.P384()), ""},
	}
}

const soapDocument = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:osci="http://www.osci.de/2002/04/osci"><soap:Header><osci:ControlBlock Id="controlblock" ConversationId="c1"/><osci:ClientSignature Id="clientsignature"/></soap:Header>
<soap:Body Id="body"><osci:storeDelivery>inhalt &amp; mehr</osci:storeDelivery></soap:Body></soap:Envelope>`

// TestSignVerifies signs same-document and external references with every
// method and wants VerifySignature to find the signature intact, and
// broken after the signed data changes.
func TestSignVerifies(t *testing.T) {
	attachment := bytes.Repeat([]byte("Anlage "), 10000)
	resolver := func(_ context.Context, uri string) (io.ReadCloser, error) {
		if uri != "cid:attachment-1" {
			return nil, errors.New("unknown part")
		}
		return io.NopCloser(bytes.NewReader(attachment)), nil
	}
	for _, c := range signCases() {
		for _, c14n := range []string{xmldsig.AlgExcC14N, xmldsig.AlgC14N10} {
			t.Run(c.name+"/"+c14n[strings.LastIndex(c14n, "/")+1:], func(t *testing.T) {
				key := c.key(t)
				certDER := selfSigned(t, key)
				out, err := xmldsig.Sign(context.Background(), []byte(soapDocument), xmldsig.SignOptions{
					Signer: key, Method: c.method, C14N: c14n, Certificates: [][]byte{certDER}, ID: "sig-client",
					References: []xmldsig.SignReference{{URI: "#body"}, {URI: "#controlblock", Digest: crypto.SHA512}, {URI: "cid:attachment-1"}},
					Parent:     func(d *xmldsig.Document) (*xmldsig.Element, error) { return d.ElementByID("clientsignature") },
					Resolver:   resolver,
				})
				if err != nil {
					t.Fatal(err)
				}
				det := detachedMap(map[string][]byte{"cid:attachment-1": attachment})
				res := verifyOne(t, out, xmldsig.SignatureOptions{Detached: det})
				if !res.Intact() {
					t.Fatalf("not intact: format %v value %v refs %+v\n%s", res.FormatErr, res.ValueErr, res.References, out)
				}
				if c.method != "" && res.Algorithm != c.method {
					t.Errorf("method %s, want %s", res.Algorithm, c.method)
				}
				if !bytes.HasPrefix(out, []byte(soapDocument[:strings.Index(soapDocument, "<osci:ClientSignature")])) {
					t.Error("the bytes before the signature changed")
				}
				tampered := bytes.Replace(out, []byte("inhalt &amp; mehr"), []byte("inhalt &amp; weniger"), 1)
				if res := verifyOne(t, tampered, xmldsig.SignatureOptions{Detached: det}); res.Intact() || res.References[0].Status != xmldsig.RefDigestMismatch {
					t.Fatalf("tampered body verified: %+v", res.References)
				}
				det2 := detachedMap(map[string][]byte{"cid:attachment-1": attachment[1:]})
				if res := verifyOne(t, out, xmldsig.SignatureOptions{Detached: det2}); res.Intact() || res.References[2].Status != xmldsig.RefDigestMismatch {
					t.Fatalf("changed attachment verified: %+v", res.References)
				}
			})
		}
	}
}

// TestSignEnvelopedAndEnveloping covers the document reference with the
// automatic enveloped-signature transform, a self-closing parent and a
// signature over its own ds:Object.
func TestSignEnvelopedAndEnveloping(t *testing.T) {
	key := testRSAKey(t)
	certDER := selfSigned(t, key)
	ctx := context.Background()
	for _, doc := range []string{testDocument, `<a xmlns="urn:x"><b/></a>`, `<a/>`} {
		out, err := xmldsig.Sign(ctx, []byte(doc), xmldsig.SignOptions{Signer: key, Certificates: [][]byte{certDER},
			References: []xmldsig.SignReference{{URI: ""}}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := xmldsig.Parse(out, xmldsig.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		sig, err := xmldsig.Verify(d, xmldsig.Options{})
		if err != nil {
			t.Fatalf("%s: %v\n%s", doc, err, out)
		}
		if got := sig.References[0].Transforms; len(got) != 2 || got[0] != xmldsig.TransformEnveloped {
			t.Errorf("transforms %v", got)
		}
	}
	out, err := xmldsig.Sign(ctx, nil, xmldsig.SignOptions{Signer: key, Certificates: [][]byte{certDER}, ID: "s",
		References: []xmldsig.SignReference{{URI: "#obj", Type: xmldsig.TypeObject}},
		Objects:    []xmldsig.SignObject{{ID: "obj", Content: []byte(`<daten xmlns="urn:d">42</daten>`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := verifyOne(t, out, xmldsig.SignatureOptions{}); !res.Intact() || res.References[0].Kind != xmldsig.RefObject {
		t.Fatalf("enveloping: %+v %v %v\n%s", res.References, res.FormatErr, res.ValueErr, out)
	}
}

// TestSignRefuses wants clear errors for what cannot be signed.
func TestSignRefuses(t *testing.T) {
	key := testRSAKey(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	cases := []struct {
		name string
		doc  string
		opts xmldsig.SignOptions
		want string
	}{
		{"no signer", testDocument, xmldsig.SignOptions{References: []xmldsig.SignReference{{URI: ""}}}, "no signer"},
		{"no references", testDocument, xmldsig.SignOptions{Signer: key}, "references"},
		{"missing id", testDocument, xmldsig.SignOptions{Signer: key, References: []xmldsig.SignReference{{URI: "#nope"}}}, "no element"},
		{"method for other key", testDocument, xmldsig.SignOptions{Signer: ec, Method: xmldsig.AlgRSASHA256, References: []xmldsig.SignReference{{URI: ""}}}, "does not fit"},
		{"sha1", testDocument, xmldsig.SignOptions{Signer: key, Method: "http://www.w3.org/2000/09/xmldsig#rsa-sha1", References: []xmldsig.SignReference{{URI: ""}}}, "unsupported"},
		{"no resolver", testDocument, xmldsig.SignOptions{Signer: key, References: []xmldsig.SignReference{{URI: "cid:x"}}}, "no resolver"},
		{"bad document", "<a>", xmldsig.SignOptions{Signer: key, References: []xmldsig.SignReference{{URI: ""}}}, "parse"},
		{"xpath transform", testDocument, xmldsig.SignOptions{Signer: key, References: []xmldsig.SignReference{{URI: "", Transforms: []string{"http://www.w3.org/TR/1999/REC-xpath-19991116"}}}}, "unsupported transform"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := xmldsig.Sign(ctx, []byte(c.doc), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestSignOracles has xmlsec1 verify our signatures (every method it
// knows, exclusive and inclusive c14n, an Id reference and an enveloped
// document reference) and openssl verify the RSA-PSS values, which
// xmlsec1 1.2 lacks, over the canonical SignedInfo.
func TestSignOracles(t *testing.T) {
	xmlsec := oracleTool(t, "xmlsec1")
	openssl := oracleTool(t, "openssl")
	dir := t.TempDir()
	const doc = `<?xml version="1.0" encoding="UTF-8"?>
<Nachricht xmlns="urn:example:nachricht" xmlns:p="urn:example:p"><Kopf Id="kopf"><p:Az>7 K 12/26</p:Az></Kopf><Inhalt>Text</Inhalt></Nachricht>`
	for _, c := range signCases() {
		for _, c14n := range []string{xmldsig.AlgExcC14N, xmldsig.AlgC14N10} {
			name := c.name + "/" + c14n[strings.LastIndex(c14n, "/")+1:]
			t.Run(name, func(t *testing.T) {
				key := c.key(t)
				certDER := selfSigned(t, key)
				out, err := xmldsig.Sign(context.Background(), []byte(doc), xmldsig.SignOptions{Signer: key, Method: c.method, C14N: c14n,
					Certificates: [][]byte{certDER}, References: []xmldsig.SignReference{{URI: "#kopf"}, {URI: ""}}})
				if err != nil {
					t.Fatal(err)
				}
				certPEM := filepath.Join(dir, "cert.pem")
				writeFile(t, certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))
				signed := filepath.Join(dir, "signed.xml")
				writeFile(t, signed, out)
				if strings.Contains(c.method, "MGF1") {
					res := verifyOne(t, out, xmldsig.SignatureOptions{})
					writeFile(t, filepath.Join(dir, "si"), res.SignedInfo)
					writeFile(t, filepath.Join(dir, "sig"), res.SignatureValue)
					md := "sha256"
					if strings.Contains(c.method, "sha512") {
						md = "sha512"
					}
					runTool(t, dir, openssl, "x509", "-in", certPEM, "-pubkey", "-noout", "-out", "pub.pem")
					runTool(t, dir, openssl, "dgst", "-"+md, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1",
						"-verify", "pub.pem", "-signature", "sig", "si")
					return
				}
				runTool(t, dir, xmlsec, "--verify", "--pubkey-cert-pem", certPEM, "--id-attr:Id", "urn:example:nachricht:Kopf", signed)
				// xmlsec1 must also see a change.
				writeFile(t, signed, bytes.Replace(out, []byte("7 K 12/26"), []byte("7 K 13/26"), 1))
				if err := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certPEM, "--id-attr:Id", "urn:example:nachricht:Kopf", signed).Run(); err == nil {
					t.Fatal("xmlsec1 verified a changed document")
				}
			})
		}
	}
}

func oracleTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run test/setup.sh", name)
	}
	return p
}

func runTool(t testing.TB, dir, tool string, args ...string) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
