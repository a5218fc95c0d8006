// Package metrics exposes the gateway's Prometheus metrics, its liveness and
// its readiness. Most figures are read off the event log rather than
// counted inside the handlers: an Observer tails every partition from the
// head it finds at start and counts what the log says happened (intake per
// channel, verification outcomes, routing, deliveries, answers), so the
// numbers mean the same on every node and no handler needs to know about
// Prometheus. What the log cannot say — how far each projection and
// pipeline handler is behind, how long the blob store takes — is gathered at
// scrape time or by wrapping the store.
//
// Counters start at zero with the process, as Prometheus expects; rate()
// over them is the cluster's rate as this node folds it.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the gateway's collectors in their own registry, so that
// two gateways in one test process do not share counters.
type Metrics struct {
	reg *prometheus.Registry

	events        *prometheus.CounterVec
	intake        *prometheus.CounterVec
	intakeBytes   *prometheus.CounterVec
	signatures    *prometheus.CounterVec
	writtenForm   *prometheus.CounterVec
	routed        *prometheus.CounterVec
	routingFailed prometheus.Counter
	deliveries    *prometheus.CounterVec
	routingLag    prometheus.Histogram
	deliveryLag   prometheus.Histogram
	answers       *prometheus.CounterVec
	failures      *prometheus.CounterVec
	observed      *prometheus.GaugeVec
	blobOps       *prometheus.HistogramVec
	blobErrors    *prometheus.CounterVec
}

// lagBuckets span a fast in-process hand-over (milliseconds) to a backlog
// after an outage (minutes).
var lagBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// New creates the collectors, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.events = f.counterVec("poststelle_log_events_total", "Events appended to the log, by type, as this node observed them.", "type")
	m.intake = f.counterVec("poststelle_intake_messages_total", "Messages received (MessageReceived), by channel.", "channel")
	m.intakeBytes = f.counterVec("poststelle_intake_bytes_total", "Raw bytes of the messages received, by channel.", "channel")
	m.signatures = f.counterVec("poststelle_verification_signatures_total",
		"Signatures verified, by ETSI EN 319 102-1 indication and format.", "indication", "format")
	m.writtenForm = f.counterVec("poststelle_verification_written_form_total",
		"Verified messages by whether the written form is satisfied.", "satisfied")
	m.routed = f.counterVec("poststelle_routing_routed_total", "Messages routed, by who decided (rule, triage, ...).", "decided_by")
	m.routingFailed = f.counter("poststelle_routing_failed_total", "Messages that routing could not place.")
	m.deliveries = f.counterVec("poststelle_delivery_total", "Deliveries to an office, by the way they went (queue, webhook, ...).", "via")
	m.routingLag = f.histogram("poststelle_routing_lag_seconds", "Time from receipt of a message to its routing decision in the log.")
	m.deliveryLag = f.histogram("poststelle_delivery_lag_seconds", "Time from receipt of a message to its delivery to an office in the log.")
	m.answers = f.counterVec("poststelle_answers_total", "Answers requested, sent and failed, by channel where known.", "outcome", "channel")
	m.failures = f.counterVec("poststelle_processing_failed_total", "Events a pipeline handler gave up on, by handler.", "handler")
	m.observed = f.gaugeVec("poststelle_log_observed_offset", "The next log offset this node's observer will read, by partition.", "partition")
	m.blobOps = f.histogramVec("poststelle_blob_operation_seconds", "Blob store operations by kind; put returns when the bytes are durable.", "op")
	m.blobErrors = f.counterVec("poststelle_blob_errors_total", "Failed blob store operations by kind.", "op")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where further collectors (the scrape-time ones) register.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: lagBuckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: lagBuckets}, labels)
	f.reg.MustRegister(h)
	return h
}
