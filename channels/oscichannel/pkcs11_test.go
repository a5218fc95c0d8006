//go:build cgo

package oscichannel

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/gateway/channeltest"
	"github.com/poststelle/poststelle/internal/corpus"
)

const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// bobToken makes a SoftHSM2 token in a temp dir holding bob's cipher and signature
// keys and returns the key configurations naming them.
func bobToken(t *testing.T) (cipher, signature KeyConfig) {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatal("softhsm2-util missing: run test/setup.sh (installs softhsm2)")
	}
	if _, err := os.Stat(softhsmModule); err != nil {
		t.Fatalf("%s missing: run test/setup.sh (installs softhsm2)", softhsmModule)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	runTool(t, "softhsm2-util", "--init-token", "--free", "--label", "behoerde", "--pin", "4321", "--so-pin", "87654321")
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyOf := func(name, id string) KeyConfig {
		pem := filepath.Join(dir, name+".pem")
		runTool(t, "openssl", "pkcs12", "-in", corpus.Path(t, "osci", "zertifikate", name+".p12"),
			"-passin", "pass:"+pin, "-nocerts", "-nodes", "-legacy", "-out", pem)
		runTool(t, "openssl", "pkcs8", "-topk8", "-nocrypt", "-in", pem, "-out", pem+".pk8")
		runTool(t, "softhsm2-util", "--import", pem+".pk8", "--token", "behoerde", "--label", name, "--id", id, "--pin", "4321")
		return KeyConfig{PKCS11: &pkcs11.Config{Module: softhsmModule, Token: "behoerde", PINFile: pinFile,
			Label: name, CertFile: corpus.Path(t, "osci", "zertifikate", name+".cer")}}
	}
	return keyOf("bob_cipher_4096", "01"), keyOf("bob_signature_4096", "02")
}

// TestActivePKCS11 runs the channel contract's suite against the active recipient
// whose cipher and signature keys are on a PKCS#11 token: every delivery is opened
// (OAEP SHA-256, which SoftHSM2 2.6 does only by raw RSA) and every request signed
// there.
func TestActivePKCS11(t *testing.T) {
	cipher, signature := bobToken(t)
	channeltest.Run(t, channeltest.Config{
		New: func(t testing.TB) channeltest.Driver {
			mb := newMailbox(t)
			mb.keys = func(c *Config) { c.Cipher, c.Signature = cipher, signature }
			return mb
		},
		Codes: channeltest.Codes{Accepted: "acknowledged", Temporary: "left", TooLarge: "left", Refused: "left"},
	})
}
