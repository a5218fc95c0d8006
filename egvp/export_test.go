package egvp

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/poststelle/poststelle/internal/corpus"
)

// TestReadExportSamples reads the three samples as EGVP Enterprise exports them (the
// files, not a delivery) and wants the values of their check reports, as
// TestReadSamples does for the OSCI route.
func TestReadExportSamples(t *testing.T) {
	for _, tc := range sampleCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := corpus.Path(t, "egvp", "Messages", tc.name)
			var report pruefvermerk
			var props msgProps
			readXML(t, filepath.Join(dir, "pruefvermerk.xml"), &report)
			readXML(t, filepath.Join(dir, "MsgProps.xml"), &props)
			m, err := ReadExport(context.Background(), os.DirFS(dir), Config{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Problems) != 0 {
				t.Errorf("problems %q", m.Problems)
			}
			checkReport(t, tc, m, report)
			checkProps(t, m, props)
			if !strings.Contains(m.Origin.Reason, "EGVP Enterprise") {
				t.Errorf("origin reason %q does not say who checked", m.Origin.Reason)
			}
			if tc.receipt != (m.Receipt != nil) {
				t.Errorf("eEB answer %v, want %v", m.Receipt != nil, tc.receipt)
			}
		})
	}
}

// mapFS copies a sample into memory so that a test can change its files.
func mapFS(t *testing.T, name string) fstest.MapFS {
	t.Helper()
	dir := corpus.Path(t, "egvp", "Messages", name)
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, p))
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadExportOrigin(t *testing.T) {
	setPOO := func(v string) func(fstest.MapFS) {
		return func(m fstest.MapFS) {
			f := m[ExportInspection]
			f.Data = []byte(strings.Replace(string(f.Data), "<ProofOfOrigin>VHN_beBPo_valid</ProofOfOrigin>", v, 1))
		}
	}
	cases := []struct {
		name    string
		change  func(fstest.MapFS)
		level   Level
		reason  string
		problem string
	}{
		{"as exported", func(fstest.MapFS) {}, LevelVHN, "as EGVP Enterprise checked", ""},
		{"no verdict", setPOO(""), LevelSenderSigned, "states no proof of origin", "the Visitenkarte claims a bebpo mailbox, the transport certificate proves none"},
		{"negative verdict", setPOO("<ProofOfOrigin>VHN_beBPo_invalid</ProofOfOrigin>"), LevelSenderSigned, "not positive", "the Visitenkarte claims a bebpo mailbox"},
		{"verdict for another mailbox", setPOO("<ProofOfOrigin>VHN_beA_valid</ProofOfOrigin>"), LevelSenderSigned, "contradicts", "reports a VHN of a beA mailbox"},
		{"no report", func(m fstest.MapFS) { delete(m, ExportInspection) }, LevelSenderSigned, "states no proof of origin", "no readable summarisedinspectionsheet.xml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := mapFS(t, "TestnachrichtEeb_1")
			tc.change(fsys)
			m, err := ReadExport(context.Background(), fsys, Config{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Origin.Level != tc.level || !strings.Contains(m.Origin.Reason, tc.reason) {
				t.Errorf("origin %s %q, want %s %q", m.Origin.Level, m.Origin.Reason, tc.level, tc.reason)
			}
			if got := strings.Join(m.Problems, "; "); (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want %q", got, tc.problem)
			}
		})
	}
}

func TestReadExportBroken(t *testing.T) {
	fsys := mapFS(t, "Testnachricht_1")
	delete(fsys, ExportMessage)
	if _, err := ReadExport(context.Background(), fsys, Config{}, Limits{}); !errors.Is(err, ErrNotEGVP) {
		t.Errorf("without the OSCI message: %v", err)
	}
	fsys = mapFS(t, "Testnachricht_1")
	fsys[ExportMessage].Data = fsys[ExportMessage].Data[:300]
	if _, err := ReadExport(context.Background(), fsys, Config{}, Limits{}); err == nil || errors.Is(err, ErrNotEGVP) {
		t.Errorf("a truncated OSCI message: %v", err)
	}
	// An attachment missing from attachments/ is a problem of a message that is kept.
	fsys = mapFS(t, "Testnachricht_1")
	delete(fsys, "attachments/99 - Klage.pdf")
	m, err := ReadExport(context.Background(), fsys, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Problems, "; "); !strings.Contains(got, "attachment 99 - Klage.pdf is missing") {
		t.Errorf("problems %q", got)
	}
}
