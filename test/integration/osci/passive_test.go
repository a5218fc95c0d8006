//go:build integration

package osci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPassiveRecipientRefusesForeignDelivery starts the library as a passive
// recipient (Bob) and posts it a recorded forwardDelivery that is
// transport-encrypted for the intermediary, not for Bob: the library must
// answer with a SOAP fault naming the missing key, and the peer must record
// the refusal. (Accepting a real acceptDelivery needs the stand-in
// intermediary, which forwards to this listener.)
func TestPassiveRecipientRefusesForeignDelivery(t *testing.T) {
	e := peerEnv(t)
	wire, err := os.ReadFile(filepath.Join(e.golden, "forwarddelivery-rsa-sha256", "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(wire, []byte("\r\n\r\n"))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd := exec.CommandContext(ctx, e.java, "-cp", e.classpath, "org.poststelle.oscipeer.Peer", "passive",
		"--listen", "127.0.0.1:0", "--ready", ready, "--out-dir", dir, "--count", "1", "--certs", e.certs)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := waitReady(t, ctx, ready, &stderr)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting to the passive recipient: %v\n%s", err, stderr.String())
	}
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	resp.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("passive peer: %v\n%s", err, stderr.String())
	}

	const wantCode = "9200" // NoEncKeyPresentOnMessgeLevel: not encrypted for a key this recipient has
	a := answer.String()
	if !strings.Contains(a, "<soap:Fault>") || !strings.Contains(a, "<osci:Code>"+wantCode+"</osci:Code>") {
		t.Errorf("answer is not a SOAP fault with code %s:\n%s", wantCode, a)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "delivery-1.json"))
	if err != nil {
		t.Fatalf("peer recorded nothing: %v\n%s", err, stderr.String())
	}
	var doc struct {
		Mode  string `json:"mode"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Mode != "passive" || doc.Error.Code != wantCode {
		t.Errorf("recorded %s, want mode passive with error code %s", raw, wantCode)
	}
}

func waitReady(t *testing.T, ctx context.Context, path string, stderr *bytes.Buffer) string {
	t.Helper()
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("passive peer never became ready\n%s", stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
