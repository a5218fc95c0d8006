package assembly

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/office/httpserve"
)

// buildOps creates the metrics and the readiness check, wraps the blob
// store so its operations are timed, and binds the ops listener when one is
// configured. It runs before anything takes the blob store.
func (g *Gateway) buildOps(ctx context.Context, reg *gateway.Registry) error {
	g.metrics = metrics.New()
	g.blobs = g.metrics.Blobs(g.blobs)
	g.metrics.Registry().MustRegister(&metrics.Positions{Log: g.log, DB: g.state, Logger: g.logger})
	g.metrics.Registry().MustRegister(&metrics.EEBTasks{DB: g.state, Logger: g.logger})
	g.ready = &metrics.Readiness{Log: g.log, DB: g.state, Blobs: g.blobs}
	if err := g.ready.Start(ctx); err != nil {
		return err
	}
	obs := &metrics.Observer{Log: g.log, Registry: reg, Metrics: g.metrics, Logger: g.logger.With("component", "metrics")}
	g.add("metrics", obs.Run)
	if g.cfg.Ops.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Ops.Listen)
	if err != nil {
		return fmt.Errorf("ops: listen on %s: %w", g.cfg.Ops.Listen, err)
	}
	g.opsLn = ln
	g.add("ops listener", g.serveOps)
	return nil
}

func (g *Gateway) serveOps(ctx context.Context) error {
	mux := g.metrics.Mux(g.ready.Check)
	write := 30 * time.Second
	if g.cfg.Ops.Pprof {
		addPprof(mux)
		// A CPU profile or trace answers after the seconds it was asked for.
		write = maxProfile + 30*time.Second
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: write, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	g.logger.Info("ops listener serving /metrics, /healthz, /readyz", "addr", g.opsLn.Addr().String(), "pprof", g.cfg.Ops.Pprof)
	if err := httpserve.Run(ctx, srv, g.opsLn, "", "", 5*time.Second); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ops: %w", err)
	}
	return ctx.Err()
}

// maxProfile bounds the seconds a CPU profile or trace may be asked for, so
// that a request cannot hold the profiler (one at a time per process) for
// longer.
const maxProfile = 120 * time.Second

// addPprof serves Go's profiles under /debug/pprof/ (ops.pprof). The
// handlers are registered on this listener's mux only: net/http/pprof also
// registers them on http.DefaultServeMux, which nothing here serves.
func addPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.Handle("GET /debug/pprof/profile", boundSeconds(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", boundSeconds(http.HandlerFunc(pprof.Trace)))
}

// boundSeconds refuses a seconds parameter above maxProfile.
func boundSeconds(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || time.Duration(n)*time.Second > maxProfile {
				http.Error(w, fmt.Sprintf("seconds: 1 to %d", int(maxProfile.Seconds())), http.StatusBadRequest)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// OpsAddr is the ops listener's bound address, nil when none is configured.
func (g *Gateway) OpsAddr() net.Addr {
	if g.opsLn == nil {
		return nil
	}
	return g.opsLn.Addr()
}

// Metrics are the gateway's collectors.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }
