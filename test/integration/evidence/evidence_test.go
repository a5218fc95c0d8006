//go:build integration

// Package evidence_test checks the evidence bundle end to end: the real
// `poststelle serve` receives a message over SMTP with a receipt timestamp
// from a test TSA, the office API and `poststelle evidence` make its
// bundle, and `poststelle evidence verify` and the EU DSS validator (the
// oracle in test/integration/dss) check it, intact and changed.
package evidence_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/selfissued"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

func TestBundleThroughServeAndDSS(t *testing.T) {
	dir := t.TempDir()
	tsa, tsaURL := tsptest.Start(t, tsptest.Normal)
	tsaPEM := filepath.Join(dir, "tsa.pem")
	os.WriteFile(tsaPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.CertDER}), 0o600)
	ca, err := selfissued.LoadOrCreateCA(filepath.Join(dir, "ca", "ca.pem"), filepath.Join(dir, "ca", "ca-key.pem"), "Test Seal CA")
	if err != nil {
		t.Fatal(err)
	}
	seal, sealKey := filepath.Join(dir, "seal", "seal.pem"), filepath.Join(dir, "seal", "seal-key.pem")
	if _, err := ca.LoadOrIssue(seal, sealKey, "Test Evidence Seal", selfissued.Seal); err != nil {
		t.Fatal(err)
	}
	api, smtp := servetest.FreeAddr(t), servetest.FreeAddr(t)
	config := filepath.Join(dir, "poststelle.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`data_dir: %s
smtp: {listen: "%s", accept_all: true}
office_api: {listen: "%s"}
office_imap: {listen: "%s"}
smtp_submission: {listen: "%s"}
verification: {tsas: [{name: test-tsa, url: "%s"}]}
evidence: {seal: {cert_file: %s, key_file: %s}}
`, dir, smtp, api, servetest.FreeAddr(t), servetest.FreeAddr(t), tsaURL, seal, sealKey)), 0o600)
	servetest.Start(t, bin, config, api)

	eml := []byte("From: Erika Mustermann <erika@example.org>\r\nTo: poststelle@example.org\r\nSubject: Antrag auf Akteneinsicht\r\n" +
		"Message-ID: <evidence-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSehr geehrte Damen und Herren,\r\nich beantrage Akteneinsicht.\r\n")
	if r, err := servetest.SendSMTP(smtp, "erika@example.org", "poststelle@example.org", eml); err != nil || r.EventID == "" {
		t.Fatalf("SMTP: %+v %v", r, err)
	}
	servetest.WaitEvents(t, bin, config, "TimestampApplied", 1)
	servetest.WaitEvents(t, bin, config, "MessageRouted", 1)
	received := servetest.Replay(t, bin, config, "MessageReceived")
	if len(received) != 1 {
		t.Fatalf("%d messages received", len(received))
	}
	stream := received[0].Stream
	if m := received[0].Payload.(*gateway.MessageReceived); m.Subject != "Antrag auf Akteneinsicht" {
		t.Fatalf("received %+v", m)
	}

	// The office API's download.
	login := servetest.DemoLogin(t, dir)
	fromAPI := filepath.Join(dir, "api.asice")
	servetest.WaitFor(t, "the bundle download", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/offices/"+offices.DemoOffice+"/messages/"+stream+"/bundle", nil)
		req.SetBasicAuth(login.User, login.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false // not delivered to the office yet
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.etsi.asic-e+zip" {
			t.Fatalf("Content-Type %q", ct)
		}
		b, _ := io.ReadAll(resp.Body)
		os.WriteFile(fromAPI, b, 0o600)
		return true
	})
	// And the command's, while serve runs.
	fromCLI := filepath.Join(dir, "cli.asice")
	if code, _, errs := servetest.CLI(t, bin, config, "evidence", stream, "--out", fromCLI); code != 0 {
		t.Fatalf("poststelle evidence: exit %d\n%s", code, errs)
	}

	pub := filepath.Join(dir, "keys", "gateway.pub")
	for _, f := range []string{fromAPI, fromCLI} {
		code, out, errs := run(t, bin, "evidence", "verify", f, "--key", pub, "--trust", seal, "--trust", tsaPEM)
		if code != 0 || !strings.Contains(out, "VALID:") {
			t.Fatalf("evidence verify %s: exit %d\n%s%s", f, code, out, errs)
		}
		for _, want := range []string{"ok     receipt-timestamp", "ok     head-timestamp", "ok     inclusion", "ok     seal"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %q in\n%s", f, want, out)
			}
		}
		if ind, sub := dss(t, f, seal); ind != "TOTAL_PASSED" {
			t.Errorf("DSS on %s: %s %s, want TOTAL_PASSED with the seal certificate as trust anchor", f, ind, sub)
		}
		// Under its CA, which publishes no revocation data, DSS may want
		// revocation information: anything but a failure of the seal.
		if ind, sub := dss(t, f, ca.CertFile); ind != "TOTAL_PASSED" && (ind != "INDETERMINATE" || !revocationOnly(sub)) {
			t.Errorf("DSS on %s with the seal's CA: %s %s", f, ind, sub)
		} else {
			t.Logf("DSS with the seal's CA as anchor: %s %s", ind, sub)
		}
	}
	// Without trust anchors DSS cannot pass the seal, for want of trust only.
	if ind, sub := dss(t, fromCLI, ""); ind != "INDETERMINATE" || !strings.Contains(sub, "CHAIN") {
		t.Errorf("DSS without trust: %s %s, want INDETERMINATE for the chain", ind, sub)
	}

	// One changed byte in the original: both refuse it.
	data, _ := os.ReadFile(fromCLI)
	changed := filepath.Join(dir, "changed.asice")
	os.WriteFile(changed, flip(t, data, "message/original.eml"), 0o600)
	if code, out, _ := run(t, bin, "evidence", "verify", changed, "--key", pub, "--trust", seal); code != 1 || !strings.Contains(out, "INVALID:") {
		t.Fatalf("changed bundle: exit %d\n%s", code, out)
	}
	if ind, sub := dss(t, changed, seal); ind != "TOTAL_FAILED" {
		t.Errorf("DSS on the changed bundle: %s %s, want TOTAL_FAILED", ind, sub)
	}
}

// revocationOnly names the sub-indications that say only that revocation
// status could not be established.
func revocationOnly(sub string) bool {
	switch sub {
	case "TRY_LATER", "REVOCATION_OUT_OF_BOUNDS_NO_POE", "CERTIFICATE_CHAIN_GENERAL_FAILURE":
		return true
	}
	return false
}

func run(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return 0, stdout.String(), stderr.String()
}

// dss validates a bundle with the DSS oracle and returns the seal's
// indication and sub-indication.
func dss(t *testing.T, file, trust string) (string, string) {
	t.Helper()
	validate, _ := filepath.Abs("../dss/validate.sh")
	args := []string{validate, "--at", "now"}
	if trust != "" {
		args = append(args, "--trust", trust)
	}
	_, out, errs := run(t, "bash", append(args, file)...)
	var res struct {
		Signatures []struct {
			Indication    string  `json:"indication"`
			SubIndication *string `json:"subIndication"`
		} `json:"signatures"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("DSS output: %v\n%s\n%s", err, out, errs)
	}
	if res.Error != "" || len(res.Signatures) != 1 {
		t.Fatalf("DSS on %s: error %q, %d signatures\n%s", file, res.Error, len(res.Signatures), errs)
	}
	sub := ""
	if p := res.Signatures[0].SubIndication; p != nil {
		sub = *p
	}
	return res.Signatures[0].Indication, sub
}

// flip re-zips data with one byte of entry name changed.
func flip(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	found := false
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		content, _ := io.ReadAll(rc)
		rc.Close()
		if zf.Name == name {
			content[len(content)/2] ^= 1
			found = true
		}
		hdr := &zip.FileHeader{Name: zf.Name, Method: zf.Method, Modified: time.Unix(0, 0)}
		var w io.Writer
		if zf.Method == zip.Store {
			hdr.CRC32, hdr.CompressedSize64, hdr.UncompressedSize64 = zf.CRC32, zf.UncompressedSize64, zf.UncompressedSize64
			w, err = zw.CreateRaw(hdr)
		} else {
			w, err = zw.CreateHeader(hdr)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	zw.Close()
	if !found {
		t.Fatalf("no %s in the bundle", name)
	}
	return b.Bytes()
}
