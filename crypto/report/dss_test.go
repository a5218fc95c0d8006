package report

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// oracleGolden is where test/integration/dss keeps DSS's verdicts.
const oracleGolden = "../../test/integration/dss/golden"

// TestParseDSSGoldenFiles reads every oracle golden file: the comparison
// test will depend on each of them parsing, with values our enums know.
func TestParseDSSGoldenFiles(t *testing.T) {
	n, refused := 0, 0
	err := filepath.WalkDir(oracleGolden, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		n++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		d2, err := ParseDSS(f)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if d2.Error != "" {
			refused++
			return nil
		}
		if _, err := d2.At(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for i, s := range d2.Signatures {
			if !Consistent(s.Indication, s.SubIndication) || !s.Qualification.Valid() {
				t.Errorf("%s: signature %d: DSS verdict %s/%s/%q not representable in our model",
					path, i+1, s.Indication, s.SubIndication, s.Qualification)
			}
			checkDSSTimestamps(t, path, s.Timestamps)
		}
		checkDSSTimestamps(t, path, d2.Timestamps)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 77 samples and variants, three or four runs each (see the oracle's README).
	if n < 200 {
		t.Errorf("found %d golden files in %s, want the oracle's full set (>= 200)", n, oracleGolden)
	}
	if refused == 0 {
		t.Error("no golden file records a refused document; malformed-cades.p7m should")
	}
}

func checkDSSTimestamps(t *testing.T, path string, ts []DSSTimestamp) {
	t.Helper()
	for i, x := range ts {
		if !x.Indication.Valid() || !Consistent(x.Indication, x.SubIndication) || (x.Qualification != "" && !x.Qualification.Valid()) {
			t.Errorf("%s: timestamp %d: DSS verdict %s/%s/%q not representable", path, i+1, x.Indication, x.SubIndication, x.Qualification)
		}
	}
}

func readDSS(t *testing.T, name string) *DSSResult {
	t.Helper()
	f, err := os.Open(filepath.Join(oracleGolden, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseDSS(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fromDSS builds the report our verifier would have to produce to agree.
func fromDSS(d *DSSResult) *Report {
	r := &Report{}
	for _, s := range d.Signatures {
		sig := Signature{ID: s.ID, Format: s.Format, Indication: s.Indication, SubIndication: s.SubIndication, Qualification: s.Qualification}
		if s.CounterSignature {
			sig.CounterSignatureOf = "S-0"
		}
		if s.Signer != nil {
			sig.Signer = &Certificate{Subject: s.Signer.Subject, SHA256: s.Signer.SHA256}
		}
		for _, ts := range s.Timestamps {
			sig.Timestamps = append(sig.Timestamps, Timestamp{SHA256: ts.SHA256, Indication: ts.Indication, SubIndication: ts.SubIndication, Qualification: ts.Qualification})
		}
		r.Signatures = append(r.Signatures, sig)
	}
	for _, ts := range d.Timestamps {
		r.Timestamps = append(r.Timestamps, Timestamp{Indication: ts.Indication, SubIndication: ts.SubIndication, Qualification: ts.Qualification})
	}
	return r
}

func TestCompareDSS(t *testing.T) {
	// A countersigned CAdES: two signatures with timestamps each.
	d := readDSS(t, "at-signing/cades/dss-1892/detached_with_counter_sig.p7m")
	if len(d.Signatures) != 2 {
		t.Fatalf("golden has %d signatures, want 2", len(d.Signatures))
	}
	if diffs := CompareDSS(fromDSS(d), d); len(diffs) != 0 {
		t.Errorf("identical verdicts reported as different: %v", diffs)
	}

	// The format is compared with DSS's name.
	r := fromDSS(d)
	r.Signatures[0].Format = "PKCS7"
	if diffs := CompareDSS(r, d); len(diffs) != 1 || diffs[0].Field != "format" || diffs[0].DSS != d.Signatures[0].Format {
		t.Errorf("format: %v", diffs)
	}

	// Our signatures in the other order still pair by signing certificate.
	r = fromDSS(d)
	r.Signatures[0], r.Signatures[1] = r.Signatures[1], r.Signatures[0]
	if diffs := CompareDSS(r, d); len(diffs) != 0 {
		t.Errorf("reordered signatures not paired by signer: %v", diffs)
	}

	r = fromDSS(d)
	r.Signatures[0].Indication = TotalPassed
	r.Signatures[0].SubIndication = NoSubIndication
	r.Signatures[1].Qualification = QESig
	r.Signatures[1].Timestamps = nil
	want := []Difference{
		{Item: "signature 1", Field: "indication", Ours: "TOTAL_PASSED", DSS: "INDETERMINATE"},
		{Item: "signature 1", Field: "subIndication", Ours: "", DSS: "NO_CERTIFICATE_CHAIN_FOUND"},
		{Item: "signature 2", Field: "qualification", Ours: "QESig", DSS: "N/A"},
		{Item: "signature 2 timestamps", Field: "count", Ours: "0", DSS: "1"},
	}
	if diffs := CompareDSS(r, d); !reflect.DeepEqual(diffs, want) {
		t.Errorf("diffs:\n got %v\nwant %v", diffs, want)
	}

	r = fromDSS(d)
	r.Signatures = r.Signatures[:1]
	diffs := CompareDSS(r, d)
	if len(diffs) == 0 || diffs[0] != (Difference{Item: "signatures", Field: "count", Ours: "1", DSS: "2"}) {
		t.Errorf("missing signature: got %v", diffs)
	}
}

func TestCompareDSSTimestampsAndRefusals(t *testing.T) {
	d := readDSS(t, "at-signing/tsp/d-trust.tsr")
	if len(d.Signatures) != 0 || len(d.Timestamps) != 1 {
		t.Fatalf("golden: %d signatures, %d timestamps; want 0, 1", len(d.Signatures), len(d.Timestamps))
	}
	r := fromDSS(d)
	if diffs := CompareDSS(r, d); len(diffs) != 0 {
		t.Errorf("identical: %v", diffs)
	}
	r.Timestamps[0].Indication = Passed
	r.Timestamps[0].SubIndication = NoSubIndication
	if diffs := CompareDSS(r, d); len(diffs) != 2 || diffs[0].Item != "timestamp 1" {
		t.Errorf("changed timestamp: got %v", diffs)
	}

	refused := readDSS(t, "now/cades/malformed-cades.p7m")
	if refused.Error == "" {
		t.Fatal("DSS accepted malformed-cades.p7m in the golden file")
	}
	if diffs := CompareDSS(nil, refused); diffs != nil {
		t.Errorf("both refused: got %v", diffs)
	}
	if diffs := CompareDSS(&Report{}, refused); len(diffs) != 1 || diffs[0].Field != "refused" {
		t.Errorf("only DSS refused: got %v", diffs)
	}
	if diffs := CompareDSS(nil, d); len(diffs) != 1 || diffs[0].Ours != "refused" {
		t.Errorf("only we refused: got %v", diffs)
	}
}

// TestPairTimestamps: two archive timestamps of the same second (as in
// Signature-C-B-LTA-10) pair with their own tokens, one to one, in whatever
// order either side lists them.
func TestPairTimestamps(t *testing.T) {
	at := func(s string) time.Time { return mustTime(s) }
	ours := []Timestamp{
		{SHA256: "aa", GenTime: at("2015-07-01T15:44:04.394Z"), Indication: Passed},
		{SHA256: "bb", GenTime: at("2015-07-01T15:44:04.493Z"), Indication: Indeterminate, SubIndication: SignedDataNotFound},
	}
	tests := []struct {
		name string
		dss  []DSSTimestamp
		want []int
	}{
		{"by token", []DSSTimestamp{{SHA256: "BB"}, {SHA256: "AA"}}, []int{1, 0}},
		{"by millisecond without digests", []DSSTimestamp{{ProductionTime: "2015-07-01T15:44:04.493Z"}, {ProductionTime: "2015-07-01T15:44:04.394Z"}}, []int{1, 0}},
		{"same second, one to one", []DSSTimestamp{{ProductionTime: "2015-07-01T15:44:04Z"}, {ProductionTime: "2015-07-01T15:44:04Z"}}, []int{0, 1}},
		{"unknown token falls back to position", []DSSTimestamp{{SHA256: "cc"}, {SHA256: "aa"}}, []int{-1, 0}},
		{"more on DSS's side", []DSSTimestamp{{SHA256: "aa"}, {SHA256: "bb"}, {SHA256: "dd"}}, []int{0, 1, -1}},
	}
	for _, tc := range tests {
		got := pairTimestamps(ours, tc.dss)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: paired %v, want %v", tc.name, got, tc.want)
		}
	}
	// The second DSS timestamp's verdict is compared with the second token,
	// not again with the first.
	dss := []DSSTimestamp{{SHA256: "aa", Indication: Passed}, {SHA256: "bb", Indication: Passed}}
	diffs := compareTimestamps("", ours, dss)
	if len(diffs) != 2 || diffs[0].Item != "timestamp 2" || diffs[0].Ours != string(Indeterminate) {
		t.Errorf("differences %v", diffs)
	}
}

func TestKnownDifferencesFile(t *testing.T) {
	f, err := os.Open("DIFFERENCES.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known, err := ParseKnownDifferences(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range known {
		if _, err := os.Stat(filepath.Join(oracleGolden, k.Golden+".json")); err != nil {
			t.Errorf("DIFFERENCES.md names golden %q, which does not exist: %v", k.Golden, err)
		}
		if strings.TrimSpace(k.Reason) == "" {
			t.Errorf("DIFFERENCES.md: %s %v has no reason", k.Golden, k.Difference)
		}
	}
}

func TestParseKnownDifferences(t *testing.T) {
	md := `# x
| samples | DSS | other validator | what decides it |
|---|---|---|---|
| a | b | c | d |

| golden | item | field | ours | DSS | reason |
|---|---|---|---|---|---|
| ` + "`at-signing/cades/x.p7m`" + ` | signature 1 | subIndication | TRY_LATER | CERTIFICATE_CHAIN_GENERAL_FAILURE | we say why |
`
	known, err := ParseKnownDifferences(strings.NewReader(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []KnownDifference{{
		Golden:     "at-signing/cades/x.p7m",
		Difference: Difference{Item: "signature 1", Field: "subIndication", Ours: "TRY_LATER", DSS: "CERTIFICATE_CHAIN_GENERAL_FAILURE"},
		Reason:     "we say why",
	}}
	if !reflect.DeepEqual(known, want) {
		t.Fatalf("got %+v, want %+v", known, want)
	}
	diffs := []Difference{want[0].Difference, {Item: "signature 2", Field: "indication", Ours: "TOTAL_PASSED", DSS: "INDETERMINATE"}}
	got := Unexplained("at-signing/cades/x.p7m", diffs, known)
	if len(got) != 1 || got[0].Item != "signature 2" {
		t.Errorf("Unexplained = %v, want only signature 2", got)
	}
	if got := Unexplained("now/cades/x.p7m", diffs[:1], known); len(got) != 1 {
		t.Errorf("a row for another golden explained a difference: %v", got)
	}
	if _, err := ParseKnownDifferences(strings.NewReader("| | a | | | | |\n")); err == nil {
		t.Error("row without golden and field accepted")
	}
}
