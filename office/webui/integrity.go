package webui

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore/integrity"
)

// integrityStatus is the outcome of the UI's latest full verification of
// the log, as `poststelle log verify` would report it.
type integrityStatus struct {
	mu   sync.Mutex
	last integrityResult
}

type integrityResult struct {
	// State is "pending", "ok", "broken" or "error".
	State   string
	Events  int64
	Checked time.Time
	Detail  string
}

func (st *integrityStatus) get() integrityResult {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.last.State == "" {
		return integrityResult{State: "pending"}
	}
	return st.last
}

func (st *integrityStatus) set(r integrityResult) {
	st.mu.Lock()
	st.last = r
	st.mu.Unlock()
}

// checkIntegrity verifies the whole log now and every IntegrityInterval
// until ctx ends.
func (s *Server) checkIntegrity(ctx context.Context) {
	if s.deps.Audited == nil || s.deps.PublicKey == nil {
		return
	}
	for {
		s.verifyOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.IntegrityInterval):
		}
	}
}

func (s *Server) verifyOnce(ctx context.Context) {
	sum, err := integrity.VerifyLogWith(ctx, s.deps.Audited, s.deps.PublicKey, integrity.VerifyOptions{Now: s.deps.Now})
	res := integrityResult{State: "ok", Events: sum.Events, Checked: s.deps.Now()}
	var prob *integrity.Problem
	switch {
	case errors.As(err, &prob):
		res.State, res.Detail = "broken", prob.Error()
		s.deps.Logger.Error("web UI: the log failed verification", "partition", prob.Partition, "offset", prob.Offset, "reason", prob.Reason)
	case ctx.Err() != nil:
		return
	case err != nil:
		res.State, res.Detail = "error", err.Error()
		s.deps.Logger.Warn("web UI: could not verify the log", "err", err)
	}
	s.integrity.set(res)
}
