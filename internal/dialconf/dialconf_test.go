package dialconf

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	os.WriteFile(f, []byte("s3cret\r\n"), 0o600)
	if p, err := Password(f, ""); err != nil || p != "s3cret" {
		t.Fatalf("file: %q %v", p, err)
	}
	t.Setenv("PS_TEST_PW", "from-env")
	if p, err := Password(f, "PS_TEST_PW"); err != nil || p != "from-env" {
		t.Fatalf("env wins: %q %v", p, err)
	}
	if _, err := Password(f, "PS_TEST_UNSET_VARIABLE"); err == nil {
		t.Fatal("unset variable accepted")
	}
	if _, err := Password(filepath.Join(dir, "missing"), ""); err == nil {
		t.Fatal("missing file accepted")
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, maxSecretFile+1), 0o600)
	if _, err := Password(big, ""); err == nil {
		t.Fatal("oversized file accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.3.4.5": true,
		"::1": true, "10.0.0.1": false, "example.org": false, "": false, "0.0.0.0": false} {
		if IsLoopback(host) != want {
			t.Errorf("IsLoopback(%q) = %v", host, !want)
		}
	}
}

func TestClientTLS(t *testing.T) {
	cfg, err := ClientTLS("mx.example", "")
	if err != nil || cfg.ServerName != "mx.example" || cfg.RootCAs != nil {
		t.Fatalf("%+v %v", cfg, err)
	}
	junk := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	if _, err := ClientTLS("mx.example", junk); err == nil {
		t.Fatal("a CA file without certificates was accepted")
	}
}
