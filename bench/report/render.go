package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// machine describes where and when the figures were measured.
type machine struct {
	CPUs       int
	CPUModel   string
	GoVersion  string
	OS         string
	Commit     string
	Date       string
	Mode       string // "full" or "quick"
	LoadBefore string // uptime before the run
	LoadAfter  string // uptime after it
}

// report is everything the renderers need.
type report struct {
	Machine machine
	Rows    []row
	Runs    runs
	SVGName string // the chart's file name, linked from the Markdown
	Notes   string // hand-written notes (Markdown), appended when set
}

// order is the harnesses' order in the per-harness section.
var order = []string{"smtp", "sse", "sqlite", "kafka-producerperf", "kafka", "scaling"}

func writeMarkdown(w io.Writer, rep report) error {
	var b strings.Builder
	m := rep.Machine
	b.WriteString("# Benchmark report\n\n")
	b.WriteString("Written by `make bench` (`go run ./bench/report`) from the JSON figures each harness wrote in the same run;\n")
	b.WriteString("each measure stands beside its baseline from that run. The goals are issue 16's.\n\n")
	fmt.Fprintf(&b, "| machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPUs (nproc) | %d |\n| CPU | %s |\n| OS | %s |\n| Go | %s |\n| commit | %s |\n| date | %s |\n| mode | %s |\n",
		m.CPUs, cell(m.CPUModel), cell(m.OS), cell(m.GoVersion), cell(m.Commit), cell(m.Date), cell(m.Mode))
	fmt.Fprintf(&b, "| load before (`uptime`) | %s |\n| load after (`uptime`) | %s |\n\n", cell(m.LoadBefore), cell(m.LoadAfter))
	met := 0
	for _, r := range rep.Rows {
		if r.Met() {
			met++
		}
	}
	fmt.Fprintf(&b, "**%d of %d goals met.**\n\n", met, len(rep.Rows))
	if rep.SVGName != "" {
		fmt.Fprintf(&b, "![ratio of each measure to its baseline, against the goal](%s)\n\n", rep.SVGName)
	}
	b.WriteString("| measure | figure | baseline | ratio | goal | met |\n|---|---|---|---|---|---|\n")
	for _, r := range rep.Rows {
		if r.Missing != "" {
			fmt.Fprintf(&b, "| %s | – | – | – | %s | not measured: %s |\n", cell(r.Measure), cell(r.GoalText), cell(r.Missing))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Measure), cell(r.Figure), cell(r.Baseline),
			ratioText(r), cell(r.GoalText), metText(r))
	}
	b.WriteString("\n")
	var extras []string
	for _, r := range rep.Rows {
		if r.Extra != "" && r.Missing == "" {
			extras = append(extras, fmt.Sprintf("- %s: %s", r.Measure, r.Extra))
		}
	}
	if len(extras) > 0 {
		b.WriteString(strings.Join(extras, "\n") + "\n\n")
	}
	writeRuns(&b, rep.Runs)
	if rep.Notes != "" {
		b.WriteString("## Notes\n\n" + strings.TrimSpace(rep.Notes) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRuns lists every figure of every harness, for the reader who wants
// more than the ratios.
func writeRuns(b *strings.Builder, rs runs) {
	b.WriteString("## Figures per harness\n\n")
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, c string) int {
		ia, ic := slices.Index(order, a), slices.Index(order, c)
		if ia < 0 {
			ia = len(order)
		}
		if ic < 0 {
			ic = len(order)
		}
		if ia != ic {
			return ia - ic
		}
		return strings.Compare(a, c)
	})
	for _, n := range names {
		r := rs[n]
		fmt.Fprintf(b, "### %s\n\nstarted %s", n, r.Started.Format("2006-01-02 15:04:05 MST"))
		if len(r.Params) > 0 {
			keys := make([]string, 0, len(r.Params))
			for k := range r.Params {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var ps []string
			for _, k := range keys {
				ps = append(ps, k+"="+r.Params[k])
			}
			fmt.Fprintf(b, "; %s", cell(strings.Join(ps, ", ")))
		}
		b.WriteString("\n\n| figure | value | p50 | p99 |\n|---|---:|---:|---:|\n")
		for _, f := range r.Figures {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(f.Label), cell(rate(f)), optMillis(f.P50Ms), optMillis(f.P99Ms))
		}
		b.WriteString("\n")
	}
}

func optMillis(ms float64) string {
	if ms <= 0 {
		return "–"
	}
	return millis(ms)
}

func ratioText(r row) string {
	return fmt.Sprintf("%.2f", r.Ratio)
}

func metText(r row) string {
	if r.Met() {
		return "yes"
	}
	return "**no**"
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// SVG layout, in pixels.
const (
	svgWidth  = 640
	labelW    = 230
	barX      = labelW + 10
	barW      = 320
	rowH      = 34
	topPad    = 44
	bottomPad = 34
)

// scaleMax is the ratio at the right end of the bars: at least 1.2 and
// enough for every goal and ratio, in steps of 0.5, at most 3 (a larger
// ratio is drawn to the end and labelled).
func scaleMax(rows []row) float64 {
	m := 1.2
	for _, r := range rows {
		m = max(m, r.Goal*1.1)
		if r.Missing == "" && !math.IsNaN(r.Ratio) {
			m = max(m, r.Ratio*1.05)
		}
	}
	return min(math.Ceil(m*2)/2, 3)
}

func writeSVG(w io.Writer, rows []row) error {
	var b strings.Builder
	h := topPad + rowH*len(rows) + bottomPad
	s := scaleMax(rows)
	x := func(ratio float64) float64 { return barX + barW*min(max(ratio, 0), s)/s }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, h, svgWidth, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, h)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">Ratio to the baseline of the same run; dashed line: the goal</text>`+"\n")
	for t := 0.0; t <= s+1e-9; t += 0.5 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dddddd"/>`+"\n", x(t), topPad-6, x(t), h-bottomPad+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%.1f</text>`+"\n", x(t), h-bottomPad+18, t)
	}
	for i, r := range rows {
		y := topPad + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW, y+rowH/2+4, esc(r.Short))
		if r.Missing != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888888" font-style="italic">not measured</text>`+"\n", barX+4, y+rowH/2+4)
		} else {
			colour := "#c0392b"
			if r.Met() {
				colour = "#2e8b57"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", barX, y+7, x(r.Ratio)-barX, rowH-14, colour)
			// Right of the bar or the goal line, whichever ends later, so the line never crosses the figure.
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2f</text>`+"\n", min(max(x(r.Ratio), x(r.Goal))+5, svgWidth-40), y+rowH/2+4, r.Ratio)
		}
		gx := x(r.Goal)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000000" stroke-width="2" stroke-dasharray="4,3"/>`+"\n", gx, y+3, gx, y+rowH-3)
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555555">green: goal met; red: not met</text>`+"\n", h-6)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
