//go:build integration

package osci_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/test/integration/osci/intermediary"
)

// sigAlgs are the signature algorithms the library signs requests and contents with
// in the interop runs; the intermediary answers with the same.
var sigAlgs = []struct{ name, uri string }{
	{"rsa-sha256", rsaSHA256},
	{"rsa-pss", rsaPSS},
}

// startIntermediary starts the stand-in with the sample PKI's keys; roots are CAs its
// inspection trusts besides the sample CA (the test VHN CA).
func startIntermediary(t *testing.T, e env, method string, passive map[string]string, roots ...*x509.Certificate) *intermediary.Server {
	t.Helper()
	keys, err := intermediary.SampleKeys(e.certs)
	if err != nil {
		t.Fatal(err)
	}
	keys.Roots = append(keys.Roots, roots...)
	var logs bytes.Buffer
	srv, err := intermediary.Start(t.Context(), intermediary.Config{
		Keys: keys, SignatureMethod: method, Passive: passive, SpoolDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		if t.Failed() {
			t.Logf("intermediary log:\n%s", logs.String())
		}
	})
	return srv
}

// peerRun is one library run: its JSON result and exit status.
type peerRun struct {
	doc    map[string]any
	exit   int
	stderr string
}

func runPeer(t *testing.T, e env, mode string, args ...string) peerRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "result.json")
	full := append([]string{"-cp", e.classpath, "org.poststelle.oscipeer.Peer", mode, "--certs", e.certs, "--out", out}, args...)
	cmd := exec.CommandContext(ctx, e.java, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := peerRun{stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("running the peer: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("peer %s wrote no result (exit %d): %v\n%s", mode, r.exit, err, r.stderr)
	}
	if err := json.Unmarshal(raw, &r.doc); err != nil {
		t.Fatalf("peer result: %v\n%s", err, raw)
	}
	return r
}

func (r peerRun) mustSucceed(t *testing.T, what string) {
	t.Helper()
	if r.exit != 0 || r.doc["error"] != nil {
		t.Fatalf("%s: exit %d, error %v\n%s", what, r.exit, r.doc["error"], r.stderr)
	}
}

// errorCode is the OSCI code the library reported as its failure.
func (r peerRun) errorCode() string {
	e, _ := r.doc["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func firstFeedback(v any) string {
	list, _ := v.([]any)
	if len(list) == 0 {
		return ""
	}
	m, _ := list[0].(map[string]any)
	c, _ := m["code"].(string)
	return c
}

func obj(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

// attachmentsOf collects refId → sha256 of the attachments a fetch or passive run
// decrypted, from every container.
func attachmentsOf(doc map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(c any)
	walk = func(c any) {
		contents, _ := obj(c, "contents").([]any)
		for _, ct := range contents {
			switch obj(ct, "type") {
			case "attachment":
				out[obj(ct, "refId").(string)] = fmt.Sprint(obj(ct, "sha256"))
			case "container":
				walk(obj(ct, "container"))
			}
		}
	}
	cs, _ := doc["containers"].([]any)
	for _, c := range cs {
		if obj(c, "contents") != nil {
			walk(c)
		}
	}
	return out
}

func sentAttachments(doc map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := doc["sentAttachments"].([]any)
	for _, a := range list {
		out[obj(a, "refId").(string)] = obj(a, "sha256").(string)
	}
	return out
}

// checkContent says the recipient decrypted what the sender sent: every attachment
// with the same digest, the content text, and every content signature valid.
func checkContent(t *testing.T, sent, got map[string]any) {
	t.Helper()
	want, have := sentAttachments(sent), attachmentsOf(got)
	if len(want) == 0 || fmt.Sprint(want) != fmt.Sprint(have) {
		t.Errorf("attachments received %v, sent %v", have, want)
	}
	cs, _ := got["containers"].([]any)
	if len(cs) == 0 {
		t.Fatalf("no content container received: %v", got)
	}
	var text string
	var sigs int
	for _, c := range cs {
		if e := obj(c, "decryptError"); e != nil {
			t.Errorf("container not decrypted: %v", e)
		}
		contents, _ := obj(c, "contents").([]any)
		for _, ct := range contents {
			if obj(ct, "type") == "data" {
				text += fmt.Sprint(obj(ct, "text"))
			}
		}
		ss, _ := obj(c, "signatures").([]any)
		for _, s := range ss {
			sigs++
			if obj(s, "valid") != true {
				t.Errorf("content signature not valid: %v", s)
			}
		}
	}
	if !strings.Contains(text, "Poststelle interop content.") {
		t.Errorf("content text %q", text)
	}
	if sigs == 0 {
		t.Error("the content arrived unsigned")
	}
}

// TestIntermediaryStoreFetch: the library stores a delivery (content encrypted for
// Bob and signed by Alice, with attachments) through the stand-in; Bob's library
// fetches it in an explicit dialog, decrypts and verifies it; Alice's library
// fetches the process card, which now shows the reception.
func TestIntermediaryStoreFetch(t *testing.T) {
	e := peerEnv(t)
	cases := append(sigAlgs[:len(sigAlgs):len(sigAlgs)], struct{ name, uri string }{"ecdsa-sha256", ""})
	for _, alg := range cases {
		t.Run(alg.name, func(t *testing.T) {
			srv := startIntermediary(t, e, alg.uri, nil)
			url := srv.URL()
			// The sample PKI's ECDSA files have explicit curve parameters, which the
			// JDK refuses; a P-256 key made by openssl signs as the originator, the
			// recipient and the intermediary sign with RSA.
			var sender []string
			fetchAlg := alg.name
			if alg.name == "ecdsa-sha256" {
				sender, fetchAlg = []string{"--signer", ecdsaSigner(t)}, "rsa-sha256"
			}
			store := runPeer(t, e, "store", append(sender, "--intermediary", url, "--sig-alg", alg.name,
				"--attach", "1000", "--attach", "70000", "--subject", "interop "+alg.name)...)
			store.mustSucceed(t, "store")
			if got := firstFeedback(store.doc["feedback"]); got != "0800" {
				t.Errorf("store feedback %s, want 0800", got)
			}
			id, _ := store.doc["messageId"].(string)
			if id == "" || obj(store.doc, "processCard", "creation") == nil {
				t.Fatalf("store gave no message id or creation: %v", store.doc)
			}
			if n := len(obj(store.doc, "processCard", "inspections").([]any)); n == 0 {
				t.Error("the process card has no inspection report")
			}

			fetch := runPeer(t, e, "fetch", "--intermediary", url, "--sig-alg", fetchAlg, "--message-id", id)
			fetch.mustSucceed(t, "fetch")
			if got := firstFeedback(fetch.doc["feedback"]); got != "0801" {
				t.Errorf("fetch feedback %s, want 0801", got)
			}
			if fetch.doc["messageId"] != id || fetch.doc["subject"] != "interop "+alg.name {
				t.Errorf("fetched %v %v, want %s", fetch.doc["messageId"], fetch.doc["subject"], id)
			}
			checkContent(t, store.doc, fetch.doc)
			if obj(fetch.doc, "processCard", "reception") == nil {
				t.Error("the fetched delivery's process card has no reception")
			}
			if got := firstFeedback(obj(fetch.doc, "exitDialog", "feedback")); got != "0800" {
				t.Errorf("exitDialog feedback %s, want 0800", got)
			}
			if box := srv.Mailbox(bobCipher(t, e)); len(box) != 0 {
				t.Errorf("mailbox still holds %v after the dialog ended", box)
			}

			pc := runPeer(t, e, "processcard", append(sender, "--intermediary", url, "--sig-alg", alg.name, "--message-id", id)...)
			pc.mustSucceed(t, "processcard")
			cards, _ := pc.doc["processCards"].([]any)
			if len(cards) != 1 || obj(cards[0], "reception") == nil || obj(cards[0], "creation") == nil {
				t.Errorf("process cards %v, want one with creation and reception", cards)
			}
		})
	}
}

func bobCipher(t *testing.T, e env) *x509.Certificate {
	t.Helper()
	c, err := intermediary.LoadCertificate(filepath.Join(e.certs, "bob_cipher_4096.cer"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIntermediaryForward: the library forwards a delivery through the stand-in to
// Bob's passive recipient (the library's own, in passive mode), which decrypts and
// verifies it and accepts; the sender gets the process card with forwarding and
// reception.
func TestIntermediaryForward(t *testing.T) {
	e := peerEnv(t)
	cases := append(sigAlgs[:len(sigAlgs):len(sigAlgs)], struct{ name, uri string }{"ecdsa-sha256", ""})
	for _, alg := range cases {
		t.Run(alg.name, func(t *testing.T) {
			var sender []string
			passiveAlg := alg.name
			if alg.name == "ecdsa-sha256" {
				sender, passiveAlg = []string{"--signer", ecdsaSigner(t)}, "rsa-sha256"
			}
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			passive := exec.CommandContext(ctx, e.java, "-cp", e.classpath, "org.poststelle.oscipeer.Peer", "passive",
				"--certs", e.certs, "--sig-alg", passiveAlg, "--out-dir", dir, "--ready", ready, "--count", "1", "--wait-seconds", "170")
			var perr bytes.Buffer
			passive.Stderr = &perr
			if err := passive.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = passive.Process.Kill(); _ = passive.Wait() }()
			recipient := waitPassive(t, ready, &perr)

			srv := startIntermediary(t, e, alg.uri, map[string]string{intermediary.CertificateKey(bobCipher(t, e)): recipient})
			fwd := runPeer(t, e, "forward", append(sender, "--intermediary", srv.URL(), "--sig-alg", alg.name,
				"--attach", "5000", "--recipient-url", "http://127.0.0.1:9/unused")...)
			fwd.mustSucceed(t, "forward")
			if got := firstFeedback(fwd.doc["feedback"]); got != "0800" {
				t.Errorf("forward feedback %s, want 0800", got)
			}
			for _, k := range []string{"creation", "forwarding", "reception"} {
				if obj(fwd.doc, "processCard", k) == nil {
					t.Errorf("forward process card without %s: %v", k, fwd.doc["processCard"])
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, "delivery-1.json"))
			if err != nil {
				t.Fatalf("the passive recipient recorded nothing: %v\n%s", err, perr.String())
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if got["error"] != nil || got["type"] != "acceptDelivery" || got["signedRequest"] != true {
				t.Fatalf("passive recipient: %v\n%s", got, perr.String())
			}
			checkContent(t, fwd.doc, got)
		})
	}
}

func waitPassive(t *testing.T, path string, stderr *bytes.Buffer) string {
	t.Helper()
	for i := 0; i < 600; i++ {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the passive recipient did not start:\n%s", stderr.String())
	return ""
}

// TestIntermediaryRefusals: what the library sends wrongly is refused with the code
// OSCI gives it, the library reports that code, and the intermediary records it.
func TestIntermediaryRefusals(t *testing.T) {
	e := peerEnv(t)
	srv := startIntermediary(t, e, "", nil)
	url := srv.URL()
	store := runPeer(t, e, "store", "--intermediary", url, "--attach", "100")
	store.mustSucceed(t, "store")
	id := store.doc["messageId"].(string)

	mallory := filepath.Join(t.TempDir(), "mallory_cipher.pem")
	key := filepath.Join(t.TempDir(), "mallory.key")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", mallory, "-days", "2", "-subj", "/CN=Mallory Cipher").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	cases := []struct {
		name string
		mode string
		args []string
		want string
	}{
		{"replayed message id", "store", []string{"--message-id", id}, "9801"},
		{"message id not issued", "store", []string{"--message-id", "never-issued"}, "9801"},
		{"addressee certificate of no known CA", "store", []string{"--addressee", mallory}, "9706"},
		{"fetch by another recipient", "fetch", []string{"--signer", "dave_signature_4096.p12", "--decrypter", "dave_cipher_4096.p12", "--message-id", id}, "9803"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(srv.Refusals())
			r := runPeer(t, e, c.mode, append([]string{"--intermediary", url}, c.args...)...)
			if r.exit != 3 || r.errorCode() != c.want {
				t.Fatalf("exit %d, library reports %q, want exit 3 and %s: %v\n%s", r.exit, r.errorCode(), c.want, r.doc["error"], r.stderr)
			}
			refs := srv.Refusals()
			if len(refs) != before+1 || refs[len(refs)-1].Code.String() != c.want {
				t.Errorf("intermediary recorded %v", refs[before:])
			}
		})
	}
	// The delivery is still there for its addressee after all that.
	fetch := runPeer(t, e, "fetch", "--intermediary", url, "--message-id", id)
	fetch.mustSucceed(t, "fetch after the refusals")
}

// ecdsaSigner makes a PKCS#12 file (PIN 123456) with a self-signed P-256 signature key.
func ecdsaSigner(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, crt, p12 := filepath.Join(dir, "ec.key"), filepath.Join(dir, "ec.pem"), filepath.Join(dir, "ecdsa_signature.p12")
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=Erika ECDSA Signature"},
		{"pkcs12", "-export", "-inkey", key, "-in", crt, "-out", p12, "-passout", "pass:123456"},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	return p12
}
