package assembly

import (
	"context"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/gateway/projection"
)

// buildPreservation adds the evidence-record job (evidence.records): on by
// default wherever a TSA is configured, as receipt timestamps are. In a
// cluster it runs on the owner of the stream evidence-records only.
func (g *Gateway) buildPreservation(ctx context.Context, reg *gateway.Registry, owner *ownership) error {
	rc := g.cfg.Evidence.Records
	if !rc.On(len(g.cfg.Verification.TSAs) > 0) {
		return nil
	}
	stamper, err := recordsStamper(g.cfg)
	if err != nil {
		return err
	}
	var head func(context.Context) ([]byte, error)
	if l, ok := g.log.(integrity.AuditedLog); ok {
		head = func(ctx context.Context) ([]byte, error) {
			heads, err := integrity.CurrentHeads(ctx, l, g.signer.Public())
			if err != nil {
				return nil, err
			}
			return integrity.SignHeads(g.signer, heads)
		}
	}
	job, err := preservation.New(rc, preservation.Deps{Log: g.log, DB: g.state, Blobs: g.blobs, Registry: reg,
		Tenant: g.cfg.Tenant, Stamper: stamper, Head: head, Owns: owner.owns(),
		Metrics: metrics.NewPreservation(g.metrics.Registry()), Logger: g.logger.With("component", "preservation")})
	if err != nil {
		return err
	}
	if err := job.Setup(ctx); err != nil {
		return fmt.Errorf("evidence.records: %w", err)
	}
	// The job catches the projection up itself; it also runs here, on
	// every node, so that evidence bundles find a message's record at once.
	runner := &projection.Runner{Log: g.log, DB: g.state, Registry: reg, Logger: g.logger}
	g.add("evidence records projection", func(ctx context.Context) error { return runner.Run(ctx, preservation.Objects{}) })
	g.add("evidence records", job.Run)
	return nil
}

// originalRecords finds the current evidence record of a message's
// original for its evidence bundle; nil when serve keeps no records.
func originalRecords(cfg *Config, g *Stores) func(ctx context.Context, tenant, stream string) (blob.Ref, bool, error) {
	if !cfg.Evidence.Records.On(len(cfg.Verification.TSAs) > 0) {
		return nil
	}
	return func(ctx context.Context, tenant, stream string) (blob.Ref, bool, error) {
		return preservation.OriginalRecord(ctx, g.state, tenant, stream)
	}
}

// recordsStamper is evidence.records.tsa, else the first of
// verification.tsas (the gateway's own TSA in the demo) with its policy.
func recordsStamper(cfg *Config) (*ers.HTTPStamper, error) {
	if u := cfg.Evidence.Records.TSA; u != "" {
		return &ers.HTTPStamper{URL: u}, nil
	}
	if len(cfg.Verification.TSAs) == 0 {
		return nil, errors.New("evidence.records: no TSA; set evidence.records.tsa or verification.tsas")
	}
	t := cfg.Verification.TSAs[0]
	st := &ers.HTTPStamper{URL: t.URL}
	if t.Policy != "" {
		oid, err := parseOID(t.Policy)
		if err != nil {
			return nil, fmt.Errorf("verification.tsas[0].policy: %w", err)
		}
		st.Policy = oid
	}
	return st, nil
}
