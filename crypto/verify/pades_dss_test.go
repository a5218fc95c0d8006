package verify

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/report"
)

// padesDifferences registers the explained PAdES disagreements.
const padesDifferences = "../pades/DIFFERENCES.md"

// padesGolden lists the oracle results for the PAdES samples of the corpus
// and the generated PDFs (test/integration/dss/generated/pades).
func padesGolden(t *testing.T) map[string]*report.DSSResult {
	t.Helper()
	root := filepath.Join(oracleDir, "golden")
	out := map[string]*report.DSSResult{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		res, err := report.ParseDSS(f)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(res.Input.Signature, "pades/") && !strings.HasPrefix(res.Input.Signature, generatedPrefix+"pades/") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[strings.TrimSuffix(filepath.ToSlash(rel), ".json")] = res
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompareWithDSSPAdES runs every PAdES job of the DSS oracle with the
// oracle's trust and validation time and fails on any disagreement in
// format, indication, sub-indication or qualification that neither the
// shared DIFFERENCES.md files nor crypto/pades/DIFFERENCES.md explain, and
// on a PAdES row there that explains nothing.
func TestCompareWithDSSPAdES(t *testing.T) {
	known := knownDifferences(t)
	f, err := os.Open(padesDifferences)
	if err != nil {
		t.Fatal(err)
	}
	more, err := report.ParseKnownDifferences(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	known = append(known, more...)
	golden := padesGolden(t)
	if len(golden) < 40 {
		t.Fatalf("%d PAdES golden results, want the corpus's 44 at least", len(golden))
	}
	names := make([]string, 0, len(golden))
	generated := 0
	for n, d := range golden {
		names = append(names, n)
		if strings.HasPrefix(d.Input.Signature, generatedPrefix) {
			generated++
		}
	}
	if generated < 7 {
		t.Fatalf("%d golden results for our generated PDFs, want 7 (test/integration/dss/mkpades)", generated)
	}
	sort.Strings(names)
	var unexplained []string
	used := make([]bool, len(known))
	agreed := 0
	for _, name := range names {
		d := golden[name]
		ours := runLikeDSS(t, d, false)
		diffs := report.CompareDSS(ours, d)
		if len(diffs) == 0 {
			agreed++
		}
		for _, df := range diffs {
			for i, k := range known {
				if k.Golden == name && k.Difference == df {
					used[i] = true
				}
			}
		}
		for _, u := range report.Unexplained(name, diffs, known) {
			unexplained = append(unexplained, "| "+name+" | "+u.Item+" | "+u.Field+" | "+u.Ours+" | "+u.DSS+" | |")
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("%d disagreements with DSS are not explained in %s:\n%s", len(unexplained), padesDifferences, strings.Join(unexplained, "\n"))
	}
	// A PAdES row that explains nothing any more claims a disagreement that
	// was fixed (the shared files' rows are TestCompareWithDSS's to judge).
	for i, k := range known {
		if !used[i] && strings.Contains(k.Golden, "pades/") {
			t.Errorf("%s row explains no current difference, delete it: | %s | %s | %s | %s | %s | %s |",
				padesDifferences, k.Golden, k.Item, k.Field, k.Ours, k.DSS, k.Reason)
		}
	}
	t.Logf("compared %d PAdES golden results, %d agree in every verdict", len(names), agreed)
}
