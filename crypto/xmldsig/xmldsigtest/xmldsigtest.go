// Package xmldsigtest makes XML signatures (XML-DSig and XAdES-B/T) for
// tests of crypto/xmldsig, crypto/verify and crypto/asic. The signature
// values come from the openssl command line tool (Key.Signer), so the key
// handling and the padding are not ours; the documents are made by the
// production signer, xmldsig.Sign, of which this package is a thin wrapper.
package xmldsigtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
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

// Sign makes the signature and returns the XML document. It is a thin
// wrapper of xmldsig.Sign: the Spec becomes SignOptions, and the value
// comes from openssl through Signer.
func Sign(t testing.TB, k *Key, s Spec) []byte {
	t.Helper()
	if s.C14N == "" {
		s.C14N = xmldsig.AlgExcC14N
	}
	if s.ID == "" {
		s.ID = "sig-1"
	}
	opts := xmldsig.SignOptions{Signer: k.Signer(t), Method: k.Method, C14N: s.C14N, Certificates: [][]byte{k.CertDER},
		ID: s.ID, SignatureValueID: "value-" + s.ID}
	var doc []byte
	switch s.Shape {
	case Enveloped:
		doc = []byte(s.Document)
		opts.References = append(opts.References, xmldsig.SignReference{ID: "ref-1", URI: ""})
	case Enveloping:
		opts.References = append(opts.References, xmldsig.SignReference{ID: "ref-1", URI: "#obj-1", Type: xmldsig.TypeObject, Transforms: []string{xmldsig.TransformBase64}})
		opts.Objects = append(opts.Objects, xmldsig.SignObject{ID: "obj-1", Content: []byte(base64.StdEncoding.EncodeToString(s.Content))})
	case Detached:
		if len(s.DetachedNames) == 0 {
			s.DetachedNames = []string{"document.txt"}
			s.Contents = map[string][]byte{"document.txt": s.Content}
		}
		for i, name := range s.DetachedNames {
			opts.References = append(opts.References, xmldsig.SignReference{ID: fmt.Sprintf("ref-%d", i+1), URI: name, Transforms: []string{}})
		}
		opts.Resolver = func(_ context.Context, uri string) (io.ReadCloser, error) {
			data, ok := s.Contents[uri]
			if !ok {
				return nil, fmt.Errorf("xmldsigtest: no content %q", uri)
			}
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	default:
		t.Fatalf("xmldsigtest: shape %q", s.Shape)
	}
	if s.XAdES {
		opts.References = append(opts.References, xmldsig.SignReference{ID: fmt.Sprintf("ref-%d", len(opts.References)+1),
			URI: "#xades-" + s.ID, Type: xmldsig.TypeSignedProps, Transforms: []string{s.C14N}})
		opts.Objects = append(opts.Objects, xmldsig.SignObject{Content: []byte(qualifyingProperties(k, s))})
	}
	out, err := xmldsig.Sign(context.Background(), doc, opts)
	if err != nil {
		t.Fatalf("xmldsigtest: %v", err)
	}
	// Nothing signed covers the unsigned properties' place (UNSIGNED), so
	// it is filled in last.
	return []byte(addUnsigned(t, string(out), s))
}

// qualifyingProperties are the XAdES properties with SigningTime and
// SigningCertificateV2; UNSIGNED marks where the unsigned ones go.
func qualifyingProperties(k *Key, s Spec) string {
	st := s.SigningTime
	if st.IsZero() {
		st = time.Now()
	}
	certDigest := sha256.Sum256(k.CertDER)
	return fmt.Sprintf(`<xades:QualifyingProperties xmlns:xades="%s" Target="#%s"><xades:SignedProperties Id="xades-%s"><xades:SignedSignatureProperties><xades:SigningTime>%s</xades:SigningTime><xades:SigningCertificateV2><xades:Cert><xades:CertDigest><ds:DigestMethod Algorithm="%s"/><ds:DigestValue>%s</ds:DigestValue></xades:CertDigest></xades:Cert></xades:SigningCertificateV2></xades:SignedSignatureProperties></xades:SignedProperties>UNSIGNED</xades:QualifyingProperties>`,
		xmldsig.NamespaceXAdES132, s.ID, s.ID, st.UTC().Format(time.RFC3339), sha256URI, base64.StdEncoding.EncodeToString(certDigest[:]))
}

func parse(t testing.TB, doc string) *xmldsig.Document {
	t.Helper()
	d, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		t.Fatalf("xmldsigtest: parse own document: %v\n%s", err, doc)
	}
	return d
}

// Signer returns a crypto.Signer whose values openssl makes with the
// key file, so that the signature values the tests check are not ours.
func (k *Key) Signer(t testing.TB) crypto.Signer {
	t.Helper()
	c, err := cert.Parse(k.CertDER)
	if err != nil || c.PublicKey == nil {
		t.Fatalf("xmldsigtest: certificate: %v", err)
	}
	return &opensslSigner{t: t, key: k, pub: c.PublicKey}
}

type opensslSigner struct {
	t   testing.TB
	key *Key
	pub crypto.PublicKey
}

func (o *opensslSigner) Public() crypto.PublicKey { return o.pub }

// Sign has openssl pkeyutl sign the digest: PKCS#1 v1.5 with the
// DigestInfo, PSS with the salt asked for, ECDSA as DER.
func (o *opensslSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	o.t.Helper()
	names := map[crypto.Hash]string{crypto.SHA256: "sha256", crypto.SHA384: "sha384", crypto.SHA512: "sha512"}
	md, ok := names[opts.HashFunc()]
	if !ok {
		return nil, fmt.Errorf("xmldsigtest: hash %v", opts.HashFunc())
	}
	dir := o.t.TempDir()
	in := filepath.Join(dir, "digest")
	if err := os.WriteFile(in, digest, 0o600); err != nil {
		return nil, err
	}
	args := []string{"pkeyutl", "-sign", "-inkey", o.key.KeyFile, "-in", in, "-out", filepath.Join(dir, "sig"), "-pkeyopt", "digest:" + md}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		args = append(args, "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", fmt.Sprintf("rsa_pss_saltlen:%d", pss.SaltLength), "-pkeyopt", "rsa_mgf1_md:"+md)
	}
	Run(o.t, dir, args...)
	return os.ReadFile(filepath.Join(dir, "sig"))
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
