package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/selfissued"
	"github.com/poststelle/poststelle/gateway"
)

// TestEvidenceBundleCLI makes the bundle of one message of a log with the
// seal of a self-issued CA, verifies it with the published key and the seal as
// trust anchor, and refuses it with a changed byte and with another key.
func TestEvidenceBundleCLI(t *testing.T) {
	dir := testLog(t, 5)
	ca, err := selfissued.LoadOrCreateCA(filepath.Join(dir, "ca", "ca.pem"), filepath.Join(dir, "ca", "ca-key.pem"), "Test Seal CA")
	if err != nil {
		t.Fatal(err)
	}
	sealCert, sealKey := filepath.Join(dir, "seal", "seal.pem"), filepath.Join(dir, "seal", "seal-key.pem")
	if _, err := ca.LoadOrIssue(sealCert, sealKey, "Test Seal", selfissued.Seal); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "poststelle.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\nevidence: {seal: {cert_file: "+sealCert+", key_file: "+sealKey+"}}\n"), 0o600)
	stream := gateway.StreamID(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, "2"))
	out := filepath.Join(dir, "bundle.asice")
	code, _, errs := cli(t, dir, "evidence", stream, "--config", cfg, "--out", out)
	if code != exitOK {
		t.Fatalf("evidence: exit %d: %s", code, errs)
	}
	pub := filepath.Join(dir, "keys", "gateway.pub")
	seal := ca.CertFile
	code, res, errs := cli(t, dir, "evidence", "verify", out, "--key", pub, "--trust", seal)
	if code != exitOK || !strings.Contains(res, "VALID:") {
		t.Fatalf("verify: exit %d\n%s%s", code, res, errs)
	}
	t.Log(res)
	for _, want := range []string{"seal", "inclusion", "original", "head"} {
		if !strings.Contains(res, "ok     "+want) {
			t.Errorf("no passed %s finding in\n%s", want, res)
		}
	}
	// Another message's bytes are not in it.
	data, _ := os.ReadFile(out)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "message/original.eml") {
		t.Fatalf("entries: %v", names)
	}

	changed := append([]byte(nil), data...)
	changed[len(changed)/2] ^= 1
	os.WriteFile(out+".changed", changed, 0o600)
	if code, res, _ := cli(t, dir, "evidence", "verify", out+".changed", "--key", pub); code != exitFailed || !strings.Contains(res, "INVALID:") {
		t.Fatalf("changed bundle: exit %d\n%s", code, res)
	}

	other := filepath.Join(dir, "other.pub")
	os.WriteFile(other, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"), 0o600)
	if code, res, _ := cli(t, dir, "evidence", "verify", out, "--key", other); code != exitFailed || !strings.Contains(res, "INVALID: gateway-key") {
		t.Fatalf("another key: exit %d\n%s", code, res)
	}
	if code, _, _ := cli(t, dir, "evidence", "msg-none", "--config", cfg, "--out", out+".none"); code == exitOK {
		t.Fatal("a bundle of no message")
	}
}
