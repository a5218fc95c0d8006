package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/internal/corpus"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"verify"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

type cliReport struct {
	Signatures []struct {
		Indication    string           `json:"indication"`
		SubIndication *string          `json:"subIndication"`
		Qualification string           `json:"qualification"`
		Signer        *json.RawMessage `json:"signer"`
		SigningTime   *string          `json:"signingTime"`
	} `json:"signatures"`
	Timestamps []struct {
		Indication string `json:"indication"`
	} `json:"timestamps"`
}

func decodeCLI(t *testing.T, out string) cliReport {
	t.Helper()
	var r cliReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	// The keys of the contract are always present.
	var raw struct {
		Signatures []map[string]json.RawMessage `json:"signatures"`
	}
	json.Unmarshal([]byte(out), &raw)
	for _, s := range raw.Signatures {
		for _, k := range []string{"indication", "subIndication", "qualification", "signer", "signingTime"} {
			if _, ok := s[k]; !ok {
				t.Errorf("signature lacks %q", k)
			}
		}
	}
	return r
}

func TestVerifyCommandGenerated(t *testing.T) {
	p := verifytest.New(t, "rsa")
	dir := t.TempDir()
	content := []byte("Widerspruch gegen den Bescheid vom 1. März\n")
	doc := filepath.Join(dir, "widerspruch.txt")
	sig := filepath.Join(dir, "widerspruch.txt.p7s")
	tampered := filepath.Join(dir, "tampered.txt")
	garbage := filepath.Join(dir, "garbage.p7s")
	os.WriteFile(doc, content, 0o600)
	os.WriteFile(tampered, append(content, 'x'), 0o600)
	os.WriteFile(sig, p.Sign(t, content, false), 0o600)
	os.WriteFile(garbage, []byte("this is not CMS"), 0o600)

	code, out, errs := runCLI(t, "--trust", p.CACert, "--detached", doc, "--format", "json", sig)
	if code != 0 {
		t.Fatalf("valid: exit %d\n%s\n%s", code, out, errs)
	}
	r := decodeCLI(t, out)
	if len(r.Signatures) != 1 || r.Signatures[0].Indication != "TOTAL_PASSED" || r.Signatures[0].SubIndication != nil ||
		r.Signatures[0].Signer == nil || r.Signatures[0].SigningTime == nil {
		t.Errorf("valid: %s", out)
	}
	// No trusted list: the qualification is not determined (DSS agrees).
	if r.Signatures[0].Qualification != "N/A" {
		t.Errorf("qualification %q", r.Signatures[0].Qualification)
	}

	code, out, _ = runCLI(t, "--trust", p.CACert, "--detached", tampered, "--format", "json", sig)
	if code != 1 {
		t.Fatalf("tampered: exit %d", code)
	}
	if r := decodeCLI(t, out); r.Signatures[0].Indication != "TOTAL_FAILED" || r.Signatures[0].SubIndication == nil || *r.Signatures[0].SubIndication != "HASH_FAILURE" {
		t.Errorf("tampered: %s", out)
	}

	// Without the anchor the chain is not found: exit 1.
	if code, _, _ := runCLI(t, "--detached", doc, sig); code != 1 {
		t.Errorf("untrusted: exit %d", code)
	}
	for name, args := range map[string][]string{
		"garbage":        {garbage},
		"missing file":   {filepath.Join(dir, "nope.p7s")},
		"no file":        {},
		"two files":      {sig, sig},
		"bad format":     {"--format", "pdf", sig},
		"bad time":       {"--at", "yesterday", sig},
		"bad trust":      {"--trust", garbage, sig},
		"unknown flag":   {"--frobnicate", sig},
		"missing detach": {"--detached", filepath.Join(dir, "nope"), sig},
		"bad policy":     {"--revocation-freshness", "sometimes", sig},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
	// Twelve days on, the embedded CRL (10 days) is past its nextUpdate:
	// the default policy accepts it, a policy demanding fresh data does not.
	later := time.Now().Add(12 * 24 * time.Hour).UTC().Format(time.RFC3339)
	code, out, _ = runCLI(t, "--trust", p.CACert, "--detached", doc, "--at", later, sig)
	if code != 0 || !strings.Contains(out, "Policy:          poststelle default") || !strings.Contains(out, "revocationFreshness=ignore") {
		t.Errorf("stale CRL, default policy: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "--trust", p.CACert, "--detached", doc, "--at", later, "--revocation-freshness", "next-update", "--policy-name", "strict", sig)
	if code != 1 || !strings.Contains(out, "TRY_LATER") || !strings.Contains(out, "Policy:          strict (revocationFreshness=next-update)") {
		t.Errorf("stale CRL, next-update policy: exit %d\n%s", code, out)
	}
	// text and html render the same verdict.
	code, out, _ = runCLI(t, "--trust", p.CACert, "--detached", doc, sig)
	if code != 0 || !strings.Contains(out, "TOTAL_PASSED") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "--trust", p.CACert, "--detached", doc, "--format", "html", sig)
	if code != 0 || !strings.Contains(out, "<html") {
		t.Errorf("html: exit %d", code)
	}
}

// TestVerifyCommandCorpus runs real samples at the time they were valid,
// with the anchors the DSS oracle used.
func TestVerifyCommandCorpus(t *testing.T) {
	sigs := corpus.Path(t, "signatures")
	oracle := filepath.Join("..", "..", "test", "integration", "dss")
	anchors := filepath.Join(oracle, "anchors")
	cases := []struct {
		name     string
		args     []string
		code     int
		ind, sub string
	}{
		{"plugtest CAdES-LT at signing time", []string{"--trust", filepath.Join(anchors, "cades", "Signature-CBp-LT-2.p7m"), "--at", "2013-12-05T15:00:55Z", filepath.Join(sigs, "cades", "Signature-CBp-LT-2.p7m")}, 0, "TOTAL_PASSED", ""},
		{"plugtest CAdES-LT today", []string{"--trust", filepath.Join(anchors, "cades", "Signature-CBp-LT-2.p7m"), filepath.Join(sigs, "cades", "Signature-CBp-LT-2.p7m")}, 1, "INDETERMINATE", ""},
		{"enveloping, broken content", []string{filepath.Join(sigs, "cades", "dss-2011", "cades-enveloping-broken.pkcs7")}, 1, "TOTAL_FAILED", "HASH_FAILURE"},
		{"detached with content", []string{"--detached", filepath.Join(sigs, "cades", "dss-916", "test.txt"), filepath.Join(sigs, "cades", "dss-916", "test.txt.signed.qes.detached.p7s")}, 1, "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"},
		{"malformed", []string{filepath.Join(sigs, "cades", "malformed-cades.p7m")}, 2, "", ""},
		// PDFs as DSS judges them (golden/*/pades): the generated signature
		// with its CA passes (DSS: crypto/pades DIFFERENCES.md P7), a file
		// whose /Contents left the ByteRange gap fails, and without trust
		// there is no chain.
		{"PAdES generated, trusted CA", []string{"--trust", filepath.Join(oracle, "generated", "pades", "ca.pem"), "--at", "2026-12-02T03:23:47Z", filepath.Join(oracle, "generated", "pades", "signed.pdf")}, 0, "TOTAL_PASSED", ""},
		{"PAdES corrupted", []string{filepath.Join(sigs, "pades", "pdf-signed-corrupted.pdf")}, 1, "TOTAL_FAILED", "FORMAT_FAILURE"},
		{"PAdES-LT untrusted", []string{filepath.Join(sigs, "pades", "PAdES-LT.pdf")}, 1, "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"},
		// XAdES as DSS judges it (golden/untrusted-now/xades): valid, but no chain without trust;
		// a wrapped document's signature covers another element than the one read.
		{"XAdES untrusted", []string{filepath.Join(sigs, "xades", "dss-signed.xml")}, 1, "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"},
		{"XAdES tampered reference", []string{filepath.Join(sigs, "xades", "xades-tampered-reference.xml")}, 1, "", ""},
		{"XML with a DTD", []string{filepath.Join(sigs, "xades", "xades-with-dtd-injection.xml")}, 2, "", ""},
	}
	for _, c := range cases {
		code, out, errs := runCLI(t, append([]string{"--format", "json"}, c.args...)...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, code, c.code, errs)
			continue
		}
		if c.ind == "" {
			continue
		}
		r := decodeCLI(t, out)
		if len(r.Signatures) == 0 || r.Signatures[0].Indication != c.ind ||
			(c.sub != "" && (r.Signatures[0].SubIndication == nil || *r.Signatures[0].SubIndication != c.sub)) {
			t.Errorf("%s: %s", c.name, out)
		}
	}
	// A bare RFC 3161 token with the data it covers.
	code, out, _ := runCLI(t, "--format", "json", "--detached", filepath.Join(sigs, "tsp", "d-trust.tsr.timestamped-data.txt"), filepath.Join(sigs, "tsp", "d-trust.tsr"))
	if code != 1 {
		t.Errorf("token: exit %d", code)
	}
	if r := decodeCLI(t, out); len(r.Timestamps) != 1 || len(r.Signatures) != 0 {
		t.Errorf("token: %s", out)
	}
}
