package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/internal/assembly"
)

// TestDemoReceiptTimestamp: on the demo set-up a newcomer's message gets a
// receipt timestamp from the local TSA, and the token verifies with
// openssl against the demo CA alone, over the raw message's digest; the
// demo seal certificate is made beside it.
func TestDemoReceiptTimestamp(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required: %v", err)
	}
	t.Chdir(t.TempDir())
	d := startDemo(t)
	tsaAddr := d.waitAddr(t, "TSA listening")
	sendMail(t, d.smtp, "buerger@example.org", "poststelle@kreis.example",
		"From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Antrag\r\nMessage-ID: <ts@example.org>\r\n\r\nGuten Tag\r\n")
	type stamped struct {
		Type    string `json:"type"`
		Payload struct {
			TSA     string   `json:"tsa"`
			Token   blob.Ref `json:"token"`
			Imprint string   `json:"imprint"`
		} `json:"data"`
	}
	var ev stamped
	eventually(t, "TimestampApplied", func() bool {
		_, out, _ := cli(t, "data", "log", "replay", "--type", "TimestampApplied")
		return json.Unmarshal([]byte(strings.TrimSpace(out)), &ev) == nil && ev.Type == "TimestampApplied"
	})
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if ev.Payload.TSA != assembly.LocalTSAName {
		t.Errorf("stamped by %q, want the local TSA (%s)", ev.Payload.TSA, tsaAddr)
	}
	// The imprint is the raw message's SHA-256 as MessageReceived records it.
	_, out, _ := cli(t, "data", "log", "replay", "--type", "MessageReceived")
	if !strings.Contains(out, `"sha256":"`+ev.Payload.Imprint+`"`) {
		t.Fatalf("imprint %s is not the received raw message's digest:\n%s", ev.Payload.Imprint, out)
	}

	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := assembly.OpenBlobs(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blobs.Open(context.Background(), ev.Payload.Token)
	if err != nil {
		t.Fatal(err)
	}
	token, err := io.ReadAll(rc)
	rc.Close()
	if c, ok := blobs.(io.Closer); ok {
		c.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("token.der", token, 0o600); err != nil {
		t.Fatal(err)
	}
	anchor := filepath.Join("data", "demo-ca", "ca.pem")
	verify := func(imprint string) (string, error) {
		b, err := exec.Command("openssl", "ts", "-verify", "-token_in", "-in", "token.der", "-digest", imprint,
			"-CAfile", anchor).CombinedOutput()
		return string(b), err
	}
	if out, err := verify(ev.Payload.Imprint); err != nil || !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl ts -verify: %v\n%s", err, out)
	}
	other := []byte(ev.Payload.Imprint)
	other[0] ^= 0x01 // '0'..'f' stay hex digits or become another one
	if other[0] > 'f' || (other[0] > '9' && other[0] < 'a') {
		other[0] = '0'
	}
	if out, err := verify(string(other)); err == nil {
		t.Fatalf("openssl accepts the token for another digest:\n%s", out)
	}

	// The demo seal exists under the same anchor, with nonRepudiation.
	seal, err := exec.Command("openssl", "verify", "-CAfile", anchor, filepath.Join("data", "seal", "seal.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify seal: %v\n%s", err, seal)
	}
	text, _ := exec.Command("openssl", "x509", "-in", filepath.Join("data", "seal", "seal.pem"), "-noout", "-text").CombinedOutput()
	if !strings.Contains(string(text), "Non Repudiation") {
		t.Fatalf("seal certificate:\n%s", text)
	}
	// What the bundle seals with: the demo seal, its chain and a fresh CRL.
	seal2, err := cfg.OpenSeal(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil || seal2 == nil {
		t.Fatalf("OpenSeal: %v", err)
	}
	defer seal2.Close()
	if len(seal2.Certificates) != 2 || len(seal2.CRLs) != 1 {
		t.Fatalf("seal: %d certificates, %d CRLs", len(seal2.Certificates), len(seal2.CRLs))
	}
	if _, err := os.Stat(filepath.Join("data", "demo-ca", "ca.crl")); err != nil {
		t.Fatalf("the demo CRL for auditors: %v", err)
	}
}
