// Command report reads the JSON figures the benchmark harnesses wrote into
// one directory (bench/figures, one file per harness) and writes the
// benchmark report: a Markdown page with each measure of issue 16 beside
// its baseline from the same run, the ratio, the goal and whether it was
// met, the machine it ran on, every harness's figures, and an SVG chart of
// the ratios against their goals, linked from the page.
//
//	go run ./bench/report -in bench/results -md bench/report.md -svg bench/report.svg -notes bench/notes.md
//
// The commit, the mode, the date and the load before and after come from
// the text files bench/run.sh leaves beside the figures, or from flags.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/bench/figures"
)

func main() {
	in := flag.String("in", "bench/results", "directory of the harnesses' JSON figures")
	md := flag.String("md", "bench/report.md", "the Markdown report to write")
	svg := flag.String("svg", "bench/report.svg", "the SVG chart to write (linked from the report by its file name)")
	notes := flag.String("notes", "", "a Markdown file of notes to append (causes of goals not met)")
	commit := flag.String("commit", "", "the commit measured (default: commit.txt in -in)")
	mode := flag.String("mode", "", "full or quick (default: mode.txt in -in, else full)")
	before := flag.String("load-before", "", "`uptime` before the run (default: load-before.txt in -in)")
	after := flag.String("load-after", "", "`uptime` after the run (default: load-after.txt in -in)")
	flag.Parse()
	// bench/run.sh also leaves these beside the figures, so that the report
	// can be rendered again (with new notes) without running the harnesses.
	fromRun := func(flagValue, name string) string {
		if flagValue != "" {
			return strings.TrimSpace(flagValue)
		}
		b, _ := readCapped(filepath.Join(*in, name), 4096)
		return strings.TrimSpace(string(b))
	}
	// The CPU the figures were measured on, not the one rendering them.
	cpu := fromRun("", "cpu.txt")
	if cpu == "" {
		cpu = cpuModel()
	}
	m := machine{CPUs: runtime.NumCPU(), CPUModel: cpu, GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Commit: fromRun(*commit, "commit.txt"), Date: fromRun("", "date.txt"), Mode: fromRun(*mode, "mode.txt"),
		LoadBefore: fromRun(*before, "load-before.txt"), LoadAfter: fromRun(*after, "load-after.txt")}
	if m.Date == "" {
		m.Date = time.Now().UTC().Format("2006-01-02 15:04 MST")
	}
	if m.Mode == "" {
		m.Mode = "full"
	}
	if err := run(*in, *md, *svg, *notes, m); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, md, svg, notesFile string, m machine) error {
	rs, err := readRuns(in)
	if err != nil {
		return err
	}
	rep := report{Machine: m, Rows: measures(rs), Runs: rs, SVGName: filepath.Base(svg)}
	if notesFile != "" {
		b, err := readCapped(notesFile, 64<<10)
		if err != nil {
			return fmt.Errorf("notes: %w", err)
		}
		rep.Notes = string(b)
	}
	var mdBuf, svgBuf bytes.Buffer
	if err := errors.Join(writeMarkdown(&mdBuf, rep), writeSVG(&svgBuf, rep.Rows)); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if err := os.WriteFile(md, mdBuf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(svg, svgBuf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}

// maxRuns caps the files read: a run writes six.
const maxRuns = 64

// readRuns reads every *.json file in dir; two files of one harness are
// an error, since the report could not tell which run to show.
func readRuns(dir string) (runs, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list figures: %w", err)
	}
	if len(paths) > maxRuns {
		return nil, fmt.Errorf("%s: %d figure files, at most %d", dir, len(paths), maxRuns)
	}
	slices.Sort(paths)
	rs := runs{}
	for _, p := range paths {
		r, err := figures.Read(p)
		if err != nil {
			return nil, err
		}
		if _, dup := rs[r.Harness]; dup {
			return nil, fmt.Errorf("%s: a second file of harness %s", p, r.Harness)
		}
		rs[r.Harness] = r
	}
	return rs, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, nil
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
