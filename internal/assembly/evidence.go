package assembly

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/gateway/evidencebundle"
	"github.com/poststelle/poststelle/office/officeapi"
)

// ErrNoSeal means evidence.seal is not configured: without a seal there
// are no evidence bundles.
var ErrNoSeal = errors.New("evidence.seal is not configured; evidence bundles need a seal certificate (docs/evidence.md)")

// EvidenceBuilder builds the bundle maker from the configuration: the log
// and blobs given, the gateway key, the seal (evidence.seal, opened here;
// close releases it), and the TSA that timestamps the head: witnesses.tsa,
// else verification.tsas, else the gateway's own tsa_server; none: the
// newest timestamped head of witnesses.dir, or no head timestamp.
func EvidenceBuilder(ctx context.Context, cfg *Config, l integrity.AuditedLog, blobs blob.Opener, signer crypto.Signer, version string, logger *slog.Logger) (b *evidencebundle.Builder, release func() error, err error) {
	key, err := cfg.OpenSeal(ctx, logger)
	if err != nil {
		return nil, nil, err
	}
	if key == nil {
		return nil, nil, ErrNoSeal
	}
	chain := make([]*x509.Certificate, 0, len(key.Certificates))
	for _, der := range key.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			key.Close()
			return nil, nil, fmt.Errorf("evidence.seal: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		key.Close()
		return nil, nil, errors.New("evidence.seal: no certificate for the seal key")
	}
	b = &evidencebundle.Builder{Log: l, Blobs: blobs, Signer: signer, Sealer: &evidencebundle.KeySealer{Key: key.Signer, Chain: chain},
		Version: version, Logger: logger}
	if cfg.Witnesses != nil {
		b.WitnessDirs = cfg.Witnesses.Dir
	}
	switch {
	case cfg.Witnesses != nil && cfg.Witnesses.TSA == "none":
	case cfg.Witnesses != nil && cfg.Witnesses.TSA != "":
		b.TSA = &tsp.Client{TSAs: []tsp.TSA{{Name: cfg.Witnesses.TSA, URL: cfg.Witnesses.TSA}}, Logger: logger}
	case len(cfg.Verification.TSAs) > 0:
		b.TSA = &tsp.Client{Attempts: cfg.Verification.TSAAttempts, RetryDelay: cfg.Verification.TSARetryDelay, Logger: logger}
		for _, t := range cfg.Verification.TSAs {
			b.TSA.TSAs = append(b.TSA.TSAs, tsp.TSA{Name: t.Name, URL: t.URL})
		}
	case cfg.TSAServer != nil:
		// Outside serve (the evidence command) the gateway's own TSA
		// answers only while serve runs; otherwise the head goes without.
		b.TSA = &tsp.Client{TSAs: []tsp.TSA{{Name: LocalTSAName, URL: "http://" + cfg.TSAServer.Listen + "/"}}, Attempts: 1, Logger: logger}
	}
	return b, key.Close, nil
}

// bundleFunc is the office API's and the web UI's bundle maker: nil (the
// download answers 503) on a log that keeps no signed heads or without a
// seal. The seal is opened for each bundle, so that a token key is held
// only while it seals.
func bundleFunc(ctx context.Context, cfg *Config, g *Stores, version string, logger *slog.Logger) (officeapi.BundleFunc, error) {
	l, ok := g.log.(integrity.AuditedLog)
	if !ok {
		logger.Warn("evidence: the log keeps no signed heads; no evidence bundles", "backend", cfg.EventStore.Backend)
		return nil, nil
	}
	logger = logger.With("component", "evidence")
	_, closeSeal, err := EvidenceBuilder(ctx, cfg, l, g.blobs, g.signer, version, logger)
	if errors.Is(err, ErrNoSeal) {
		logger.Warn("evidence: no evidence.seal configured; the office API and the web UI offer no evidence bundles")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := closeSeal(); err != nil {
		return nil, fmt.Errorf("evidence.seal: %w", err)
	}
	return func(ctx context.Context, tenant, stream string, w io.Writer) error {
		b, closeSeal, err := EvidenceBuilder(ctx, cfg, l, g.blobs, g.signer, version, logger)
		if err != nil {
			return err
		}
		defer closeSeal()
		b.OriginalRecord = originalRecords(cfg, g)
		return b.Build(ctx, tenant, stream, w)
	}, nil
}
