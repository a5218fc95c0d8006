//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/internal/corpus"
)

const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// carolToken makes a SoftHSM2 token in a temp dir holding carol's cipher key (from
// the OSCI samples' PKCS#12, PIN 123456) and returns the configuration opening it.
func carolToken(t *testing.T) Config {
	t.Helper()
	key := filepath.Join(t.TempDir(), "carol.pem")
	run(t, "openssl", "pkcs12", "-in", corpus.Path(t, "osci", "zertifikate", "carol_cipher_4096.p12"),
		"-passin", "pass:123456", "-nocerts", "-nodes", "-legacy", "-out", key)
	return tokenWith(t, key, corpus.Path(t, "osci", "zertifikate", "carol_cipher_4096.cer"))
}

// tokenWith makes a SoftHSM2 token holding the PEM private key keyFile, labelled
// "carol", and returns the configuration opening it with certFile.
func tokenWith(t *testing.T, keyFile, certFile string) Config {
	t.Helper()
	for _, p := range []string{"softhsm2-util", "openssl"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s missing: run test/setup.sh (installs softhsm2)", p)
		}
	}
	if _, err := os.Stat(softhsmModule); err != nil {
		t.Fatalf("%s missing: run test/setup.sh (installs softhsm2)", softhsmModule)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	run(t, "softhsm2-util", "--init-token", "--free", "--label", "poststelle", "--pin", "4321", "--so-pin", "87654321")
	pk8 := filepath.Join(dir, "key.pk8")
	run(t, "openssl", "pkcs8", "-topk8", "-nocrypt", "-in", keyFile, "-out", pk8)
	run(t, "softhsm2-util", "--import", pk8, "--token", "poststelle", "--label", "carol", "--id", "c0de", "--pin", "4321")
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{Module: softhsmModule, Token: "poststelle", PINFile: pinFile, Label: "carol", CertFile: certFile}
}

func openCarol(t *testing.T) *Key {
	t.Helper()
	k, err := Open(context.Background(), carolToken(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func TestDecrypt(t *testing.T) {
	k := openCarol(t)
	pub := k.Certificate.PublicKey.(*rsa.PublicKey)
	secret := []byte("the data key of a delivery, 32 b")
	for _, tc := range []struct {
		name string
		enc  func() ([]byte, error)
		opts crypto.DecrypterOpts
	}{
		{"pkcs1v15", func() ([]byte, error) {
			//lint:ignore SA1019 the token must still open RSA-1_5 EncryptedKeys of old OSCI senders
			return rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
		}, nil},
		{"oaep-sha1", func() ([]byte, error) { return rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, pub, secret, nil) },
			&rsa.OAEPOptions{Hash: crypto.SHA1}},
		{"oaep-sha256-mgf1-sha1", func() ([]byte, error) {
			return rsa.EncryptOAEPWithOptions(rand.Reader, pub, secret, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1})
		}, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}},
		{"oaep-sha256", func() ([]byte, error) { return rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil) },
			&rsa.OAEPOptions{Hash: crypto.SHA256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := tc.enc()
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Decrypt(rand.Reader, ct, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("decrypted %q, want %q", got, secret)
			}
			ct[len(ct)/2] ^= 1
			if _, err := k.Decrypt(rand.Reader, ct, tc.opts); err == nil && tc.opts != nil {
				t.Fatal("a corrupted OAEP ciphertext decrypted")
			}
		})
	}
}

// TestXMLEnc decrypts an EncryptedData whose EncryptedKey is made for carol's
// certificate with the key on the token.
func TestXMLEnc(t *testing.T) {
	k := openCarol(t)
	ctx := context.Background()
	for _, mgf := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		enc, err := xmlenc.Encrypt(ctx, []byte("<Inhalt>Antrag</Inhalt>"), xmlenc.EncryptOptions{
			Recipients: []*x509.Certificate{k.Certificate}, OAEPDigest: mgf, MGF: mgf})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := xmldsig.Parse(enc.XML, xmldsig.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		ed, err := xmlenc.ParseEncryptedData(doc.Root, xmlenc.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: xmlenc.DefaultPolicy(),
			Recipient: xmlenc.Recipient{Key: k, Certificate: k.Certificate}})
		if err != nil {
			t.Fatalf("OAEP %v: %v", mgf, err)
		}
		if string(got) != "<Inhalt>Antrag</Inhalt>" {
			t.Fatalf("OAEP %v: decrypted %q", mgf, got)
		}
	}
}

// TestSign signs with the token's key (PKCS#1 v1.5 and PSS) and has openssl verify
// the values with carol's certificate.
func TestSign(t *testing.T) {
	k := openCarol(t)
	dir := t.TempDir()
	msg := []byte("Zugang der Nachricht")
	digest := sha256.Sum256(msg)
	certPEM := filepath.Join(dir, "carol.pem")
	run(t, "openssl", "x509", "-inform", "DER", "-in", corpus.Path(t, "osci", "zertifikate", "carol_cipher_4096.cer"), "-pubkey", "-noout", "-out", certPEM)
	if err := os.WriteFile(filepath.Join(dir, "msg"), msg, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts crypto.SignerOpts
		args []string
	}{
		{"pkcs1v15", crypto.SHA256, nil},
		{"pss", &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash},
			[]string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := k.Sign(rand.Reader, digest[:], tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			sigFile := filepath.Join(dir, tc.name+".sig")
			if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"dgst", "-sha256", "-verify", certPEM, "-signature", sigFile}, tc.args...)
			run(t, "openssl", append(args, filepath.Join(dir, "msg"))...)
			sig[0] ^= 1
			_ = os.WriteFile(sigFile, sig, 0o600)
			if err := exec.Command("openssl", append(args, filepath.Join(dir, "msg"))...).Run(); err == nil {
				t.Fatal("openssl verified a corrupted signature")
			}
		})
	}
	signed, err := xmldsig.Sign(context.Background(), []byte(`<Antwort Id="a">ok</Antwort>`), xmldsig.SignOptions{
		References: []xmldsig.SignReference{{URI: "", Digest: crypto.SHA256}},
		Signer:     k, Method: xmldsig.AlgRSAPSSSHA256, Certificates: [][]byte{k.Certificate.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := xmldsig.ParseAndVerify(signed, xmldsig.DefaultLimits(), xmldsig.Options{}); err != nil {
		t.Fatalf("xmldsig rejects the token's signature: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	cfg := carolToken(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"wrong pin", func(c *Config) { c.PINFile = writeFile(t, "1111") }},
		{"no such key", func(c *Config) { c.Label = "dave" }},
		{"no such token", func(c *Config) { c.Token = "other" }},
		{"foreign certificate", func(c *Config) {
			c.CertFile = corpus.Path(t, "osci", "zertifikate", "dave_cipher_4096.cer")
		}},
		{"no label or id", func(c *Config) { c.Label = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.edit(&c)
			if k, err := Open(context.Background(), c, nil); err == nil {
				_ = k.Close()
				t.Fatal("opened")
			}
		})
	}
}

func writeFile(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignECDSA signs with a P-256 key on the token and checks the value with the
// certificate's key.
func TestSignECDSA(t *testing.T) {
	// The OSCI samples' ECDSA certificates spell out their curve's parameters, which
	// crypto/x509 does not read: a P-256 key and certificate made by openssl.
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	run(t, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", crt, "-subj", "/CN=Poststelle PKCS11 ECDSA", "-days", "1")
	k, err := Open(context.Background(), tokenWith(t, key, crt), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	digest := sha256.Sum256([]byte("Zugang"))
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.Certificate.PublicKey.(*ecdsa.PublicKey)
	if !ok || !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatalf("ECDSA signature does not verify (key %T)", k.Certificate.PublicKey)
	}
	digest[0] ^= 1
	if ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("the signature verifies another digest")
	}
}
