//go:build integration

// Package osci_test drives the Governikus OSCI-Bibliothek 2.4.1 through the
// Java peer (peer/, built by run.sh) against a recording endpoint
// (capture/): every library request is checked as OSCI 1.2 says it must
// look, and with -update the requests are written to osci/testdata/library/
// as the golden captures the osci package and the stand-in intermediary are
// built against.
package osci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/test/integration/osci/capture"
)

var update = flag.Bool("update", false, "rewrite the golden captures in osci/testdata/library/")

// Algorithm URIs as the library writes them.
const (
	rsaSHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	rsaPSS    = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	ecdsa256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	aes256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
)

// messageID is a message id in the form the library's intermediary hands out
// (base64); the captures use it instead of a getMessageId round trip.
const messageID = "cG9zdHN0ZWxsZS1pbnRlcm9wLTAwMDE="

// dialog is the explicit dialog a mid-dialog capture claims to be in:
// conversation id, the sequence number the request carries (0: the first
// request after initDialog, whose answer carries no SequenceNumber), and the
// intermediary's challenge it answers.
const (
	conversationID = "cG9zdHN0ZWxsZS1jb252ZXJzYXRpb24="
	challenge      = "Y2hhbGxlbmdlMDE="
	dialogArg      = conversationID + ",0," + challenge
)

// peerCase is one library run whose first request is captured.
type peerCase struct {
	name string
	mode string
	args []string
	// body is the local name of the request's OSCI element (storeDelivery, ...).
	body string
	// inHeader says the library writes that element as a SOAP header entry.
	inHeader bool
	// sigAlg is the ClientSignature's algorithm; empty when unsigned.
	sigAlg string
	// attachments is the number of attachment MIME parts in the request.
	attachments int
	// encryptedContent says the ContentPackage holds encrypted data.
	encryptedContent bool
	// dialog says the ControlBlock must carry conversationID, sequence 0
	// and challenge as its Response.
	dialog bool
}

var cases = []peerCase{
	{name: "getmessageid", mode: "store", body: "getMessageId", sigAlg: rsaSHA256},
	{name: "storedelivery-rsa-sha256", mode: "store", body: "storeDelivery", inHeader: true, sigAlg: rsaSHA256,
		args:        []string{"--message-id", messageID, "--sig-alg", "rsa-sha256", "--attach", "1000", "--attach", "70000"},
		attachments: 2, encryptedContent: true},
	{name: "storedelivery-rsa-pss", mode: "store", body: "storeDelivery", inHeader: true, sigAlg: rsaPSS,
		args:        []string{"--message-id", messageID, "--sig-alg", "rsa-pss", "--attach", "1000", "--attach", "70000"},
		attachments: 2, encryptedContent: true},
	{name: "storedelivery-ecdsa-p256", mode: "store", body: "storeDelivery", inHeader: true, sigAlg: ecdsa256,
		args:        []string{"--message-id", messageID, "--signer", "ECDSA_prime256v1_eec.p12", "--attach", "1000"},
		attachments: 1, encryptedContent: true},
	{name: "forwarddelivery-rsa-sha256", mode: "forward", body: "forwardDelivery", inHeader: true, sigAlg: rsaSHA256,
		args: []string{"--message-id", messageID, "--sig-alg", "rsa-sha256", "--attach", "5000",
			"--recipient-url", "http://127.0.0.1:9/passive"},
		attachments: 1, encryptedContent: true},
	{name: "forwarddelivery-rsa-pss", mode: "forward", body: "forwardDelivery", inHeader: true, sigAlg: rsaPSS,
		args: []string{"--message-id", messageID, "--sig-alg", "rsa-pss", "--attach", "5000",
			"--recipient-url", "http://127.0.0.1:9/passive"},
		attachments: 1, encryptedContent: true},
	{name: "initdialog", mode: "fetch", body: "initDialog", sigAlg: rsaSHA256,
		args: []string{"--message-id", messageID}},
	{name: "fetchdelivery-rsa-sha256", mode: "fetch", body: "fetchDelivery", inHeader: true, sigAlg: rsaSHA256, dialog: true,
		args: []string{"--message-id", messageID, "--dialog", dialogArg, "--sig-alg", "rsa-sha256"}},
	{name: "fetchdelivery-rsa-pss", mode: "fetch", body: "fetchDelivery", inHeader: true, sigAlg: rsaPSS, dialog: true,
		args: []string{"--message-id", messageID, "--dialog", dialogArg, "--sig-alg", "rsa-pss"}},
	{name: "fetchprocesscard-rsa-sha256", mode: "processcard", body: "fetchProcessCard", sigAlg: rsaSHA256, dialog: true,
		args: []string{"--message-id", messageID, "--dialog", dialogArg, "--sig-alg", "rsa-sha256"}},
	{name: "fetchprocesscard-rsa-pss", mode: "processcard", body: "fetchProcessCard", sigAlg: rsaPSS, dialog: true,
		args: []string{"--message-id", messageID, "--dialog", dialogArg, "--sig-alg", "rsa-pss"}},
}

// TestLibraryRequests runs each case's library request against the capture
// endpoint, which answers with a SOAP fault: the library must have sent one
// well-formed, transport-encrypted, signed request, and must report the
// fault's code (so it read our answer, rather than failing on it).
func TestLibraryRequests(t *testing.T) {
	env := peerEnv(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runCase(t, env, c)
			got.decrypted = checkCapture(t, c, got)
			if *update {
				writeGolden(t, env, c, got)
			}
		})
	}
}

// TestGoldenCaptures checks the committed captures with the same checks, so
// that what the osci package is tested against stays what the library sends.
func TestGoldenCaptures(t *testing.T) {
	env := peerEnv(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(env.golden, c.name)
			wire, err := os.ReadFile(filepath.Join(dir, "request.http"))
			if err != nil {
				t.Fatalf("golden capture missing (regenerate with osci/testdata/library/gen.sh): %v", err)
			}
			plain, err := os.ReadFile(filepath.Join(dir, "request.plain.mime"))
			if err != nil {
				t.Fatal(err)
			}
			_, body, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
			if !ok {
				t.Fatal("request.http has no header/body separator")
			}
			checkCapture(t, c, runResult{wireBody: body, plain: plain})
		})
	}
}

// env is where the peer and the data are.
type env struct {
	java, classpath, certs, golden string
}

func peerEnv(t *testing.T) env {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	e := env{
		java:      os.Getenv("OSCI_JAVA"),
		classpath: os.Getenv("OSCI_PEER_CP"),
		certs:     filepath.Join(root, "testdata", "osci", "zertifikate"),
		golden:    filepath.Join(root, "osci", "testdata", "library"),
	}
	if e.java == "" {
		e.java = "java"
	}
	if e.classpath == "" {
		t.Fatal("OSCI_PEER_CP is not set: run test/integration/osci/run.sh, which builds the peer and sets it")
	}
	return e
}

// runResult is what one case produced.
type runResult struct {
	peer     map[string]any
	exit     int
	requests []capture.Request
	wireBody []byte
	// plain is the library's own plaintext copy, where it makes one.
	plain []byte
	// decrypted is the wire body with the transport encryption undone.
	decrypted []byte
	stderr    string
}

func runCase(t *testing.T, e env, c peerCase) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv, err := capture.Start(ctx, capture.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	out, storeOut := filepath.Join(dir, "result.json"), filepath.Join(dir, "request.plain.mime")
	args := append([]string{"-cp", e.classpath, "org.poststelle.oscipeer.Peer", c.mode,
		"--intermediary", srv.URL(), "--certs", e.certs, "--out", out, "--store-out", storeOut}, c.args...)
	cmd := exec.CommandContext(ctx, e.java, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var res runResult
	res.stderr = stderr.String()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("running the peer: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("peer wrote no result (exit %d): %v\n%s", res.exit, err, res.stderr)
	}
	if err := json.Unmarshal(raw, &res.peer); err != nil {
		t.Fatalf("peer result: %v\n%s", err, raw)
	}
	res.requests = srv.Requests()
	if len(res.requests) > 0 {
		res.wireBody = res.requests[0].Body
	}
	// Only the first request's plaintext is kept: a getMessageId case never
	// reaches the storeDelivery, and a storeDelivery is the first request.
	if c.body == "getMessageId" || c.body == "initDialog" {
		res.plain = nil
	} else if res.plain, err = os.ReadFile(storeOut); err != nil {
		t.Fatalf("library wrote no plaintext copy: %v", err)
	}

	if res.exit != 3 {
		t.Errorf("peer exit %d, want 3 (request sent, answer refused)\n%s", res.exit, res.stderr)
	}
	if n := len(res.requests); n != 1 {
		t.Fatalf("capture got %d requests, want 1", n)
	}
	if got := res.peer["requestsSent"]; got != float64(1) {
		t.Errorf("peer says %v requests sent, want 1", got)
	}
	perr, _ := res.peer["error"].(map[string]any)
	if perr["code"] != capture.DefaultFaultCode {
		t.Errorf("peer error %v, want the capture's fault code %s", perr, capture.DefaultFaultCode)
	}
	return res
}

func writeGolden(t *testing.T, e env, c peerCase, r runResult) {
	t.Helper()
	dir := filepath.Join(e.golden, c.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"request.http": r.requests[0].Wire, "request.plain.mime": r.decrypted}
	args, _ := json.Marshal(append([]string{c.mode}, c.args...))
	files["peer-args.json"] = append(args, '\n')
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", dir)
}
