package trust

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAnchorsDirectory(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	root, err := os.ReadFile(filepath.Join(p.dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "root.crt"), root, 0o644)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a certificate"), 0o644)
	s := NewStore()
	if err := s.LoadAnchors(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if len(s.Anchors()) != 1 || !s.Anchors()[0].Cert.Equal(p.cert["root"]) {
		t.Fatalf("anchors %d", len(s.Anchors()))
	}
	os.WriteFile(filepath.Join(dir, "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	if err := NewStore().LoadAnchors(context.Background(), dir); err == nil {
		t.Error("broken anchor file accepted")
	}
	if err := NewStore().LoadAnchors(context.Background(), filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestParseCRLRejects(t *testing.T) {
	p := newTestPKI(t)
	good := p.crl("int").Raw
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "malformed"},
		{"truncated", good[:len(good)-3], "malformed"},
		{"trailing data", append(bytes.Clone(good), 0), "malformed"},
		{"wrong PEM type", []byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"), "not an X509 CRL"},
		{"too large", make([]byte, MaxCRLSize+1), "exceeds"},
		{"huge length field", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30}, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCRL(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
