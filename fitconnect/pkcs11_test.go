//go:build cgo

package fitconnect

import (
	"context"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/internal/corpus"
)

const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// softToken puts carol's 4096-bit key of the OSCI samples (PKCS#12, PIN 123456)
// on a fresh SoftHSM2 token and opens it through crypto/pkcs11, as the portal
// channel's decryption_pkcs11 would.
func softToken(t *testing.T) *pkcs11.Key {
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
	pem := filepath.Join(dir, "carol.pem")
	runTool(t, "openssl", "pkcs12", "-in", corpus.Path(t, "osci", "zertifikate", "carol_cipher_4096.p12"),
		"-passin", "pass:123456", "-nocerts", "-nodes", "-legacy", "-out", pem)
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	runTool(t, "softhsm2-util", "--init-token", "--free", "--label", "fitconnect", "--pin", "4321", "--so-pin", "87654321")
	pk8 := filepath.Join(dir, "key.pk8")
	runTool(t, "openssl", "pkcs8", "-topk8", "-nocrypt", "-in", pem, "-out", pk8)
	runTool(t, "softhsm2-util", "--import", pk8, "--token", "fitconnect", "--label", "destination", "--id", "fc01", "--pin", "4321")
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: softhsmModule, Token: "fitconnect", PINFile: pin, Label: "destination",
		CertFile: corpus.Path(t, "osci", "zertifikate", "carol_cipher_4096.cer")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// TestPKCS11 decrypts a FIT-Connect JWE and signs a SET with a key that never
// leaves the token.
func TestPKCS11(t *testing.T) {
	k := softToken(t)
	pub := k.Certificate.PublicKey.(*rsa.PublicKey)
	dec, err := NewCryptoDecrypter("destination-enc", k)
	if err != nil {
		t.Fatal(err)
	}
	jwe, err := Encrypt([]byte(`{"antrag":1}`), &PublicKey{KeyID: "destination-enc", Key: pub}, EncryptOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt([]byte(jwe), dec, DecryptOptions{})
	if err != nil || string(got.Plaintext) != `{"antrag":1}` {
		t.Fatalf("Decrypt through the token: %+v, %v", got, err)
	}
	a, _ := testKeys(t)
	other, _ := Encrypt([]byte("x"), testPublic(t, a, "k"), EncryptOptions{})
	if _, err := Decrypt([]byte(other), dec, DecryptOptions{}); err == nil {
		t.Error("the token decrypted a JWE for another key")
	}

	signer, err := NewCryptoSigner("destination-sig", k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewAcceptSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, AuthenticationTags{Metadata: got.AuthenticationTag})
	if err != nil {
		t.Fatal(err)
	}
	set, err := signer.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	ks := NewKeySet()
	ks.Add("destination-sig", pub)
	if _, err := ParseSET(set, ks, VerifyOptions{Issuer: destID}); err != nil {
		t.Fatalf("SET signed on the token does not verify: %v", err)
	}
}
