package xmlenc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
)

// The independent oracles are xmlsec1 (XML Encryption as libxmlsec does
// it; version 1.2 has rsa-oaep-mgf1p and rsa-1_5 but not xmlenc11
// rsa-oaep) and openssl pkeyutl for the OAEP variants xmlsec1 lacks.

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run test/setup.sh (it installs the Debian package %s)", name, name)
	}
	return p
}

func run(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// opensslReader makes an RSA key and self-signed certificate with openssl
// and loads them.
func opensslReader(t testing.TB, dir string) (reader, string, string) {
	t.Helper()
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	run(t, dir, "openssl", "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-keyout", keyFile, "-out", certFile, "-subj", "/CN=xmlenc oracle/O=Poststelle Test", "-days", "2")
	return loadPEMReader(t, keyFile, certFile), keyFile, certFile
}

func loadPEMReader(t testing.TB, keyFile, certFile string) reader {
	t.Helper()
	kb, _ := os.ReadFile(keyFile)
	cb, _ := os.ReadFile(certFile)
	kblk, _ := pem.Decode(kb)
	cblk, _ := pem.Decode(cb)
	if kblk == nil || cblk == nil {
		t.Fatal("no PEM key or certificate")
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return reader{k.(*rsa.PrivateKey), c}
}

const xmlsecTemplate = `<?xml version="1.0"?>
<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="DATA"/><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="KEY">PARAMS</EncryptionMethod><CipherData><CipherValue/></CipherData></EncryptedKey></KeyInfo><CipherData><CipherValue/></CipherData></EncryptedData>`

// TestXmlsecEncryptsWeDecrypt has xmlsec1 encrypt with every data
// algorithm and key transport it knows, and wants us to decrypt each with
// a policy that accepts it, and the default policy to report or refuse
// it as it should.
func TestXmlsecEncryptsWeDecrypt(t *testing.T) {
	dir := t.TempDir()
	r, _, certFile := opensslReader(t, dir)
	plain := bytes.Repeat([]byte("Widerspruchsbescheid <&> "), 41)
	if err := os.WriteFile(filepath.Join(dir, "plain.bin"), plain, 0o600); err != nil {
		t.Fatal(err)
	}
	all := xmlenc.Policy{AllowCBC: true, AllowTripleDES: true, AllowRSA15: true}
	cases := []struct {
		data, key, session string
		legacy             bool
		defaultRefuses     bool
		params             string
	}{
		{xmlenc.AES128GCM, xmlenc.RSAOAEPMGF1P, "aes-128", false, false, ""},
		{xmlenc.AES192GCM, xmlenc.RSAOAEPMGF1P, "aes-192", false, false, ""},
		{xmlenc.AES256GCM, xmlenc.RSAOAEPMGF1P, "aes-256", false, false, ""},
		{xmlenc.AES128CBC, xmlenc.RSAOAEPMGF1P, "aes-128", true, false, ""},
		{xmlenc.AES256CBC, xmlenc.RSAOAEPMGF1P, "aes-256", true, false, ""},
		{xmlenc.TripleDESCBC, xmlenc.RSAOAEPMGF1P, "des-192", true, true, ""},
		{xmlenc.AES256GCM, xmlenc.RSA15, "aes-256", true, true, ""},
		// An explicit SHA-1 DigestMethod (xmlsec1 1.2 has no other) and an
		// OAEP label.
		{xmlenc.AES128GCM, xmlenc.RSAOAEPMGF1P, "aes-128", false, false,
			`<DigestMethod xmlns="http://www.w3.org/2000/09/xmldsig#" Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><OAEPparams>MTIzNDU2Nzg=</OAEPparams>`},
	}
	ctx := context.Background()
	for _, c := range cases {
		name := c.data[strings.Index(c.data, "#")+1:] + "/" + c.key[strings.Index(c.key, "#")+1:]
		if c.params != "" {
			name += "/label"
		}
		t.Run(name, func(t *testing.T) {
			tmpl := strings.NewReplacer("DATA", c.data, "KEY", c.key, "PARAMS", c.params).Replace(xmlsecTemplate)
			if err := os.WriteFile(filepath.Join(dir, "tmpl.xml"), []byte(tmpl), 0o600); err != nil {
				t.Fatal(err)
			}
			out := run(t, dir, "xmlsec1", "encrypt", "--pubkey-cert-pem", certFile, "--session-key", c.session, "--binary-data", "plain.bin", "tmpl.xml")
			ed := parseED(t, out, all)
			got, res, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: all, Recipient: r.recipient()})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatal("plaintext differs")
			}
			if res.Algorithms.Data != c.data || res.Algorithms.KeyTransport != c.key || res.Algorithms.Legacy != c.legacy {
				t.Errorf("algorithms %+v", res.Algorithms)
			}
			_, _, err = xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: xmlenc.DefaultPolicy(), Recipient: r.recipient()})
			if c.defaultRefuses != (err != nil) {
				t.Errorf("default policy: %v, refusal expected %v", err, c.defaultRefuses)
			}
		})
	}
}

// TestWeEncryptXmlsecDecrypts has xmlsec1 decrypt what we encrypt with
// the key transport it knows, for every AES-GCM key size, one and three
// recipients.
func TestWeEncryptXmlsecDecrypts(t *testing.T) {
	dir := t.TempDir()
	r, keyFile, _ := opensslReader(t, dir)
	others := testReaders(t)
	plain := []byte("Sehr geehrte Damen und Herren,\nanbei der Bescheid.\n")
	ctx := context.Background()
	for _, alg := range []string{xmlenc.AES128GCM, xmlenc.AES192GCM, xmlenc.AES256GCM} {
		for _, n := range []int{1, 3} {
			recips := []*x509.Certificate{others[0].cert, others[1].cert}[:n-1]
			recips = append(recips, r.cert)
			enc, err := xmlenc.Encrypt(ctx, plain, xmlenc.EncryptOptions{Algorithm: alg, KeyTransport: xmlenc.RSAOAEPMGF1P, OAEPDigest: crypto.SHA1, Recipients: recips})
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "enc.xml")
			if err := os.WriteFile(f, enc.XML, 0o600); err != nil {
				t.Fatal(err)
			}
			got := run(t, dir, "xmlsec1", "decrypt", "--privkey-pem", keyFile, f)
			if !bytes.Equal(got, plain) {
				t.Fatalf("%s, %d recipients: xmlsec1 decrypted %q", alg, n, got)
			}
		}
	}
}

// TestOAEPWithOpenSSL checks the OSCI default key transport (xmlenc11
// rsa-oaep, SHA-256, MGF1-SHA-256) both ways with openssl pkeyutl, and
// the data with crypto/cipher's GCM, not ours.
func TestOAEPWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	r, keyFile, certFile := opensslReader(t, dir)
	ctx := context.Background()
	plain := []byte("<Nachricht>OSCI</Nachricht>")
	for _, md := range []string{"sha256", "sha512"} {
		t.Run("we encrypt/"+md, func(t *testing.T) {
			h := map[string]crypto.Hash{"sha256": crypto.SHA256, "sha512": crypto.SHA512}[md]
			enc, err := xmlenc.Encrypt(ctx, plain, xmlenc.EncryptOptions{Recipients: []*x509.Certificate{r.cert}, OAEPDigest: h, MGF: h})
			if err != nil {
				t.Fatal(err)
			}
			ed := parseED(t, enc.XML, xmlenc.DefaultPolicy())
			ekFile := filepath.Join(dir, "ek.bin")
			os.WriteFile(ekFile, ed.EncryptedKeys[0].CipherValue, 0o600)
			key := run(t, dir, "openssl", "pkeyutl", "-decrypt", "-inkey", keyFile, "-in", ekFile,
				"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
			g := stdGCM(t, key)
			got, err := g.Open(nil, ed.CipherValue[:12], ed.CipherValue[12:], nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("crypto/cipher could not open our GCM: %v", err)
			}
		})
		t.Run("openssl encrypts/"+md, func(t *testing.T) {
			key := make([]byte, 32)
			rand.Read(key)
			keyIn := filepath.Join(dir, "key.bin")
			os.WriteFile(keyIn, key, 0o600)
			ek := run(t, dir, "openssl", "pkeyutl", "-encrypt", "-certin", "-inkey", certFile, "-in", keyIn,
				"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
			iv := make([]byte, 12)
			rand.Read(iv)
			ct := stdGCM(t, key).Seal(append([]byte(nil), iv...), iv, plain, nil)
			digest := map[string]string{"sha256": xmlenc.DigestSHA256, "sha512": xmlenc.DigestSHA512}[md]
			mgf := map[string]string{"sha256": xmlenc.MGF1SHA256, "sha512": xmlenc.MGF1SHA512}[md]
			doc := `<e:EncryptedData xmlns:e="` + xmlenc.NamespaceXEnc + `" xmlns:ds="` + xmlenc.NamespaceDSig + `"><e:EncryptionMethod Algorithm="` + xmlenc.AES256GCM + `"/>` +
				`<ds:KeyInfo><e:EncryptedKey><e:EncryptionMethod Algorithm="` + xmlenc.RSAOAEP + `"><ds:DigestMethod Algorithm="` + digest + `"/><m:MGF xmlns:m="` + xmlenc.NamespaceXEnc11 + `" Algorithm="` + mgf + `"/></e:EncryptionMethod>` +
				`<e:CipherData><e:CipherValue>` + base64.StdEncoding.EncodeToString(ek) + `</e:CipherValue></e:CipherData></e:EncryptedKey></ds:KeyInfo>` +
				`<e:CipherData><e:CipherValue>` + base64.StdEncoding.EncodeToString(ct) + `</e:CipherValue></e:CipherData></e:EncryptedData>`
			got, res, err := xmlenc.Decrypt(ctx, parseED(t, []byte(doc), xmlenc.DefaultPolicy()), xmlenc.DecryptOptions{Recipient: r.recipient()})
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypt: %v", err)
			}
			if res.Algorithms.OAEPDigest != digest || res.Algorithms.MGF != mgf {
				t.Errorf("algorithms %+v", res.Algorithms)
			}
		})
	}
}

// TestOSCISampleKeys encrypts for the OSCI library's sample readers
// (carol and dave, RSA-4096, PKCS#12 with the samples' PIN 123456) and
// decrypts with their keys as openssl exports them.
func TestOSCISampleKeys(t *testing.T) {
	dir := t.TempDir()
	var rs []reader
	for _, name := range []string{"carol_cipher_4096", "dave_cipher_4096"} {
		p12, err := filepath.Abs(filepath.Join("..", "..", "testdata", "osci", "zertifikate", name+".p12"))
		if err != nil {
			t.Fatal(err)
		}
		keyFile, certFile := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".crt")
		run(t, dir, "openssl", "pkcs12", "-legacy", "-in", p12, "-passin", "pass:123456", "-nocerts", "-nodes", "-out", keyFile)
		run(t, dir, "openssl", "pkcs12", "-legacy", "-in", p12, "-passin", "pass:123456", "-clcerts", "-nokeys", "-out", certFile)
		der, err := os.ReadFile(filepath.Join("..", "..", "testdata", "osci", "zertifikate", name+".cer"))
		if err != nil {
			t.Fatal(err)
		}
		r := loadPEMReader(t, keyFile, certFile)
		if c, err := x509.ParseCertificate(der); err != nil || !c.Equal(r.cert) {
			t.Fatalf("%s.cer is not the certificate of %s.p12: %v", name, name, err)
		}
		rs = append(rs, r)
	}
	ctx := context.Background()
	plain := []byte(`<osci:Content xmlns:osci="http://www.osci.de/2002/04/osci">Testnachricht</osci:Content>`)
	enc, err := xmlenc.Encrypt(ctx, plain, xmlenc.EncryptOptions{Recipients: []*x509.Certificate{rs[0].cert, rs[1].cert}})
	if err != nil {
		t.Fatal(err)
	}
	ed := parseED(t, enc.XML, xmlenc.DefaultPolicy())
	if ed.Method.IVLength != 12 {
		t.Errorf("IvLength %d", ed.Method.IVLength)
	}
	for _, r := range rs {
		got, _, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Recipient: r.recipient()})
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v", r.cert.Subject, err)
		}
	}
	d, _ := xmldsig.Parse(enc.XML, xmldsig.Limits{})
	if d.Root.Local != "EncryptedData" {
		t.Fatal("not an EncryptedData")
	}
}

func stdGCM(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
