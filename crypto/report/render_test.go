package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func ptime(s string) *time.Time {
	t := mustTime(s)
	return &t
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// sampleReport covers every renderer branch: a passing QES with a timestamp
// and a full chain, a countersignature, a failed signature without signer,
// a standalone timestamp, and hostile strings in document-controlled fields.
func sampleReport() *Report {
	signer := &Certificate{
		Subject:   "CN=Erika Mustermann,O=Musterbehörde,C=DE",
		Issuer:    "CN=D-TRUST Qualified CA 1 2008:PN,O=D-Trust GmbH,C=DE",
		Serial:    "930486",
		SHA256:    "0e9b5c373afec1ced5723fcd9231f793bb330ffbf2b94bb8698301c90405b9bf",
		NotBefore: mustTime("2011-11-17T13:17:27Z"),
		NotAfter:  mustTime("2015-11-27T13:17:27Z"),
	}
	tsa := &Certificate{Subject: "CN=D-TRUST TSU 12 2017,O=D-Trust GmbH,C=DE", Issuer: "CN=D-TRUST Root CA 1 2017", Serial: "42", SHA256: "aa"}
	r := &Report{
		Tool:           "poststelle test",
		ValidationTime: mustTime("2014-11-14T10:34:20Z"),
		Policy: &Policy{Name: "test policy <i>", Constraints: []PolicyConstraint{
			{Name: "revocationFreshness", Value: "ignore"}, {Name: "other", Value: "x\ny"},
		}},
		Document: Document{
			Name:   "Antrag <script>alert(1)</script>.p7m",
			SHA256: "c8f2f68502636c586aadb8d5890675ea5177f4d2855dd1ccb5f91ca3ac425498",
			Size:   12345,
		},
		Signatures: []Signature{
			{
				ID:                "S-1",
				Format:            "CAdES-BASELINE-T",
				Indication:        TotalPassed,
				Qualification:     QESig,
				Signer:            signer,
				SigningTime:       ptime("2014-11-13T10:34:20Z"),
				BestSignatureTime: ptime("2014-11-13T10:35:00Z"),
				Timestamps: []Timestamp{{
					Type: SignatureTimestamp, GenTime: mustTime("2014-11-13T10:35:00Z"), TSA: tsa,
					Indication: Passed, Qualification: QTSA,
				}},
				Chain: []Certificate{
					{Subject: signer.Subject, SHA256: signer.SHA256},
					{Subject: "CN=D-TRUST Qualified CA 1 2008:PN,O=D-Trust GmbH,C=DE", SHA256: "a3ed"},
					{Subject: "CN=D-TRUST Qualified Root CA 1 2008:PN,O=D-Trust GmbH,C=DE", SHA256: "36f6", Trusted: true},
				},
				Checks: []Check{
					{ID: "cms.message-digest", Description: "message-digest attribute matches the content", Result: CheckOK},
					{ID: "cms.signature", Description: "signature value verifies over the signed attributes", Result: CheckOK},
					{ID: "trust.revocation", Description: "revocation status of the signing certificate", Result: CheckWarning,
						Detail: "no revocation data in the signature; offline"},
					{ID: "cms.signing-time", Description: "signing-time attribute", Result: CheckInfo, Detail: "claimed 2014-11-13T10:34:20Z"},
				},
			},
			{
				ID:                 "S-2",
				CounterSignatureOf: "S-1",
				Indication:         Indeterminate,
				SubIndication:      NoCertificateChainFound,
				Qualification:      QualificationNotApplicable,
				Signer:             &Certificate{Subject: "CN=Evil\x1b[2J\nFake: line", Issuer: "CN=x", Serial: "1", SHA256: "bb"},
				Checks: []Check{
					{ID: "trust.chain", Description: "certificate chain to a trust anchor", Result: CheckFailed,
						Detail: "no trust anchor for \"CN=x\" <b>bold</b>"},
				},
			},
			{
				ID:            "S-3",
				Indication:    TotalFailed,
				SubIndication: HashFailure,
				Qualification: QualificationNotApplicable,
				Checks: []Check{
					{ID: "cms.signer-certificate", Description: "signing certificate present", Result: CheckFailed, Detail: "not found"},
				},
			},
		},
		Timestamps: []Timestamp{{
			Type: DetachedTimestamp, GenTime: mustTime("2018-05-23T13:18:29Z"), TSA: tsa,
			Indication: Indeterminate, SubIndication: SignedDataNotFound, Qualification: TimestampQualificationNotApplicable,
			Checks: []Check{{ID: "tsp.imprint", Description: "message imprint matches the data", Result: CheckFailed, Detail: "no data given"}},
		}},
	}
	r.ApplyWrittenForm(WrittenFormPolicy{})
	return r
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change)\n--- got ---\n%s", name, got)
	}
}

func TestWriteJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.json", buf.Bytes())
}

func TestWriteTextGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.txt", buf.Bytes())
	if bytes.ContainsRune(buf.Bytes(), 0x1b) {
		t.Error("text output contains a raw escape character from a certificate subject")
	}
	if strings.Contains(buf.String(), "\nFake: line") {
		t.Error("a newline in a certificate subject forged a line in the text output")
	}
}

func TestWriteHTMLGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.html", buf.Bytes())
	out := buf.String()
	for _, bad := range []string{"<script>", "<b>bold</b>", "<link", "src=", "http://", "https://", "\x1b"} {
		if strings.Contains(out, bad) {
			t.Errorf("html output contains %q: not escaped or not self-contained", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;", "Prüfprotokoll", "<style>", "@media print", "Schriftform ersetzt: ja"} {
		if !strings.Contains(out, want) {
			t.Errorf("html output lacks %q", want)
		}
	}
}

// TestJSONContract pins the field names that `poststelle verify --format
// json` promises, independent of the golden file.
func TestJSONContract(t *testing.T) {
	var buf bytes.Buffer
	r := sampleReport()
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tool", "validationTime", "document", "signatures", "writtenFormSatisfied", "writtenFormReason"} {
		if _, ok := top[k]; !ok {
			t.Errorf("top level lacks %q", k)
		}
	}
	var sigs []map[string]json.RawMessage
	if err := json.Unmarshal(top["signatures"], &sigs); err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 3 {
		t.Fatalf("got %d signatures, want 3", len(sigs))
	}
	for i, s := range sigs {
		for _, k := range []string{"indication", "subIndication", "qualification", "signer", "signingTime"} {
			if _, ok := s[k]; !ok {
				t.Errorf("signature %d lacks %q", i, k)
			}
		}
	}
	if string(sigs[0]["subIndication"]) != "null" || string(sigs[2]["signer"]) != "null" || string(sigs[2]["signingTime"]) != "null" {
		t.Errorf("absent values must be null: subIndication %s, signer %s, signingTime %s",
			sigs[0]["subIndication"], sigs[2]["signer"], sigs[2]["signingTime"])
	}
	if string(sigs[0]["qualification"]) != `"QESig"` {
		t.Errorf("qualification = %s, want \"QESig\"", sigs[0]["qualification"])
	}
}

func TestJSONEmptyListsAreArrays(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &Report{Signatures: []Signature{{ID: "S", Indication: TotalPassed, Qualification: AdESig}}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"timestamps": []`, `"chain": []`, `"checks": []`} {
		if !strings.Contains(buf.String(), k) {
			t.Errorf("output lacks %s:\n%s", k, buf.String())
		}
	}
	buf.Reset()
	if err := WriteJSON(&buf, &Report{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"signatures": []`) {
		t.Errorf("no signatures must render as [], got:\n%s", buf.String())
	}
}

func TestJSONRoundTrip(t *testing.T) {
	want := sampleReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Reading gives empty lists where the writer normalized nil ones.
	if want = normalized(want); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadJSONRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"garbage", "{", "decode json"},
		{"trailing", `{"signatures":[]} {}`, "trailing data"},
		{"unknown indication", `{"signatures":[{"id":"S","indication":"MAYBE","subIndication":null,"qualification":"N/A"}]}`, "not a signature indication"},
		{"timestamp indication on signature", `{"signatures":[{"id":"S","indication":"PASSED","subIndication":null,"qualification":"N/A"}]}`, "not a signature indication"},
		{"passed with sub", `{"signatures":[{"id":"S","indication":"TOTAL_PASSED","subIndication":"HASH_FAILURE","qualification":"N/A"}]}`, "does not go with"},
		{"failed with indeterminate sub", `{"signatures":[{"id":"S","indication":"TOTAL_FAILED","subIndication":"NO_POE","qualification":"N/A"}]}`, "does not go with"},
		{"unknown sub", `{"signatures":[{"id":"S","indication":"INDETERMINATE","subIndication":"WHATEVER","qualification":"N/A"}]}`, "does not go with"},
		{"unknown qualification", `{"signatures":[{"id":"S","indication":"TOTAL_PASSED","subIndication":null,"qualification":"QES"}]}`, "unknown qualification"},
		{"bad check", `{"signatures":[{"id":"S","indication":"TOTAL_PASSED","subIndication":null,"qualification":"N/A","checks":[{"id":"c","result":"MEH"}]}]}`, "unknown result"},
		{"bad timestamp", `{"signatures":[],"timestamps":[{"indication":"TOTAL_WHAT","subIndication":null}]}`, "unknown indication"},
		{"sub not a string", `{"signatures":[{"id":"S","indication":"INDETERMINATE","subIndication":5,"qualification":"N/A"}]}`, "subIndication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadJSONSizeCap(t *testing.T) {
	big := strings.NewReader(`{"tool":"` + strings.Repeat("a", MaxJSONSize) + `"}`)
	if _, err := ReadJSON(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v, want size-cap error", err)
	}
}
