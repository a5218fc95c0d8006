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
		if strings.HasPrefix(res.Input.Signature, generatedPrefix+"pades/") {
			return nil // TestCompareWithDSSPAdES compares these
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
	used := make([]bool, len(known))
	agreeing, differing := 0, 0
	for _, name := range names {
		d := golden[name]
		ours := runLikeDSS(t, d, false)
		diffs := report.CompareDSS(ours, d)
		if len(diffs) == 0 {
			agreeing++
		} else {
			differing += len(diffs)
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
		t.Errorf("%d disagreements with DSS are not explained in DIFFERENCES.md:\n%s", len(unexplained), strings.Join(unexplained, "\n"))
	}
	// A row that explains nothing any more hides nothing, but it claims a
	// disagreement that was fixed: the table must say what is true.
	for i, k := range known {
		if !used[i] {
			t.Errorf("DIFFERENCES.md row explains no current difference, delete it: | %s | %s | %s | %s | %s | %s |",
				k.Golden, k.Item, k.Field, k.Ours, k.DSS, k.Reason)
		}
	}
	t.Logf("compared %d golden results: %d agree in every verdict, %d differences in the others", len(names), agreeing, differing)
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

// TestRevocationIssuerExpiredSample pins Signature-C-B-LTA-10 validated
// today: the OCSP responder's certificate (2015-2017) has expired and no
// valid archive timestamp proves the response older, so the answer may not
// make the expired signer NOT_REVOKED (DSS: RevocationIssuerNotExpired).
// At the signing time the same response is good.
func TestRevocationIssuerExpiredSample(t *testing.T) {
	golden := goldenFiles(t)
	for _, tc := range []struct {
		golden  string
		wantSub report.SubIndication
		detail  string
	}{
		{"now/cades/Signature-C-B-LTA-10.p7m", report.OutOfBoundsNoPOE, "not valid at the validation time"},
		{"at-signing/cades/Signature-C-B-LTA-10.p7m", report.NoSubIndication, "not revoked per OCSP"},
	} {
		d, ok := golden[tc.golden]
		if !ok {
			t.Fatalf("no golden result %s", tc.golden)
		}
		rep := runLikeDSS(t, d, false)
		if rep == nil || len(rep.Signatures) != 1 {
			t.Fatalf("%s: no single signature", tc.golden)
		}
		s := rep.Signatures[0]
		if s.SubIndication != tc.wantSub || s.SubIndication != d.Signatures[0].SubIndication {
			t.Errorf("%s: sub-indication %q, want %q (DSS %q)", tc.golden, s.SubIndication, tc.wantSub, d.Signatures[0].SubIndication)
		}
		found := false
		for _, c := range s.Checks {
			if c.ID == "trust.revocation" && strings.Contains(c.Description, "Andrea") && strings.Contains(c.Detail, tc.detail) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no revocation check of the signer saying %q", tc.golden, tc.detail)
		}
	}
}

// TestQualifiedGolden pins what the oracle's qualified cases are for: with
// only a signed test trusted list as trust, DSS and we reach QESig, QESeal,
// AdESig-QC and, for a withdrawn service, AdESig (mkgen's qualified cases).
func TestQualifiedGolden(t *testing.T) {
	golden := goldenFiles(t)
	want := map[string]report.Qualification{
		"gen-qualified/generated/qualified/esig-qscd.p7s":    report.QESig,
		"gen-qualified/generated/qualified/eseal-qscd.p7s":   report.QESeal,
		"gen-qualified/generated/qualified/esig-no-qscd.p7s": report.AdESigQC,
		"gen-withdrawn/generated/qualified/esig-qscd.p7s":    report.AdESig,
	}
	for name, q := range want {
		d, ok := golden[name]
		if !ok {
			t.Fatalf("no golden result %s (rerun mkgen and the oracle)", name)
		}
		rep := runLikeDSS(t, d, false)
		if rep == nil || len(rep.Signatures) != 1 || len(d.Signatures) != 1 {
			t.Fatalf("%s: not one signature", name)
		}
		if got, dss := rep.Signatures[0].Qualification, d.Signatures[0].Qualification; got != q || dss != q {
			t.Errorf("%s: ours %q, DSS %q, want %q", name, got, dss, q)
		}
	}
}
