package specindex

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIndexNamesExistingFilesAndTests is the check the index promises: a
// row whose file or test was renamed or moved fails here with its line.
func TestIndexNamesExistingFilesAndTests(t *testing.T) {
	root := filepath.Join("..", "..")
	f, err := os.Open(filepath.Join(root, "docs", "spec-index.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 40 {
		t.Fatalf("only %d rows", len(rows))
	}
	for _, err := range Check(root, rows) {
		t.Error(err)
	}
	specs := map[string]bool{}
	for _, r := range rows {
		specs[r.Spec] = true
	}
	for _, s := range []string{"RFC 5321", "RFC 5322", "RFC 3501", "RFC 9051", "RFC 5652", "RFC 3161", "RFC 5280",
		"RFC 6960", "RFC 9162", "ETSI EN 319 102-1", "ETSI TS 119 612", "ETSI TS 119 615", "TR 01201", "OSCI 1.2"} {
		if !specs[s] {
			t.Errorf("no row for %s", s)
		}
	}
}

// TestCheckCatchesStaleRows makes sure the check above can fail.
func TestCheckCatchesStaleRows(t *testing.T) {
	index := Header + "\n" +
		"# comment\n" +
		"RFC 1\t§1\tgood row\tinternal/specindex/specindex.go\tinternal/specindex.TestCheckCatchesStaleRows\timplemented\n" +
		"RFC 1\t§2\tmissing file\tinternal/specindex/gone.go\tinternal/specindex.TestCheckCatchesStaleRows\timplemented\n" +
		"RFC 1\t§3\tmissing test\tinternal/specindex/specindex.go\tinternal/specindex.TestGone\tpartial\n" +
		"RFC 1\t§4\tmissing package\tinternal/specindex/specindex.go\tinternal/gone.TestX\timplemented\n" +
		"RFC 1\t§5\tbad status\tinternal/specindex/specindex.go\tinternal/specindex.TestCheckCatchesStaleRows\tdone\n" +
		"RFC 1\t§6\tnot a test name\tinternal/specindex/specindex.go\tinternal/specindex.Check\timplemented\n" +
		"RFC 1\t§7\tfuture work\t-\t-\tnot yet\n"
	rows, err := Parse(strings.NewReader(index))
	if err != nil {
		t.Fatal(err)
	}
	errs := Check(filepath.Join("..", ".."), rows)
	want := []string{"line 4 (RFC 1 §2): file", "line 5 (RFC 1 §3): no func TestGone", "line 6 (RFC 1 §4): no test files",
		"line 7 (RFC 1 §5): status", "line 8 (RFC 1 §6): test"}
	if len(errs) != len(want) {
		t.Fatalf("errors %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"no header":    "spec\tsection\n",
		"five columns": Header + "\na\tb\tc\td\te\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
