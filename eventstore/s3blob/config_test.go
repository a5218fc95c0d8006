package s3blob

import (
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
