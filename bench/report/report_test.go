package main

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/bench/figures"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testMachine = machine{CPUs: 2, CPUModel: "Test CPU @ 2.00GHz", GoVersion: "go1.26.8", OS: "linux/amd64", Commit: "abc1234",
	Date: "2026-12-02 06:10 UTC", Mode: "full", LoadBefore: "06:00:00 up 1:00, load average: 0.10, 0.20, 0.30",
	LoadAfter: "06:20:00 up 1:20, load average: 1.90, 1.50, 1.00"}

// TestGolden renders the figures in testdata/<case> and compares the
// Markdown and SVG with the golden files beside them.
func TestGolden(t *testing.T) {
	for _, c := range []string{"full", "partial"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("testdata", c)
			out := t.TempDir()
			md, svg := filepath.Join(out, "report.md"), filepath.Join(out, "report.svg")
			notes := filepath.Join(dir, "notes.md")
			if _, err := os.Stat(notes); err != nil {
				notes = ""
			}
			if err := run(dir, md, svg, notes, testMachine); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{md, svg} {
				got, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join(dir, "golden", filepath.Base(f))
				if *update {
					os.MkdirAll(filepath.Dir(golden), 0o750)
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s:\n%s", f, golden, got)
				}
			}
		})
	}
}

func TestMeasures(t *testing.T) {
	rs, err := readRuns(filepath.Join("testdata", "full"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ratio float64
		met   bool
	}{
		{5100 / 9500.4, true}, // SMTP
		{0.902, false},        // SSE rate: 902 of 1,000 offered
		{100.0 / 1850, false}, // SSE p99
		{28300.0 / 48000, false},
		{41000.0 / 75000, false}, // mean of 80k and 70k
		{215000.0 / 200000, true},
		{250.0 / 400, false},
		{90 / 63.01, true},               // OSCI per core: library CPU / ours
		{150e6 / (1 << 20) / 58.8, true}, // OSCI peak RSS
	}
	rows := measures(rs)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if math.Abs(r.Ratio-want[i].ratio) > 1e-9 || r.Met() != want[i].met || r.Missing != "" {
			t.Errorf("%s: ratio %v met %v missing %q, want %v %v", r.Measure, r.Ratio, r.Met(), r.Missing, want[i].ratio, want[i].met)
		}
	}
}

func TestMissingHarness(t *testing.T) {
	rs := runs{"sqlite": {Harness: "sqlite", Figures: []figures.Figure{{Key: "raw64", Value: 100}}}}
	for _, r := range measures(rs) {
		if r.Missing == "" || r.Met() {
			t.Errorf("%s: missing %q, met %v with figures absent", r.Measure, r.Missing, r.Met())
		}
	}
}

// TestOSCIWithoutLibrary: our figures alone do not make the per-core goal met.
func TestOSCIWithoutLibrary(t *testing.T) {
	rs := runs{"osci": {Harness: "osci", Figures: []figures.Figure{{Key: "cpu-per-message", Value: 60}, {Key: "peak-rss", Value: 200}}}}
	if r := osciCoreRow(rs); r.Missing == "" || r.Met() {
		t.Errorf("without the library's figure: %+v", r)
	}
	if r := osciRSSRow(rs); r.Missing != "" || r.Met() {
		t.Errorf("200 MiB peak: %+v", r)
	}
}

func TestZeroBaseline(t *testing.T) {
	rs := runs{"smtp": {Harness: "smtp", Figures: []figures.Figure{{Key: "raw", Value: 0}, {Key: "serve", Value: 100}}}}
	if r := smtpRow(rs); r.Missing == "" || r.Met() {
		t.Errorf("zero baseline: %+v", r)
	}
}

func TestDuplicateHarness(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.json", "b.json"} {
		if err := figures.Write(filepath.Join(dir, n), figures.New("smtp")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readRuns(dir); err == nil {
		t.Fatal("two files of one harness were read")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.6: "1,000", 1234567: "1,234,567", -4200: "-4,200", 12: "12"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}
