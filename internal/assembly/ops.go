package assembly

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	srv := &http.Server{Handler: g.metrics.Mux(g.ready.Check), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	g.logger.Info("ops listener serving /metrics, /healthz, /readyz", "addr", g.opsLn.Addr().String())
	if err := httpserve.Run(ctx, srv, g.opsLn, "", "", 5*time.Second); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ops: %w", err)
	}
	return ctx.Err()
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
