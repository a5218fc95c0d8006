package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Preservation counts what the evidence-record job (gateway/preservation)
// did on this node. Only the owner of the stream evidence-records runs the
// job, so in a cluster the counters move on one node at a time; the gauges
// say when it last ran here and when the next renewal falls due.
type Preservation struct {
	records *prometheus.CounterVec
	nextDue prometheus.Gauge
	lastRun prometheus.Gauge
}

// NewPreservation registers the job's collectors with reg.
func NewPreservation(reg prometheus.Registerer) *Preservation {
	p := &Preservation{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "poststelle_evidence_records_total",
			Help: "Evidence records built, renewed (timestamp-renewal, hash-tree-renewal) and failed (not renewed although due, or not built), by outcome."},
			[]string{"outcome"}),
		nextDue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "poststelle_evidence_records_next_due_timestamp_seconds",
			Help: "When the earliest evidence record falls due for renewal (Unix time; 0 when none is foreseen)."}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "poststelle_evidence_records_last_run_timestamp_seconds",
			Help: "When this node last completed an evidence-record run (Unix time)."}),
	}
	reg.MustRegister(p.records, p.nextDue, p.lastRun)
	return p
}

// Outcome adds n records with outcome (built, timestamp-renewal,
// hash-tree-renewal, failed). A nil Preservation counts nothing.
func (p *Preservation) Outcome(outcome string, n int) {
	if p != nil && n > 0 {
		p.records.WithLabelValues(outcome).Add(float64(n))
	}
}

// Ran records a completed run and the next due time (zero: none foreseen).
func (p *Preservation) Ran(at, nextDue time.Time) {
	if p == nil {
		return
	}
	p.lastRun.Set(float64(at.Unix()))
	if nextDue.IsZero() {
		p.nextDue.Set(0)
		return
	}
	p.nextDue.Set(float64(nextDue.Unix()))
}
