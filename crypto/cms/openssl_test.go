package cms

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.mozilla.org/pkcs7"
)

// opensslCase signs content with a fresh key and self-signed certificate
// made by openssl. Generating at test time keeps the keys out of the tree.
type opensslCase struct {
	name    string
	keygen  []string // openssl args producing key.pem
	sign    []string // extra openssl cms -sign args
	attach  bool
	wantAlg string
	// pkcs7 says whether go.mozilla.org/pkcs7 handles the case (differential oracle).
	pkcs7 bool
}

var opensslCases = []opensslCase{
	{name: "rsa2048-detached", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, wantAlg: "SHA-256withRSA", pkcs7: true},
	{name: "rsa2048-attached", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, attach: true, wantAlg: "SHA-256withRSA", pkcs7: true},
	{name: "rsa2048-attached-stream-ber", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-stream"}, attach: true, wantAlg: "SHA-256withRSA"},
	{name: "rsa-pss", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-keyopt", "rsa_padding_mode:pss"}, wantAlg: "SHA-256withRSAandMGF1"},
	{name: "rsa-pss-sha512-salt20", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-md", "sha512", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:20"}, wantAlg: "SHA-512withRSAandMGF1"},
	{name: "rsa-sha3-256", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-md", "sha3-256"}, wantAlg: "SHA3-256withRSA"},
	{name: "p256", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, wantAlg: "SHA-256withECDSA", pkcs7: true},
	{name: "p384-sha384", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"}, sign: []string{"-md", "sha384"}, wantAlg: "SHA-384withECDSA"},
	{name: "p521-sha512", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"}, sign: []string{"-md", "sha512"}, wantAlg: "SHA-512withECDSA"},
	{name: "brainpoolP256r1", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP256r1"}, wantAlg: "SHA-256withECDSA"},
	{name: "brainpoolP384r1", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP384r1"}, sign: []string{"-md", "sha384"}, wantAlg: "SHA-384withECDSA"},
	{name: "brainpoolP512r1", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP512r1"}, sign: []string{"-md", "sha512"}, wantAlg: "SHA-512withECDSA"},
	{name: "ski-signer-id", keygen: []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, sign: []string{"-keyid"}, wantAlg: "SHA-256withECDSA"},
	{name: "no-signed-attributes", keygen: []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, sign: []string{"-noattr"}, wantAlg: "SHA-256withRSA", pkcs7: true},
}

func openssl(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// makeSignature returns the DER SignedData and the content it signs.
func makeSignature(t testing.TB, c opensslCase, content []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	openssl(t, dir, append(c.keygen, "-out", "key.pem")...)
	openssl(t, dir, "req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=Poststelle Test "+c.name, "-days", "2",
		"-addext", "subjectKeyIdentifier=hash", "-out", "cert.pem")
	if err := os.WriteFile(filepath.Join(dir, "content.bin"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"cms", "-sign", "-binary", "-in", "content.bin", "-signer", "cert.pem", "-inkey", "key.pem", "-outform", "DER", "-out", "sig.der"}
	if c.attach {
		args = append(args, "-nodetach")
	}
	openssl(t, dir, append(args, c.sign...)...)
	sig, err := os.ReadFile(filepath.Join(dir, "sig.der"))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestOpenSSLGenerated(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required for these tests (apt-get install openssl): %v", err)
	}
	content := bytes.Repeat([]byte("Antrag auf Erteilung einer Baugenehmigung\n"), 100)
	for _, c := range opensslCases {
		t.Run(c.name, func(t *testing.T) {
			der := makeSignature(t, c, content)
			sd, err := Parse(der)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if strings.Contains(c.name, "stream") && !sd.BER {
				t.Errorf("openssl -stream output should be BER")
			}
			opts := VerifyOptions{}
			if !c.attach {
				opts.DetachedContent = content
			} else if !bytes.Equal(sd.Content, content) {
				t.Fatalf("attached content differs")
			}
			r := sd.Verify(opts).Signers[0]
			if !r.Intact || !r.Valid {
				t.Fatalf("intact=%v valid=%v checks %+v", r.Intact, r.Valid, r.Checks)
			}
			if got := r.SignatureAlgorithm.Name(); got != c.wantAlg {
				t.Errorf("algorithm %s, want %s", got, c.wantAlg)
			}
			if c.name == "ski-signer-id" && sd.Signers[0].SID.SubjectKeyID == nil {
				t.Errorf("signer not identified by key identifier")
			}
			// Tampered content must fail the message digest (or, without
			// signed attributes, the signature).
			bad := bytes.Clone(content)
			bad[7] ^= 0x20
			var r2 *SignerResult
			if c.attach {
				sd2, err := Parse(bytes.Replace(der, content[:64], bad[:64], 1))
				if err != nil {
					t.Fatal(err)
				}
				r2 = sd2.Verify(VerifyOptions{}).Signers[0]
			} else {
				r2 = sd.Verify(VerifyOptions{DetachedContent: bad}).Signers[0]
			}
			if r2.Valid {
				t.Fatalf("tampered content accepted")
			}
			if c.pkcs7 {
				differential(t, der, content, c.attach, r.Valid)
				differential(t, der, bad, c.attach, r2.Valid)
			}
		})
	}
}

// differential compares with go.mozilla.org/pkcs7 on inputs it supports.
func differential(t *testing.T, der, content []byte, attached, ours bool) {
	t.Helper()
	p, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatalf("pkcs7.Parse: %v", err)
	}
	if !attached {
		p.Content = content
	}
	theirs := p.Verify() == nil
	if attached {
		theirs = theirs && bytes.Equal(p.Content, content)
	}
	if theirs != ours {
		t.Errorf("pkcs7 says valid=%v, we say %v", theirs, ours)
	}
}

// TestPKCS7SignedVerifies: signatures made by go.mozilla.org/pkcs7 verify.
func TestPKCS7SignedVerifies(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
	openssl(t, dir, "req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=pkcs7", "-days", "2", "-out", "cert.pem")
	openssl(t, dir, "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der")
	openssl(t, dir, "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der")
	key, cert := loadKeyCert(t, dir)
	content := []byte("Bescheid")
	sdb, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	sdb.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sdb.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	der, err := sdb.Finish()
	if err != nil {
		t.Fatal(err)
	}
	sd, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if r := sd.Verify(VerifyOptions{}).Signers[0]; !r.Valid {
		t.Fatalf("checks %+v", r.Checks)
	}
	if _, err := Parse(der[:len(der)-3]); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated: %v", err)
	}
}
