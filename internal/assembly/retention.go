package assembly

import (
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/office/officeapi"
)

// retentionWiring makes the retention service once the offices
// configuration is loaded (officeapi.WiringDeps.NewRetention): its policy
// needs the offices' periods. The service serves the admin endpoints on
// every node; its schedule runs where the stream is owned.
type retentionWiring struct {
	g       *Gateway
	reg     *gateway.Registry
	owner   *ownership
	service *retention.Service
}

func (w *retentionWiring) make(oc offices.Config) (officeapi.Retention, error) {
	rules := oc.RetentionRules()
	pol, err := retention.NewPolicy(w.g.cfg.Retention, rules)
	if err != nil {
		return nil, err
	}
	s, err := retention.New(w.g.cfg.Retention, retention.Deps{Log: w.g.log, Registry: w.reg, State: w.g.state,
		Eraser: w.eraser(), Policy: pol, Logger: w.g.logger.With("component", "retention"), Owns: w.owner.owns(),
		Metrics: metrics.NewRetention(w.g.metrics.Registry())})
	if err != nil {
		return nil, err
	}
	if len(rules) > 0 && !w.g.cfg.Retention.Enabled {
		w.g.logger.Warn("offices have retention periods, but retention.enabled is false: nothing is erased by time",
			"offices", len(rules))
	}
	w.service = s
	return s, nil
}

// eraser is the blob store as an eraser, nil when it cannot erase
// (encryption at rest off): holds and the status still answer then,
// erasure is refused.
func (w *retentionWiring) eraser() blob.Eraser {
	if e, ok := w.g.blobs.(blob.Eraser); ok {
		return e
	}
	return nil
}

// erasing reports whether erasures can run here.
func (w *retentionWiring) erasing() bool { return w.service != nil && w.eraser() != nil }
