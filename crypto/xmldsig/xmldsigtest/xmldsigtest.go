// Package xmldsigtest makes XML signatures (XML-DSig and XAdES-B/T) for
// tests of crypto/xmldsig, crypto/verify and crypto/asic. The signature
// values come from the openssl command line tool, so the key handling and
// the padding are not ours; the documents are assembled from text
// templates and the digests computed over this package's canonical forms.
package xmldsigtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Signature method URIs the signer supports.
const (
	RSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	RSAPSS256   = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	ECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	sha256URI   = "http://www.w3.org/2001/04/xmlenc#sha256"
)

// Key is a signing key and its certificate, as files for openssl.
type Key struct {
	KeyFile  string
	CertFile string
	CertDER  []byte
	// Method is the signature method the key signs with.
	Method string
}

// NewKey makes a self-signed key of type "rsa", "rsa-pss" (an RSA key
// signing with PSS), "p256" or "brainpoolP256r1".
func NewKey(t testing.TB, keyType string) *Key {
	t.Helper()
	dir := t.TempDir()
	k := &Key{KeyFile: filepath.Join(dir, "key.pem"), CertFile: filepath.Join(dir, "cert.pem")}
	var newkey []string
	switch keyType {
	case "rsa", "rsa-pss":
		newkey = []string{"-newkey", "rsa:2048"}
		k.Method = RSASHA256
		if keyType == "rsa-pss" {
			k.Method = RSAPSS256
		}
	case "p256", "brainpoolP256r1":
		curve := "P-256"
		if keyType != "p256" {
			curve = keyType
		}
		newkey = []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:" + curve}
		k.Method = ECDSASHA256
	default:
		t.Fatalf("xmldsigtest: key type %q", keyType)
	}
	args := append([]string{"req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=xmldsigtest " + keyType + "/O=Poststelle Test",
		"-keyout", k.KeyFile, "-out", k.CertFile, "-addext", "keyUsage=critical,digitalSignature,nonRepudiation"}, newkey...)
	Run(t, dir, args...)
	k.CertDER = pemDER(t, k.CertFile)
	return k
}

// KeyFromFiles uses an existing key and PEM certificate (e.g. a signer of
// crypto/verify/verifytest, which chains to a CA).
func KeyFromFiles(t testing.TB, keyFile, certFile, method string) *Key {
	t.Helper()
	return &Key{KeyFile: keyFile, CertFile: certFile, CertDER: pemDER(t, certFile), Method: method}
}

func pemDER(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("xmldsigtest: no PEM in %s", path)
	}
	return blk.Bytes
}

// Shapes of a signature.
const (
	Enveloped  = "enveloped"
	Enveloping = "enveloping"
	Detached   = "detached"
)

// Spec describes the signature to make.
type Spec struct {
	Shape string
	// C14N is the canonicalization URI of SignedInfo and of the
	// references' transforms; default exclusive C14N.
	C14N string
	// Document is the XML document of an enveloped signature (the
	// signature goes last into its document element).
	Document string
	// Content is the data of an enveloping signature (base64 in a
	// ds:Object) or the detached content.
	Content []byte
	// DetachedNames name detached contents (one reference each); the
	// signer reads them from Contents. Default one reference "document.txt"
	// to Content.
	DetachedNames []string
	Contents      map[string][]byte
	// XAdES adds SignedProperties (SigningTime, SigningCertificateV2).
	XAdES       bool
	SigningTime time.Time
	// Timestamp, when set, returns an RFC 3161 token over the SHA-256
	// digest given: the signature becomes XAdES-BASELINE-T.
	Timestamp func(digest []byte) []byte
	// CertificateValues and CRLValues (DER) go into the unsigned
	// properties; with both and a Timestamp it is XAdES-BASELINE-LT.
	CertificateValues [][]byte
	CRLValues         [][]byte
	// ID is the signature's Id; default "sig-1".
	ID string
}

// Sign makes the signature and returns the XML document.
func Sign(t testing.TB, k *Key, s Spec) []byte {
	t.Helper()
	if s.C14N == "" {
		s.C14N = xmldsig.AlgExcC14N
	}
	if s.ID == "" {
		s.ID = "sig-1"
	}
	// Nothing signed covers the unsigned properties' place (UNSIGNED), so
	// it is filled in last.
	doc := assemble(t, k, &s)
	doc = fillDigests(t, doc, &s)
	doc = signValue(t, k, doc, s)
	return []byte(addUnsigned(t, doc, s))
}

// assemble writes the document with placeholders DIGEST-n for reference
// digests and SIGVALUE for the signature value.
func assemble(t testing.TB, k *Key, s *Spec) string {
	t.Helper()
	var refs, objects strings.Builder
	n := 0
	ref := func(uri, typ, transforms string) {
		n++
		if typ != "" {
			typ = ` Type="` + typ + `"`
		}
		fmt.Fprintf(&refs, `<ds:Reference Id="ref-%d"%s URI="%s"><ds:Transforms>%s</ds:Transforms><ds:DigestMethod Algorithm="%s"/><ds:DigestValue>DIGEST-%d</ds:DigestValue></ds:Reference>`,
			n, typ, uri, transforms, sha256URI, n)
	}
	c14n := `<ds:Transform Algorithm="` + s.C14N + `"/>`
	switch s.Shape {
	case Enveloped:
		ref("", "", `<ds:Transform Algorithm="`+xmldsig.TransformEnveloped+`"/>`+c14n)
	case Enveloping:
		ref("#obj-1", xmldsig.TypeObject, `<ds:Transform Algorithm="`+xmldsig.TransformBase64+`"/>`)
		fmt.Fprintf(&objects, `<ds:Object Id="obj-1">%s</ds:Object>`, base64.StdEncoding.EncodeToString(s.Content))
	case Detached:
		if len(s.DetachedNames) == 0 {
			s.DetachedNames = []string{"document.txt"}
			s.Contents = map[string][]byte{"document.txt": s.Content}
		}
		for _, name := range s.DetachedNames {
			n++
			fmt.Fprintf(&refs, `<ds:Reference Id="ref-%d" URI="%s"><ds:DigestMethod Algorithm="%s"/><ds:DigestValue>DIGEST-%d</ds:DigestValue></ds:Reference>`, n, name, sha256URI, n)
		}
	default:
		t.Fatalf("xmldsigtest: shape %q", s.Shape)
	}
	if s.XAdES {
		ref("#xades-"+s.ID, xmldsig.TypeSignedProps, c14n)
		st := s.SigningTime
		if st.IsZero() {
			st = time.Now()
		}
		certDigest := sha256.Sum256(k.CertDER)
		fmt.Fprintf(&objects, `<ds:Object><xades:QualifyingProperties xmlns:xades="%s" Target="#%s"><xades:SignedProperties Id="xades-%s"><xades:SignedSignatureProperties><xades:SigningTime>%s</xades:SigningTime><xades:SigningCertificateV2><xades:Cert><xades:CertDigest><ds:DigestMethod Algorithm="%s"/><ds:DigestValue>%s</ds:DigestValue></xades:CertDigest></xades:Cert></xades:SigningCertificateV2></xades:SignedSignatureProperties></xades:SignedProperties>UNSIGNED</xades:QualifyingProperties></ds:Object>`,
			xmldsig.NamespaceXAdES132, s.ID, s.ID, st.UTC().Format(time.RFC3339), sha256URI, base64.StdEncoding.EncodeToString(certDigest[:]))
	}
	sig := fmt.Sprintf(`<ds:Signature xmlns:ds="%s" Id="%s"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="%s"/><ds:SignatureMethod Algorithm="%s"/>%s</ds:SignedInfo><ds:SignatureValue Id="value-%s">SIGVALUE</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo>%s</ds:Signature>`,
		xmldsig.NamespaceDSig, s.ID, s.C14N, k.Method, refs.String(), s.ID, base64.StdEncoding.EncodeToString(k.CertDER), objects.String())
	if s.Shape != Enveloped {
		return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + sig
	}
	end := strings.LastIndex(s.Document, "</")
	if end < 0 {
		t.Fatal("xmldsigtest: enveloped document needs a closing tag")
	}
	return s.Document[:end] + sig + s.Document[end:]
}

func parse(t testing.TB, doc string) *xmldsig.Document {
	t.Helper()
	d, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		t.Fatalf("xmldsigtest: parse own document: %v\n%s", err, doc)
	}
	return d
}

func c14nOf(t testing.TB, uri string) xmldsig.C14N {
	t.Helper()
	c, err := xmldsig.ParseC14N(uri)
	if err != nil {
		t.Fatal(err)
	}
	c.Comments = false
	return c
}

func fillDigests(t testing.TB, doc string, s *Spec) string {
	t.Helper()
	d := parse(t, doc)
	sigs, err := xmldsig.FindSignatures(d)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("xmldsigtest: %d signatures, %v", len(sigs), err)
	}
	c := c14nOf(t, s.C14N)
	n := 0
	put := func(data []byte) {
		n++
		sum := sha256.Sum256(data)
		doc = strings.Replace(doc, fmt.Sprintf(">DIGEST-%d<", n), ">"+base64.StdEncoding.EncodeToString(sum[:])+"<", 1)
	}
	switch s.Shape {
	case Enveloped:
		put(c.CanonicalizeDocument(d, sigs[0]))
	case Enveloping:
		put(s.Content)
	case Detached:
		for _, name := range s.DetachedNames {
			put(s.Contents[name])
		}
	}
	if s.XAdES {
		sp, err := d.ElementByID("xades-" + s.ID)
		if err != nil {
			t.Fatal(err)
		}
		put(c.Canonicalize(sp, nil))
	}
	return doc
}

func signValue(t testing.TB, k *Key, doc string, s Spec) string {
	t.Helper()
	d := parse(t, doc)
	sigs, _ := xmldsig.FindSignatures(d)
	c, err := xmldsig.ParseC14N(s.C14N)
	if err != nil {
		t.Fatal(err)
	}
	si := sigs[0].Child(xmldsig.NamespaceDSig, "SignedInfo")
	dir := t.TempDir()
	in := filepath.Join(dir, "signedinfo")
	if err := os.WriteFile(in, c.Canonicalize(si, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"dgst", "-sha256", "-sign", k.KeyFile, "-out", filepath.Join(dir, "sig")}
	if k.Method == RSAPSS256 {
		args = append(args, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256")
	}
	Run(t, dir, append(args, in)...)
	sig, err := os.ReadFile(filepath.Join(dir, "sig"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Method == ECDSASHA256 {
		sig = plainECDSA(t, sig, 32)
	}
	return strings.Replace(doc, ">SIGVALUE<", ">"+base64.StdEncoding.EncodeToString(sig)+"<", 1)
}

// plainECDSA turns openssl's DER ECDSA-Sig-Value into XML-DSig's r||s.
func plainECDSA(t testing.TB, der []byte, size int) []byte {
	t.Helper()
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2*size)
	v.R.FillBytes(out[:size])
	v.S.FillBytes(out[size:])
	return out
}

func addUnsigned(t testing.TB, doc string, s Spec) string {
	t.Helper()
	var props strings.Builder
	if s.Timestamp != nil {
		d := parse(t, doc)
		sigs, _ := xmldsig.FindSignatures(d)
		sv := sigs[0].Child(xmldsig.NamespaceDSig, "SignatureValue")
		sum := sha256.Sum256(xmldsig.C14N{}.Canonicalize(sv, nil))
		fmt.Fprintf(&props, `<xades:SignatureTimeStamp Id="ts-1"><ds:CanonicalizationMethod Algorithm="%s"/><xades:EncapsulatedTimeStamp>%s</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp>`,
			xmldsig.AlgC14N10, base64.StdEncoding.EncodeToString(s.Timestamp(sum[:])))
	}
	if len(s.CertificateValues) > 0 {
		props.WriteString(`<xades:CertificateValues>`)
		for _, c := range s.CertificateValues {
			fmt.Fprintf(&props, `<xades:EncapsulatedX509Certificate>%s</xades:EncapsulatedX509Certificate>`, base64.StdEncoding.EncodeToString(c))
		}
		props.WriteString(`</xades:CertificateValues>`)
	}
	if len(s.CRLValues) > 0 {
		props.WriteString(`<xades:RevocationValues><xades:CRLValues>`)
		for _, c := range s.CRLValues {
			fmt.Fprintf(&props, `<xades:EncapsulatedCRLValue>%s</xades:EncapsulatedCRLValue>`, base64.StdEncoding.EncodeToString(c))
		}
		props.WriteString(`</xades:CRLValues></xades:RevocationValues>`)
	}
	unsigned := ""
	if props.Len() > 0 {
		unsigned = `<xades:UnsignedProperties><xades:UnsignedSignatureProperties>` + props.String() + `</xades:UnsignedSignatureProperties></xades:UnsignedProperties>`
	}
	return strings.Replace(doc, "UNSIGNED", unsigned, 1)
}

// Run runs openssl in dir and returns its standard output.
func Run(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}
