package metrics

import "github.com/prometheus/client_golang/prometheus"

// Retention counts what the retention service (gateway/retention) erased
// on this node: the erasures it recorded, by reason, and the keys it
// failed to destroy (each one is retried from the ContentErased event by
// the erasure handler; a count that keeps rising needs a look at the key
// store).
type Retention struct {
	erasures *prometheus.CounterVec
	blobs    prometheus.Counter
	failures prometheus.Counter
}

// NewRetention registers the retention collectors with reg.
func NewRetention(reg prometheus.Registerer) *Retention {
	r := &Retention{
		erasures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "poststelle_retention_erasures_total",
			Help: "Messages whose contents this node erased, by reason (retention-expired, request)."}, []string{"reason"}),
		blobs: prometheus.NewCounter(prometheus.CounterOpts{Name: "poststelle_retention_blobs_erased_total",
			Help: "Blob keys destroyed by erasures recorded on this node."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "poststelle_retention_erase_failures_total",
			Help: "Blob keys an erasure could not destroy at once (left to the erasure handler to retry)."}),
	}
	reg.MustRegister(r.erasures, r.blobs, r.failures)
	return r
}

// Erased counts one recorded erasure of blobs blobs. A nil Retention
// counts nothing.
func (r *Retention) Erased(reason string, blobs int) {
	if r == nil {
		return
	}
	r.erasures.WithLabelValues(reason).Inc()
	r.blobs.Add(float64(blobs))
}

// EraseFailed counts keys not destroyed at once.
func (r *Retention) EraseFailed(n int) {
	if r != nil && n > 0 {
		r.failures.Add(float64(n))
	}
}
