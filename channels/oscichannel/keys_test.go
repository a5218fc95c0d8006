package oscichannel

import (
	"crypto"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// The parties of the tests, from the OSCI library's sample PKI (PIN 123456): bob is
// the authority, osci_manager the intermediary, alice the citizen or lawyer.
const pin = "123456"

func p12(t testing.TB, name string) KeyConfig {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(f, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return KeyConfig{PKCS12File: corpus.Path(t, "osci", "zertifikate", name+".p12"), PasswordFile: f}
}

var (
	pairsMu sync.Mutex
	pairs   = map[string]*KeyPair{}
)

// pair loads a sample key pair once: the 4096-bit keys' PKCS#12 decoding is slow.
func pair(t testing.TB, name string) *KeyPair {
	t.Helper()
	pairsMu.Lock()
	defer pairsMu.Unlock()
	if kp := pairs[name]; kp != nil {
		return kp
	}
	kp, err := LoadPKCS12(p12(t, name))
	if err != nil {
		t.Fatal(err)
	}
	pairs[name] = kp
	return kp
}

func decrypterOf(t testing.TB, name string) osci.Decrypter {
	kp := pair(t, name)
	return osci.Decrypter{Key: kp.Key.(crypto.Decrypter), Certificate: kp.X509, Policy: xmlenc.OSCIPolicy()}
}

// authorityConfig is the osci: section of bob's gateway with osci_manager as the
// intermediary at url.
func authorityConfig(t testing.TB, url string) Config {
	return Config{
		Intermediary: IntermediaryConfig{URL: url,
			CipherCertFile:    corpus.Path(t, "osci", "zertifikate", "osci_manager_cipher_4096.cer"),
			SignatureCertFile: corpus.Path(t, "osci", "zertifikate", "osci_manager_signature_4096.cer")},
		Cipher:    p12(t, "bob_cipher_4096"),
		Signature: p12(t, "bob_signature_4096"),
	}
}
