package verification

import (
	"context"
	"fmt"
	"os"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/revocation"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/verify"
)

// maxPinnedFile caps one PEM file of pinned LOTL signing certificates.
const maxPinnedFile = 1 << 20

// currentTrust is the store verification uses now: the one rebuilt after
// the last trusted-list refresh, else the one built at start.
func (v *verifier) currentTrust() *trust.Store {
	if s := v.live.Load(); s != nil {
		return s
	}
	return v.trust
}

// trustFor is currentTrust with the revocation client bound to ctx, so that
// the message's context bounds the fetches of its verification
// (crypto/verify does not hand a context to trust validation).
func (v *verifier) trustFor(ctx context.Context) *trust.Store {
	s := v.currentTrust()
	if v.online == nil {
		return s
	}
	return s.WithRevocationSource(boundSource{ctx: ctx, c: v.online})
}

// boundSource asks the client under a context fixed when it was made.
type boundSource struct {
	ctx context.Context
	c   *revocation.Client
}

// FetchRevocation ignores the context trust passes (Background when none
// was given) in favour of the bound one.
func (b boundSource) FetchRevocation(_ context.Context, c, issuer *cert.Certificate) (*trust.FetchedRevocation, error) {
	return b.c.FetchRevocation(b.ctx, c, issuer)
}

// startOnline sets up what cfg.Online and cfg.TrustedListRefresh ask for:
// a revocation client behind the trust store, and the trusted-list
// refresher, whose first refresh (network, else cache) runs now and whose
// schedule runs until ctx ends. Both are off unless configured.
func (v *verifier) startOnline(ctx context.Context, cfg Config) error {
	if cfg.Online.Enabled {
		c, err := revocation.New(cfg.Online, revocation.Deps{HTTP: v.deps.HTTP, Logger: v.deps.Logger.With("component", "revocation")})
		if err != nil {
			return fmt.Errorf("verification: online: %w", err)
		}
		v.online = c
		v.trust = v.trust.WithRevocationSource(c)
	}
	rc := cfg.TrustedListRefresh
	if !rc.Enabled() {
		return nil
	}
	pinnedFiles := rc.PinnedCerts
	if len(pinnedFiles) == 0 {
		pinnedFiles = cfg.TLSigners // the same certificates: the LOTL's signers
	}
	pinned, err := readPinned(pinnedFiles)
	if err != nil {
		return fmt.Errorf("verification: trusted_list_refresh: %w", err)
	}
	r, err := trustedlist.NewRefresher(rc, trustedlist.RefreshDeps{Pinned: pinned, HTTP: v.deps.HTTP,
		Logger: v.deps.Logger.With("component", "trusted-lists"), OnUpdate: func(s *trustedlist.Snapshot) { v.applySnapshot(ctx, cfg, s) }})
	if err != nil {
		return fmt.Errorf("verification: trusted_list_refresh: %w", err)
	}
	if _, err := r.Refresh(ctx); err != nil {
		// Not fatal: the schedule retries, and the configured files still count.
		v.deps.Logger.ErrorContext(ctx, "no trusted lists from the network or the cache yet", "err", err)
	}
	go r.Run(ctx)
	return nil
}

// applySnapshot rebuilds the trust store from the configured files and the
// refreshed lists and makes it current; on failure the previous store stays.
func (v *verifier) applySnapshot(ctx context.Context, cfg Config, s *trustedlist.Snapshot) {
	store, err := verify.LoadTrust(ctx, verify.TrustConfig{
		Paths:     append(append([]string(nil), cfg.TrustAnchors...), cfg.TrustedLists...),
		TLSigners: cfg.TLSigners,
	})
	if err == nil {
		for _, tl := range s.Lists {
			if err = store.AddTrustedList(tl); err != nil {
				break
			}
		}
	}
	if err != nil {
		v.deps.Logger.ErrorContext(ctx, "trust store not rebuilt after the trusted-list refresh", "err", err)
		return
	}
	if v.online != nil {
		store = store.WithRevocationSource(v.online)
	}
	v.live.Store(store)
	for _, p := range s.Problems {
		v.deps.Logger.WarnContext(ctx, "trusted list", "problem", p)
	}
}

func readPinned(paths []string) ([]*cert.Certificate, error) {
	var out []*cert.Certificate
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.Size() > maxPinnedFile {
			return nil, fmt.Errorf("%s: larger than %d bytes", p, maxPinnedFile)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		cs, err := cert.ParseAll(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, cs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no pinned LOTL signing certificates (pinned_certs or tl_signers)")
	}
	return out, nil
}
