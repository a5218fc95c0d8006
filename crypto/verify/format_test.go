package verify

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// TestFormatNames signs the same content with openssl as plain CMS (no
// signing-certificate attribute), as CAdES-B, and as CAdES over a content
// type other than id-data, and wants DSS's names for each (the corpus
// comparison checks the same names against DSS on every golden result).
func TestFormatNames(t *testing.T) {
	p := verifytest.New(t, "p256")
	dir := t.TempDir()
	content := filepath.Join(dir, "content.txt")
	if err := os.WriteFile(content, []byte("Bescheid\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sign := func(extra ...string) []byte {
		args := append([]string{"cms", "-sign", "-binary", "-md", "sha256", "-in", content, "-signer", p.SignerCert,
			"-inkey", p.SignerKey, "-outform", "DER", "-nodetach"}, extra...)
		return verifytest.Run(t, dir, args...)
	}
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"plain CMS", sign(), "CMS-NOT-ETSI"},
		{"CAdES", sign("-cades"), "CAdES-BASELINE-B"},
		// EN 319 122-1 baseline B wants content type id-data.
		{"CAdES over another content type", sign("-cades", "-econtent_type", "1.2.840.113549.1.7.2"), "CAdES-BES"},
	}
	for _, tc := range tests {
		rep, err := Verify(context.Background(), tc.der, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(rep.Signatures) != 1 || rep.Signatures[0].Format != tc.want {
			t.Errorf("%s: format %q, want %q", tc.name, rep.Signatures[0].Format, tc.want)
		}
	}
}
