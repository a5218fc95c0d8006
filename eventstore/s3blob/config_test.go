package s3blob

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	access := write("access", "AKIDPOSTSTELLE\n")
	secret := write("secret", "s3cr3t-never-logged\n")
	empty := write("empty", " \n")
	huge := write("huge", strings.Repeat("x", maxKeyFile+1))
	ca := write("ca.pem", "not a certificate")
	ok := Config{Endpoint: "127.0.0.1:9000", Bucket: "b", AccessKeyFile: access, SecretKeyFile: secret}
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" means success
	}{
		{"valid", func(*Config) {}, ""},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint and bucket"},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "endpoint and bucket"},
		{"no access key file", func(c *Config) { c.AccessKeyFile = "" }, "access key: no file"},
		{"missing secret file", func(c *Config) { c.SecretKeyFile = filepath.Join(dir, "nope") }, "secret key"},
		{"empty key", func(c *Config) { c.AccessKeyFile = empty }, "is empty"},
		{"oversized key", func(c *Config) { c.SecretKeyFile = huge }, "larger than"},
		{"part too small", func(c *Config) { c.PartSize = 1 << 20 }, "minimum"},
		{"bad CA", func(c *Config) { c.TLS, c.CAFile = true, ca }, "no certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			s, err := New(c)
			if tc.want == "" {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	s := &Store{prefix: "p/"}
	if got := s.key("ab"); got != "p/sha256/ab" {
		t.Fatalf("key = %q", got)
	}
	a, err1 := s.tempKey()
	b, err2 := s.tempKey()
	if err1 != nil || err2 != nil || a == b || !strings.HasPrefix(a, "p/tmp/") {
		t.Fatalf("temporary keys %q %q: %v %v", a, b, err1, err2)
	}
}

// TestTLSWithCAFile: with tls and ca_file the store trusts that CA (and not
// the system roots alone), checked against a TLS server that answers the
// bucket check as S3 does.
func TestTLSWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.TrimSuffix(r.URL.Path, "/") == "/blobs" && strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("k"), 0o600)
	cfg := Config{Endpoint: strings.TrimPrefix(srv.URL, "https://"), Bucket: "blobs", AccessKeyFile: key, SecretKeyFile: key,
		TLS: true, CAFile: ca, MaxRetries: 1}
	if _, err := Open(context.Background(), cfg); err != nil {
		t.Fatalf("open with the CA file: %v", err)
	}
	cfg.CAFile = ""
	if _, err := Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("open without the CA file: %v, want a certificate error", err)
	}
}
