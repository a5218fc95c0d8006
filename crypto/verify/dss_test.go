package verify

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/internal/corpus"
)

// oracleDir holds the DSS oracle's inputs (anchors, jobs) and golden results.
const oracleDir = "../../test/integration/dss"

// differenceFiles register explained disagreements; the DSS engineer's file
// first, ours (crypto/verify/DIFFERENCES.md) second, then those of the XML
// signature and container packages.
var differenceFiles = []string{"../report/DIFFERENCES.md", "DIFFERENCES.md", "../xmldsig/DIFFERENCES.md", "../asic/DIFFERENCES.md"}

func knownDifferences(t *testing.T) []report.KnownDifference {
	t.Helper()
	var all []report.KnownDifference
	for _, p := range differenceFiles {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		known, err := report.ParseKnownDifferences(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		all = append(all, known...)
	}
	return all
}

// goldenFiles lists the oracle results for the samples comparedWithDSS.
func goldenFiles(t *testing.T) map[string]*report.DSSResult {
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
		if !comparedWithDSS(res.Input.Signature) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[strings.TrimSuffix(filepath.ToSlash(rel), ".json")] = res
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no DSS golden results for CAdES or timestamps")
	}
	return out
}

// comparedWithDSS selects the golden inputs of the formats verified here:
// CAdES, RFC 3161, XAdES (and XML-DSig) and the generated cases; PAdES
// belongs to crypto/pades.
func comparedWithDSS(sig string) bool {
	for _, p := range []string{"cades/", "tsp/", "xades/", generatedPrefix} {
		if strings.HasPrefix(sig, p) {
			return true
		}
	}
	return false
}

// generatedPrefix marks the oracle's own cases (test/integration/dss/mkgen),
// which live beside the oracle rather than in the testdata corpus.
const generatedPrefix = "generated/"

// runLikeDSS verifies a golden file's input with the same content, trust and
// validation time the oracle used. A nil report means we refused the input.
// With streamed, detached content files are given as DetachedReader.
func runLikeDSS(t *testing.T, d *report.DSSResult, streamed bool) *report.Report {
	t.Helper()
	sigDir := corpus.Path(t, "signatures")
	if strings.HasPrefix(d.Input.Signature, generatedPrefix) {
		sigDir = oracleDir
	}
	data, err := os.ReadFile(filepath.Join(sigDir, filepath.FromSlash(d.Input.Signature)))
	if err != nil {
		t.Fatal(err)
	}
	at, err := d.At()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Time: at, Name: d.Input.Signature}
	for _, det := range d.Input.Detached {
		if b64, ok := strings.CutPrefix(det, "sha256:"); ok {
			opts.DetachedDigest, err = base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			opts.DetachedDigestAlgorithm = crypto.SHA256
			continue
		}
		path := filepath.Join(sigDir, filepath.FromSlash(det))
		if streamed {
			opts.DetachedReader = func() (io.ReadCloser, error) { return os.Open(path) }
			continue
		}
		opts.Detached, err = os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
	}
	var tc TrustConfig
	for _, tr := range d.Input.Trust {
		if p, ok := strings.CutPrefix(tr, "corpus:"); ok {
			tc.Paths = append(tc.Paths, filepath.Join(sigDir, filepath.FromSlash(p)))
		} else {
			tc.Paths = append(tc.Paths, filepath.Join(oracleDir, filepath.FromSlash(tr)))
		}
		if strings.HasSuffix(tr, ".xml") {
			// The oracle accepts TSL v4-6 signed by the key in the list's
			// own KeyInfo; do the same to compare like with like.
			tc.TLSignerFromKeyInfo, tc.TLVersions = true, []int{4, 5, 6}
		}
	}
	if len(tc.Paths) > 0 {
		opts.Trust, err = LoadTrust(context.Background(), tc)
		if err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(context.Background(), data, opts)
	if err != nil {
		return nil
	}
	return rep
}

// TestCompareWithDSS runs every CAdES and RFC 3161 sample the DSS oracle
// validated, with the oracle's inputs, and fails on any disagreement in
// indication, sub-indication or qualification that DIFFERENCES.md does not
// explain.
func TestCompareWithDSS(t *testing.T) {
	known := knownDifferences(t)
	golden := goldenFiles(t)
	names := make([]string, 0, len(golden))
	for n := range golden {
		names = append(names, n)
	}
	sort.Strings(names)
	generated := 0
	for _, d := range golden {
		if strings.HasPrefix(d.Input.Signature, generatedPrefix) {
			generated++
		}
	}
	if generated < 8 {
		t.Fatalf("%d golden results for the oracle's own generated cases, want at least 8 (test/integration/dss/mkgen)", generated)
	}
	var unexplained []string
	for _, name := range names {
		d := golden[name]
		ours := runLikeDSS(t, d, false)
		diffs := report.CompareDSS(ours, d)
		for _, u := range report.Unexplained(name, diffs, known) {
			unexplained = append(unexplained, "| "+name+" | "+u.Item+" | "+u.Field+" | "+u.Ours+" | "+u.DSS+" | |")
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("%d disagreements with DSS are not explained in DIFFERENCES.md:\n%s", len(unexplained), strings.Join(unexplained, "\n"))
	}
	t.Logf("compared %d golden results", len(names))
}

// TestStreamedDetachedContent verifies every golden input with detached
// content files once more, streaming the content (as the gateway does),
// and wants the very same report as with the content in memory.
func TestStreamedDetachedContent(t *testing.T) {
	golden := goldenFiles(t)
	compared := 0
	for name, d := range golden {
		files := 0
		for _, det := range d.Input.Detached {
			if !strings.HasPrefix(det, "sha256:") {
				files++
			}
		}
		if files == 0 {
			continue
		}
		compared++
		var inMemory, streamed bytes.Buffer
		if rep := runLikeDSS(t, d, false); rep != nil {
			if err := report.WriteJSON(&inMemory, rep); err != nil {
				t.Fatal(err)
			}
		}
		if rep := runLikeDSS(t, d, true); rep != nil {
			if err := report.WriteJSON(&streamed, rep); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(inMemory.Bytes(), streamed.Bytes()) {
			t.Errorf("%s: streamed content gives another report:\n%s\nin memory:\n%s", name, streamed.Bytes(), inMemory.Bytes())
		}
	}
	if compared < 5 {
		t.Fatalf("only %d golden results with detached content files", compared)
	}
	t.Logf("compared %d golden results with detached content", compared)
}
