package keys

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	want := "sha256:" + hex.EncodeToString(sum[:])
	got, err := Fingerprint(pub)
	if err != nil || got != want {
		t.Fatalf("Fingerprint = %q, %v; want %q", got, err, want)
	}
	grouped := "sha256:" + strings.ToUpper(hex.EncodeToString(sum[:2])) + ":" + hex.EncodeToString(sum[2:])
	for _, in := range []string{want, " " + want + "\n", grouped} {
		if p, err := ParseFingerprint(in); err != nil || p != want {
			t.Errorf("ParseFingerprint(%q) = %q, %v", in, p, err)
		}
	}
	for _, bad := range []string{hex.EncodeToString(sum[:]), "sha256:" + hex.EncodeToString(sum[:31]), "sha1:" + hex.EncodeToString(sum[:]), "sha256:zz"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

// FuzzParseFingerprint: whatever is typed, the parser never panics, and
// what it accepts is in canonical form and parses to itself.
func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add("sha256:AB:CD")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(fp) != len("sha256:")+64 || strings.ToLower(fp) != fp {
			t.Fatalf("ParseFingerprint(%q) = %q, not canonical", s, fp)
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp {
			t.Fatalf("canonical %q does not parse to itself: %q %v", fp, again, err)
		}
	})
}
