package xmldsig_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmldsig/xmldsigtest"
	"github.com/poststelle/poststelle/internal/corpus"
)

const testDocument = `<?xml version="1.0" encoding="UTF-8"?>
<antrag xmlns="urn:example:antrag" xmlns:x="urn:example:extra" Id="root-1">
  <!-- a comment the digest must not see -->
  <x:feld name="Az">63-2026-117</x:feld>
  <text xml:lang="de">Guten Tag &amp; danke</text>
</antrag>`

func verifyOne(t *testing.T, data []byte, opts xmldsig.SignatureOptions) *xmldsig.Result {
	t.Helper()
	doc, err := xmldsig.Parse(data, xmldsig.Limits{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	sigs, err := xmldsig.FindSignatures(doc)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("%d signatures: %v", len(sigs), err)
	}
	return xmldsig.VerifySignature(context.Background(), doc, sigs[0], opts)
}

func detachedMap(m map[string][]byte) xmldsig.Detached {
	return func(uri string) ([]byte, bool) {
		b, ok := m[uri]
		return b, ok
	}
}

// TestGeneratedMatrix signs every shape with every key type and
// canonicalization (values by openssl) and wants them verified, with the
// signing certificate property matching, and broken after a change.
func TestGeneratedMatrix(t *testing.T) {
	content := []byte("Antrag auf Baugenehmigung\n")
	c14ns := []string{xmldsig.AlgExcC14N, xmldsig.AlgExcC14NWithComments, xmldsig.AlgC14N10, xmldsig.AlgC14N10WithComments, xmldsig.AlgC14N11}
	for _, kt := range []string{"rsa", "rsa-pss", "p256", "brainpoolP256r1"} {
		k := xmldsigtest.NewKey(t, kt)
		for _, shape := range []string{xmldsigtest.Enveloped, xmldsigtest.Enveloping, xmldsigtest.Detached} {
			for _, c := range c14ns {
				name := kt + "/" + shape + "/" + c[strings.LastIndex(c, "/")+1:]
				t.Run(name, func(t *testing.T) {
					data := xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: shape, C14N: c, Document: testDocument, Content: content, XAdES: true, SigningTime: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)})
					det := detachedMap(map[string][]byte{"document.txt": content})
					res := verifyOne(t, data, xmldsig.SignatureOptions{Detached: det})
					if !res.Intact() {
						t.Fatalf("not intact: format %v value %v refs %+v", res.FormatErr, res.ValueErr, res.References)
					}
					if res.XAdES == nil || !res.XAdES.SignedPropertiesReferenced || res.XAdES.MatchSigningCertificate(res.Signer) != nil {
						t.Fatalf("XAdES properties not recognised: %+v", res.XAdES)
					}
					if got := res.XAdES.SigningTime; !got.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
						t.Errorf("signing time %v", got)
					}
					wantKind := map[string]xmldsig.RefKind{xmldsigtest.Enveloped: xmldsig.RefDocument, xmldsigtest.Enveloping: xmldsig.RefObject, xmldsigtest.Detached: xmldsig.RefDetached}[shape]
					if k := res.References[0].Kind; k != wantKind {
						t.Errorf("reference kind %s, want %s", k, wantKind)
					}
					// The same signature over other content.
					var tampered []byte
					switch shape {
					case xmldsigtest.Enveloped:
						tampered = bytes.Replace(data, []byte("63-2026-117"), []byte("63-2026-118"), 1)
					case xmldsigtest.Enveloping:
						tampered = bytes.Replace(data, []byte(`<ds:Object Id="obj-1">Q`), []byte(`<ds:Object Id="obj-1">R`), 1)
					default:
						det = detachedMap(map[string][]byte{"document.txt": append(bytes.Clone(content), '!')})
						tampered = data
					}
					res = verifyOne(t, tampered, xmldsig.SignatureOptions{Detached: det})
					if res.Intact() || res.References[0].Status != xmldsig.RefDigestMismatch {
						t.Errorf("tampered content: reference %s", res.References[0].Status)
					}
				})
			}
		}
	}
}

// TestCommentsOutsideDigest: a comment added to an enveloped document does
// not change the same-document digest, even with a #WithComments method.
func TestCommentsOutsideDigest(t *testing.T) {
	k := xmldsigtest.NewKey(t, "p256")
	data := xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: xmldsigtest.Enveloped, C14N: xmldsig.AlgExcC14NWithComments, Document: testDocument})
	data = bytes.Replace(data, []byte("<text"), []byte("<!-- added later --><text"), 1)
	if res := verifyOne(t, data, xmldsig.SignatureOptions{}); !res.Intact() {
		t.Fatalf("comment changed the node set: %+v", res.References)
	}
}

func TestSignatureValueTampered(t *testing.T) {
	k := xmldsigtest.NewKey(t, "rsa")
	data := xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: xmldsigtest.Enveloped, Document: testDocument, XAdES: true})
	// Change the signing time: SignedProperties digest breaks.
	now := time.Now().UTC().Format("2006")
	changed := bytes.Replace(data, []byte("<xades:SigningTime>"+now), []byte("<xades:SigningTime>1999"), 1)
	res := verifyOne(t, changed, xmldsig.SignatureOptions{})
	if res.References[1].Status != xmldsig.RefDigestMismatch {
		t.Errorf("changed SignedProperties: %s", res.References[1].Status)
	}
	// Change SignedInfo (an attribute the references do not use): the value breaks.
	changed = bytes.Replace(data, []byte(`Id="ref-1"`), []byte(`Id="ref-X"`), 1)
	res = verifyOne(t, changed, xmldsig.SignatureOptions{})
	if !errors.Is(res.ValueErr, xmldsig.ErrSignature) {
		t.Errorf("changed SignedInfo: value error %v", res.ValueErr)
	}
}

// TestStrictReferences covers the reference rules that stop signature
// wrapping: where an Id may point and which transforms are refused.
func TestStrictReferences(t *testing.T) {
	k := xmldsigtest.NewKey(t, "p256")
	enveloping := string(xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: xmldsigtest.Enveloping, Content: []byte("Inhalt"), XAdES: true}))
	enveloped := string(xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: xmldsigtest.Enveloped, Document: testDocument, XAdES: true}))
	tests := []struct {
		name, doc string
		ref       int
		want      xmldsig.RefStatus
		errPart   string
	}{
		{"duplicate object id", strings.Replace(enveloping, "</ds:Signature>", `<ds:Object Id="obj-1">RmFsc2No</ds:Object></ds:Signature>`, 1), 0, xmldsig.RefNotFound, "not unique"},
		{"object nested in another object", strings.Replace(strings.Replace(enveloping, `<ds:Object Id="obj-1">`, `<ds:Object><ds:Object Id="obj-1">`, 1), "</ds:Object>", "</ds:Object></ds:Object>", 1), 0, xmldsig.RefNotFound, "inside <ds:Object>"},
		{"second SignedProperties outside QualifyingProperties", strings.Replace(strings.Replace(enveloping, `Id="xades-sig-1"`, `Id="xades-real"`, 1), "</ds:Signature>", `<ds:Object><xades:SignedProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Id="xades-sig-1"/></ds:Object></ds:Signature>`, 1), 1, xmldsig.RefNotFound, "not the SignedProperties"},
		{"xpath transform", strings.Replace(enveloped, `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>`, `<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>not(ancestor-or-self::ds:Signature)</ds:XPath></ds:Transform>`, 1), 0, xmldsig.RefNotFound, "unsupported transform"},
		{"xpointer", strings.Replace(enveloped, `URI=""`, `URI="#xpointer(/)"`, 1), 0, xmldsig.RefNotFound, "unsupported reference URI"},
		{"missing detached content", strings.Replace(enveloping, `URI="#obj-1"`, `URI="other.txt"`, 1), 0, xmldsig.RefNotFound, "not supplied"},
		{"manifest", strings.Replace(enveloping, `<ds:Object Id="obj-1">SW5oYWx0</ds:Object>`, `<ds:Object><ds:Manifest Id="obj-1"/></ds:Object>`, 1), 0, xmldsig.RefNotFound, "ds:Manifest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.doc == enveloping || tc.doc == enveloped {
				t.Fatal("the test case did not change the document")
			}
			res := verifyOne(t, []byte(tc.doc), xmldsig.SignatureOptions{})
			if res.FormatErr != nil {
				t.Fatalf("format error %v", res.FormatErr)
			}
			r := res.References[tc.ref]
			if r.Status != tc.want || r.Err == nil || !strings.Contains(r.Err.Error(), tc.errPart) {
				t.Errorf("reference %d: %s %v, want %s containing %q", tc.ref+1, r.Status, r.Err, tc.want, tc.errPart)
			}
			if res.Intact() {
				t.Error("intact")
			}
		})
	}
}

// TestCorpus pins the outcome of every XAdES sample of the corpus
// (produced by DSS and the ETSI plugtests) reference by reference.
func TestCorpus(t *testing.T) {
	tests := []struct {
		file   string
		refs   []xmldsig.RefStatus
		intact bool
		value  bool // the value verified
		level  string
	}{
		{"dss-signed.xml", []xmldsig.RefStatus{"ok", "ok"}, true, true, "B"},
		{"dss-signed-altered-refRemoved.xml", []xmldsig.RefStatus{"ok"}, false, false, "B"},
		{"dss-signed-altered-signedPropsRemoved.xml", []xmldsig.RefStatus{"ok"}, false, false, "B"},
		{"xades-ecc-brainpool.xml", []xmldsig.RefStatus{"ok", "ok"}, true, true, "B"},
		{"xades-lta-valid.xml", []xmldsig.RefStatus{"ok", "ok"}, true, true, "LTA"},
		{"xades-tampered-keyinfo.xml", []xmldsig.RefStatus{"not-found", "ok"}, false, false, "B"},
		{"xades-tampered-reference.xml", []xmldsig.RefStatus{"digest-mismatch", "digest-mismatch"}, false, false, "B"},
		{"xades-wrong-sign-cert-digest.xml", []xmldsig.RefStatus{"ok", "ok"}, true, true, "B"},
		{"xsw/XSW-enveloped-fake-content.xml", []xmldsig.RefStatus{"not-found", "ok"}, false, true, "B"},
		{"xsw/XSW-enveloped-fake-signedProperties.xml", []xmldsig.RefStatus{"not-found", "not-found"}, false, true, "B"},
		{"xsw/XSW-enveloping-fake-manifest.xml", []xmldsig.RefStatus{"not-found", "ok"}, false, true, "B"},
		{"xsw/XSW-enveloping-fake-object.xml", []xmldsig.RefStatus{"not-found", "ok"}, false, true, "B"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(corpus.Path(t, "signatures", "xades", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res := verifyOne(t, data, xmldsig.SignatureOptions{})
			if res.FormatErr != nil {
				t.Fatalf("format: %v", res.FormatErr)
			}
			var got []xmldsig.RefStatus
			for _, r := range res.References {
				got = append(got, r.Status)
			}
			if strings.Join(statusStrings(got), ",") != strings.Join(statusStrings(tc.refs), ",") {
				t.Errorf("references %v, want %v", got, tc.refs)
			}
			if res.Intact() != tc.intact || (res.ValueErr == nil) != tc.value {
				t.Errorf("intact %v value error %v", res.Intact(), res.ValueErr)
			}
			if res.XAdES == nil || res.XAdES.Level() != tc.level {
				t.Errorf("XAdES level wrong: %+v", res.XAdES)
			}
		})
	}
}

func statusStrings(s []xmldsig.RefStatus) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

// TestWrongSigningCertificateDigest: the DSS sample whose
// SigningCertificateV2 digest names another certificate.
func TestWrongSigningCertificateDigest(t *testing.T) {
	data, err := os.ReadFile(corpus.Path(t, "signatures", "xades", "xades-wrong-sign-cert-digest.xml"))
	if err != nil {
		t.Fatal(err)
	}
	res := verifyOne(t, data, xmldsig.SignatureOptions{})
	if err := res.XAdES.MatchSigningCertificate(res.Signer); !errors.Is(err, xmldsig.ErrNoKey) {
		t.Errorf("match: %v", err)
	}
}

func TestDTDRefused(t *testing.T) {
	data, err := os.ReadFile(corpus.Path(t, "signatures", "xades", "xades-with-dtd-injection.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xmldsig.Parse(data, xmldsig.Limits{}); !errors.Is(err, xmldsig.ErrDTD) {
		t.Errorf("parse: %v", err)
	}
}
