package main

import (
	"fmt"
	"math"
	"strconv"

	"github.com/poststelle/poststelle/bench/figures"
)

// row is one measure of issue 16 as the report shows it.
type row struct {
	Measure  string
	Short    string // the chart's label
	Figure   string // the measured figure, formatted
	Baseline string // what it is compared with, formatted
	Ratio    float64
	Goal     float64 // the ratio the goal asks for
	GoalText string
	// Missing says why the measure has no figure (the harness did not run
	// or lacks a figure); Ratio is then NaN.
	Missing string
	// Extra is further context, such as the machine's limit beside an
	// absolute figure.
	Extra string
}

// Met reports whether the measure reached its goal.
func (r row) Met() bool { return r.Missing == "" && r.Ratio >= r.Goal }

// runs are the harness runs by harness name.
type runs map[string]*figures.Run

// fig looks up harness/key; missing names what is absent.
func (rs runs) fig(harness, key string) (f figures.Figure, missing string) {
	r, ok := rs[harness]
	if !ok {
		return f, fmt.Sprintf("no %s figures (harness not run)", harness)
	}
	f, ok = r.Get(key)
	if !ok {
		return f, fmt.Sprintf("no figure %s in the %s figures", key, harness)
	}
	return f, ""
}

// param is a harness parameter as a number, def when absent or not one.
func (rs runs) param(harness, key string, def float64) float64 {
	if r, ok := rs[harness]; ok {
		if v, err := strconv.ParseFloat(r.Params[key], 64); err == nil && v > 0 {
			return v
		}
	}
	return def
}

// The goals of issue 16, section "Performance".
const (
	goalSMTP      = 0.5
	goalSSERate   = 0.95 // of the offered 1,000/s; see sseNote
	sseP99Limit   = 100.0
	goalSQLite    = 0.8
	goalKafka     = 0.8
	goalVerify    = 200000.0
	goalScaling   = 0.8
	nominalSSE    = 1000.0
	verifyMeasure = "`log verify` (SQLite, 1 KiB events)"
	// The goals of issue 13, section "Performance (benchmark)".
	osciRSSLimit = 150e6 / (1 << 20) // 150 MB in MiB, the unit of the harness's figure
)

// measures computes the report's rows from the harness runs, in the order
// of issue 16.
func measures(rs runs) []row {
	return []row{smtpRow(rs), sseRateRow(rs), sseLatencyRow(rs), sqliteRow(rs), kafkaRow(rs), verifyRow(rs), scalingRow(rs), osciCoreRow(rs), osciRSSRow(rs)}
}

// ratioRow is a figure divided by a baseline figure.
func ratioRow(measure, short, goalText string, goal float64, f, base figures.Figure, missing ...string) row {
	r := row{Measure: measure, Short: short, Goal: goal, GoalText: goalText, Ratio: math.NaN()}
	for _, m := range missing {
		if m != "" {
			r.Missing = m
			return r
		}
	}
	r.Figure, r.Baseline = rate(f), rate(base)
	if base.Value > 0 {
		r.Ratio = f.Value / base.Value
	} else {
		r.Missing = "baseline is zero"
	}
	return r
}

func smtpRow(rs runs) row {
	f, m1 := rs.fig("smtp", "serve")
	b, m2 := rs.fig("smtp", "raw")
	r := ratioRow("SMTP intake, 10 KiB messages, 16 senders (`poststelle serve`)", "SMTP intake / raw append", "≥ 50 % of raw append", goalSMTP, f, b, m1, m2)
	if r.Missing == "" {
		r.Baseline += " raw log append"
		r.Extra = fmt.Sprintf("p99 %s from MAIL FROM to 250", millis(f.P99Ms))
	}
	return r
}

func sseRateRow(rs runs) row {
	f, m := rs.fig("sse", "delivered")
	offered := rs.param("sse", "rate", nominalSSE)
	base := figures.Figure{Value: offered, Unit: f.Unit}
	r := ratioRow("receive → routed → SSE, 1,000 rules: delivered rate", "SSE delivered / offered", "1,000/s delivered (≥ 95 % of offered)", goalSSERate, f, base, m)
	if r.Missing == "" {
		r.Baseline = rate(base) + " offered"
		if o, m := rs.fig("sse", "offered"); m == "" {
			r.Extra = fmt.Sprintf("offered in fact %s", rate(o))
		}
	}
	return r
}

func sseLatencyRow(rs runs) row {
	f, m := rs.fig("sse", "delivered")
	r := row{Measure: "receive → routed → SSE, 1,000 rules: p99 latency", Short: "SSE 100 ms / p99", Goal: 1, GoalText: "p99 < 100 ms",
		Ratio: math.NaN(), Missing: m}
	if m != "" {
		return r
	}
	if f.P99Ms <= 0 {
		r.Missing = "no p99 in the sse figures"
		return r
	}
	r.Figure = "p99 " + millis(f.P99Ms)
	r.Baseline = millis(sseP99Limit) + " limit"
	r.Ratio = sseP99Limit / f.P99Ms
	r.Extra = fmt.Sprintf("p50 %s; ratio is limit / p99", millis(f.P50Ms))
	return r
}

func sqliteRow(rs runs) row {
	f, m1 := rs.fig("sqlite", "append64")
	b, m2 := rs.fig("sqlite", "raw64")
	r := ratioRow("SQLite append, 64 appenders", "SQLite append / raw commits", "≥ 80 % of raw 64-row commits", goalSQLite, f, b, m1, m2)
	if r.Missing == "" {
		r.Baseline += " raw 64-row commits"
		if l, m := rs.fig("sqlite", "rawlog64"); m == "" && l.Value > 0 {
			r.Extra = fmt.Sprintf("%.0f %% of raw 64-row commits into the log's schema (%s)", 100*f.Value/l.Value, rate(l))
		}
	}
	return r
}

func kafkaRow(rs runs) row {
	f, m1 := rs.fig("kafka", "append64")
	before, m2 := rs.fig("kafka-producerperf", "before")
	after, m3 := rs.fig("kafka-producerperf", "after")
	mean := figures.Figure{Value: (before.Value + after.Value) / 2, Unit: before.Unit}
	r := ratioRow("Kafka append, 64 appenders", "Kafka append / ProducerPerformance", "≥ 0.8 of ProducerPerformance", goalKafka, f, mean, m1, m2, m3)
	if r.Missing == "" {
		r.Baseline += " ProducerPerformance"
		r.Extra = fmt.Sprintf("ProducerPerformance %s before, %s after (mean taken)", rate(before), rate(after))
	}
	return r
}

func verifyRow(rs runs) row {
	f, m := rs.fig("sqlite", "verify")
	r := row{Measure: verifyMeasure, Short: "log verify / 200k events/s", Goal: 1, GoalText: "≥ 200,000 events/s", Ratio: math.NaN(), Missing: m}
	if m != "" {
		return r
	}
	r.Figure = rate(f)
	r.Baseline = "200,000 events/s goal"
	r.Ratio = f.Value / goalVerify
	if h, m := rs.fig("sqlite", "sha256"); m == "" && h.Value > 0 {
		r.Extra = fmt.Sprintf("the machine's limit: raw SHA-256 of the same leaves on every core %s; verify runs at %.0f %% of it",
			rate(h), 100*f.Value/h.Value)
	}
	return r
}

func scalingRow(rs runs) row {
	f, m1 := rs.fig("scaling", "three_per_cpu")
	b, m2 := rs.fig("scaling", "one_per_cpu")
	r := ratioRow("scaling: SMTP intake per CPU-second, 3 nodes on 3 brokers vs 1 node", "per CPU-second, 3 nodes / 1 node", "≥ 80 % of 1 node", goalScaling, f, b, m1, m2)
	if r.Missing == "" {
		r.Figure += " (3 nodes)"
		r.Baseline += " (1 node)"
		fi, _ := rs.fig("scaling", "three_per_cpu_intake")
		bi, _ := rs.fig("scaling", "one_per_cpu_intake")
		if bi.Value > 0 {
			r.Extra = fmt.Sprintf("until the last 250 only: %s vs %s (%.0f %%)", rate(fi), rate(bi), 100*fi.Value/bi.Value)
		}
	}
	return r
}

// osciCoreRow sets the gateway's CPU time per received OSCI message beside the Java
// library's for decrypting and verifying the same messages: per core, faster is a
// ratio above 1.
func osciCoreRow(rs runs) row {
	f, m1 := rs.fig("osci", "cpu-per-message")
	b, m2 := rs.fig("osci", "library-cpu-per-message")
	r := row{Measure: "OSCI receive, 1 MiB encrypted and signed, 64 dialogs: CPU per message vs the Java library",
		Short: "OSCI receive: library CPU / ours", Goal: 1, GoalText: "faster than the library per core", Ratio: math.NaN()}
	if m1 != "" {
		r.Missing = m1
		return r
	}
	if m2 != "" {
		r.Missing = m2 + " (the library's decrypt-bench did not run)"
		return r
	}
	if f.Value <= 0 {
		r.Missing = "zero CPU per message"
		return r
	}
	r.Figure, r.Baseline = millis(f.Value)+" CPU/msg", millis(b.Value)+" CPU/msg library"
	r.Ratio = b.Value / f.Value
	if rc, m := rs.fig("osci", "receive"); m == "" {
		r.Extra = fmt.Sprintf("%.1f msg/s, p99 %s", rc.Value, millis(rc.P99Ms))
		if mib, m := rs.fig("osci", "receive-mib"); m == "" {
			r.Extra += fmt.Sprintf(", %.1f MiB/s", mib.Value)
		}
		if raw, m := rs.fig("osci", "raw"); m == "" {
			r.Extra += fmt.Sprintf("; raw append %s", rate(raw))
		}
	}
	if v, m := rs.fig("osci", "library-1t-valid"); m == "" && v.Value < rs.param("osci", "messages", 0) {
		r.Extra += fmt.Sprintf("; the library found %.0f of %.0f content signatures valid", v.Value, rs.param("osci", "messages", 0))
	}
	return r
}

// osciRSSRow is the receiving gateway's peak RSS against the 150 MB of issue 13.
func osciRSSRow(rs runs) row {
	f, m := rs.fig("osci", "peak-rss")
	r := row{Measure: "OSCI receive, 1 MiB, 64 dialogs: peak RSS (VmHWM) of the gateway", Short: "OSCI RSS 150 MiB / peak",
		Goal: 1, GoalText: "RSS < 150 MB", Ratio: math.NaN(), Missing: m}
	if m != "" {
		return r
	}
	if f.Value <= 0 {
		r.Missing = "zero peak RSS"
		return r
	}
	r.Figure = fmt.Sprintf("%.1f MiB", f.Value)
	r.Baseline = fmt.Sprintf("150 MB (%.1f MiB) limit", osciRSSLimit)
	r.Ratio = osciRSSLimit / f.Value
	r.Extra = "ratio is limit / peak"
	return r
}

// rate formats a figure's value with thousands separators and its unit.
func rate(f figures.Figure) string {
	if f.Unit == "" {
		return thousands(f.Value)
	}
	return thousands(f.Value) + " " + f.Unit
}

func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func millis(ms float64) string {
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	default:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
}
