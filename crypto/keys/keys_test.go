package keys

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateLoad(t *testing.T) {
	dir := t.TempDir()
	kp, pp := filepath.Join(dir, "k", "gateway.key"), filepath.Join(dir, "k", "gateway.pub")
	s, err := Generate(kp, pp)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(kp); fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := Generate(kp, pp); !errors.Is(err, ErrExists) {
		t.Fatalf("second generate: %v, want ErrExists", err)
	}
	l, err := LoadSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublic(pp)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("checkpoint")
	if !l.Public().(ed25519.PublicKey).Equal(s.Public()) {
		t.Fatal("loaded key differs from generated key")
	}
	sig, err := l.Sign(nil, msg, crypto.Hash(0))
	if err != nil || !ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) {
		t.Fatalf("loaded public key does not verify the generated key's signature: %v", err)
	}
	if p2, err := LoadPublic(kp); err != nil || !p2.(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("public key from private key file: %v", err)
	}
}

func TestLoadRejectsJunk(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty": {},
		"junk":  []byte("not a key"),
		"huge":  make([]byte, maxPEM+10),
		"cert":  []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
	}
	for name, content := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o600)
		if _, err := LoadSigner(p); err == nil {
			t.Errorf("%s: loaded as signer", name)
		}
		if _, err := LoadPublic(p); err == nil {
			t.Errorf("%s: loaded as public key", name)
		}
	}
}
