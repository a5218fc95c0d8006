package ers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/trust"
)

// dssGolden is the part of the DSS oracle's JSON the comparison reads.
type dssGolden struct {
	ValidationTime  string `json:"validationTime"`
	Error           string `json:"error"`
	EvidenceRecords []struct {
		Indication    string `json:"indication"`
		SubIndication string `json:"subIndication"`
	} `json:"evidenceRecords"`
}

// TestCompareWithDSS verifies every case of testdata/dss/jobs.tsv (made by
// test/integration/ers/mkers) and compares with DSS's verdict in golden/
// (test/integration/ers/run.sh re-checks those against DSS itself): a
// record DSS finds PASSED must verify with us, any other verdict must not.
func TestCompareWithDSS(t *testing.T) {
	dir := filepath.Join("testdata", "dss")
	jobs, err := os.ReadFile(filepath.Join(dir, "jobs.tsv"))
	must(t, err)
	n := 0
	for _, line := range strings.Split(string(jobs), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("jobs.tsv: %q", line)
		}
		name, record, data, anchors := f[0], f[1], f[2], f[3]
		n++
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "golden", name+".json"))
			must(t, err)
			var g dssGolden
			must(t, json.Unmarshal(raw, &g))
			if g.Error != "" || len(g.EvidenceRecords) != 1 {
				t.Fatalf("DSS golden has %d records, error %q", len(g.EvidenceRecords), g.Error)
			}
			at, err := time.Parse(time.RFC3339, g.ValidationTime)
			must(t, err)
			store := trust.NewStore()
			for _, a := range strings.Split(anchors, ",") {
				pemBytes, err := os.ReadFile(filepath.Join(dir, a))
				must(t, err)
				certs, err := cert.ParseAll(pemBytes)
				must(t, err)
				for _, c := range certs {
					store.AddCertificate(c, a)
				}
			}
			der, err := os.ReadFile(filepath.Join(dir, record))
			must(t, err)
			content, err := os.ReadFile(filepath.Join(dir, data))
			must(t, err)
			ours := false
			why := "does not parse"
			if er, err := ers.Parse(der); err == nil {
				r, err := er.Verify(ers.VerifyOptions{Data: content, Trust: store, Time: at})
				must(t, err)
				ours, why = r.Valid, problems(r)
			}
			dss := g.EvidenceRecords[0]
			if ours != (dss.Indication == "PASSED") {
				t.Fatalf("ours valid=%v (%s), DSS %s/%s", ours, why, dss.Indication, dss.SubIndication)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d jobs", n)
	}
}
