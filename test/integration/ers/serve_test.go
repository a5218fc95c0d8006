//go:build integration

// Package ers checks with DSS the RFC 4998 evidence records that the real
// `poststelle serve` builds itself (gateway/preservation): serve runs with
// the demo's own TSA under the demo CA, receives one message over SMTP and
// builds records over the original and a log head; `poststelle evidence
// records` exports them, and DSS validates each against its data object,
// intact and with one byte flipped, with the demo CA as the only trust
// anchor. The verdicts must be the ones DSS gives the fixed case built the
// same way (crypto/ers/testdata/dss/golden: built-today and
// built-changed-data). run.sh runs it after the fixed cases.
package ers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/internal/servetest"
)

var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

// The golden verdicts of the fixed cases that serve's records correspond
// to: a fresh record over one of several data objects, validated an hour
// after its timestamp, intact and with a changed byte in the data object.
const (
	goldenIntact  = "../../../crypto/ers/testdata/dss/golden/built-today.json"
	goldenFlipped = "../../../crypto/ers/testdata/dss/golden/built-changed-data.json"
)

func TestServeRecordsWithDSS(t *testing.T) {
	dir := t.TempDir()
	config, api, smtp := writeConfig(t, dir)
	p := servetest.Start(t, bin, config, api)
	eml := []byte("From: Erika Mustermann <erika@example.org>\r\nTo: poststelle@kreis.example\r\nSubject: Antrag auf Akteneinsicht\r\n" +
		"Message-ID: <ers-dss@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGuten Tag,\r\nich beantrage Akteneinsicht.\r\n")
	if r, err := servetest.SendSMTP(smtp, "erika@example.org", "poststelle@kreis.example", eml); err != nil || r.EventID == "" {
		t.Fatalf("SMTP: %+v %v", r, err)
	}
	saved := waitRecords(t, config)
	p.Stop(t)

	export := filepath.Join(dir, "records")
	if code, out, errs := servetest.CLI(t, bin, config, "evidence", "records", "--out", export); code != 0 {
		t.Fatalf("poststelle evidence records: exit %d\n%s%s", code, out, errs)
	}
	jobs := writeJobs(t, dir, export, saved)
	results := filepath.Join(dir, "dss")
	validate, err := filepath.Abs("../dss/validate.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", validate, "--evidence-record", "--jobs", jobs, "--corpus", export, "--base", dir, "--out", results)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("DSS: %v\n%s", err, out)
	}

	wantIntact, wantFlipped := readVerdict(t, goldenIntact), readVerdict(t, goldenFlipped)
	// Whatever the goldens say after a regeneration: the intact data
	// object is found in its record, the flipped one is not, and DSS does
	// not pass it.
	if !wantIntact.Found || !wantIntact.Intact || wantFlipped.Found || wantFlipped.Indication == "PASSED" {
		t.Fatalf("golden verdicts no longer say found intact / not found:\n%s\n%s", wantIntact, wantFlipped)
	}
	for _, name := range names(saved) {
		for _, c := range []struct {
			job  string
			want verdict
		}{{name, wantIntact}, {name + "-flipped", wantFlipped}} {
			got := readVerdict(t, filepath.Join(results, c.job+".json"))
			t.Logf("DSS on %s: %s", c.job, got)
			if got.String() != c.want.String() {
				t.Errorf("DSS on %s:\n got %s\nwant %s (the fixed case's golden verdict)", c.job, got, c.want)
			}
		}
	}
}

// writeConfig writes the demo set-up as a configuration file, on free
// loopback ports: SMTP accepting every recipient, the gateway's own TSA,
// whose certificate the demo CA in <data_dir>/demo-ca issues, and the
// evidence-records job every second instead of daily.
func writeConfig(t *testing.T, dir string) (config, api, smtp string) {
	t.Helper()
	api, smtp = servetest.FreeAddr(t), servetest.FreeAddr(t)
	config = filepath.Join(dir, "poststelle.yaml")
	conf := fmt.Sprintf(`data_dir: %s
smtp: {listen: %q, accept_all: true}
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
tsa_server: {listen: %q}
evidence: {records: {interval: 1s}}
`, filepath.Join(dir, "data"), smtp, api, servetest.FreeAddr(t), servetest.FreeAddr(t), servetest.FreeAddr(t))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, api, smtp
}

// waitRecords waits for the records over the original and a log head.
func waitRecords(t *testing.T, config string) []*gateway.EvidenceRecordSaved {
	t.Helper()
	var saved []*gateway.EvidenceRecordSaved
	servetest.WaitFor(t, "EvidenceRecordSaved over the original and a log head", func() bool {
		saved = saved[:0]
		kinds := map[string]bool{}
		for _, p := range servetest.Events(t, bin, config, "EvidenceRecordSaved") {
			s := p.(*gateway.EvidenceRecordSaved)
			saved = append(saved, s)
			kinds[s.Object.Kind] = true
		}
		return kinds[gateway.PreservedOriginal] && kinds[gateway.PreservedLogHead]
	})
	for _, s := range saved {
		if s.Cause != gateway.RecordBuilt || !strings.Contains(s.TSA, "Poststelle Demo TSA") {
			t.Fatalf("record %+v: want built by the demo TSA", s)
		}
	}
	return saved
}

// names are the exported names (NAME.ers beside NAME) of the saved records.
func names(saved []*gateway.EvidenceRecordSaved) []string {
	var out []string
	for _, s := range saved {
		out = append(out, preservation.ObjectName(s.Object.Kind, s.Object.Stream, s.Object.Data))
	}
	return out
}

// writeJobs writes the DSS jobs file (name, record, data, trust, at; see
// test/integration/dss/README.md) for every exported record: against its
// data object, and against a copy with one byte flipped, with the demo CA
// as the only trust anchor, validated now.
func writeJobs(t *testing.T, dir, export string, saved []*gateway.EvidenceRecordSaved) string {
	t.Helper()
	trust := filepath.Join("data", "demo-ca", "ca.pem")
	var b strings.Builder
	b.WriteString("# name\trecord\tdata\ttrust\tat   (written by TestServeRecordsWithDSS)\n")
	for _, name := range names(saved) {
		data, err := os.ReadFile(filepath.Join(export, name))
		if err != nil {
			t.Fatalf("exported data object: %v", err)
		}
		flipped := bytes.Clone(data)
		flipped[len(flipped)/2] ^= 0x01
		if err := os.WriteFile(filepath.Join(export, name+".flipped"), flipped, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s\t%s.ers\t%s\t%s\tnow\n", name, name, name, trust)
		fmt.Fprintf(&b, "%s-flipped\t%s.ers\t%s.flipped\t%s\tnow\n", name, name, name, trust)
	}
	jobs := filepath.Join(dir, "jobs.tsv")
	if err := os.WriteFile(jobs, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// dssResult is the part of the oracle's output (evidence-record mode) that
// makes the verdict.
type dssResult struct {
	Error           string `json:"error"`
	EvidenceRecords []struct {
		Indication      string  `json:"indication"`
		SubIndication   *string `json:"subIndication"`
		StructuralValid bool    `json:"structuralValid"`
		DigestMatchers  []struct {
			Type   string `json:"type"`
			Found  bool   `json:"found"`
			Intact bool   `json:"intact"`
		} `json:"digestMatchers"`
		Timestamps []struct {
			Indication           string  `json:"indication"`
			SubIndication        *string `json:"subIndication"`
			MessageImprintFound  bool    `json:"messageImprintFound"`
			MessageImprintIntact bool    `json:"messageImprintIntact"`
		} `json:"timestamps"`
		Errors []struct {
			Key string `json:"key"`
		} `json:"errors"`
	} `json:"evidenceRecords"`
}

// verdict is what must agree: the record's indication, whether the record
// is well formed, whether the data object's digest is found in it and
// intact, the indication of each of its timestamps with whether its
// message imprint matched, and the keys of DSS's errors. Warnings, chains
// and orphan references are left out: they name the test CA or the demo
// CA, or follow from the number of objects in the hash tree.
type verdict struct {
	Indication, SubIndication string
	Structural, Found, Intact bool
	Timestamps                []string
	Errors                    []string
}

func (v verdict) String() string {
	return fmt.Sprintf("%s/%s structural=%t data object found=%t intact=%t timestamps=%v errors=%v",
		v.Indication, v.SubIndication, v.Structural, v.Found, v.Intact, v.Timestamps, v.Errors)
}

func readVerdict(t *testing.T, file string) verdict {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r dssResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if r.Error != "" || len(r.EvidenceRecords) != 1 {
		t.Fatalf("%s: DSS error %q, %d evidence records", file, r.Error, len(r.EvidenceRecords))
	}
	er := r.EvidenceRecords[0]
	v := verdict{Indication: er.Indication, SubIndication: deref(er.SubIndication), Structural: er.StructuralValid}
	// A data object whose digest is in no reference gets no matcher of
	// its own: every reference is then an orphan.
	for _, m := range er.DigestMatchers {
		if m.Type == "EVIDENCE_RECORD_ARCHIVE_OBJECT" {
			v.Found, v.Intact = m.Found, m.Intact
		}
	}
	for _, e := range er.Errors {
		v.Errors = append(v.Errors, e.Key)
	}
	for _, ts := range er.Timestamps {
		v.Timestamps = append(v.Timestamps, fmt.Sprintf("%s/%s imprint=%t,%t",
			ts.Indication, deref(ts.SubIndication), ts.MessageImprintFound, ts.MessageImprintIntact))
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
