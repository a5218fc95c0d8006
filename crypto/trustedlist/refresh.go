package trustedlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Defaults for RefreshConfig fields left zero.
const (
	DefaultRefreshInterval = 6 * time.Hour
	DefaultFetchTimeout    = 30 * time.Second
	DefaultMinBackoff      = time.Minute
	maxListRedirects       = 3
)

// lotlCacheName is the cache entry of the list of trusted lists.
const lotlCacheName = "lotl"

// RefreshConfig is the verification.trusted_list_refresh section: where the
// EU list of trusted lists is, the certificates pinned to sign it, and how
// the lists are kept.
type RefreshConfig struct {
	// LOTLURL is the list of trusted lists, e.g.
	// https://ec.europa.eu/tools/lotl/eu-lotl.xml.
	LOTLURL string `yaml:"lotl_url"`
	// PinnedCerts are PEM files with the LOTL signing certificates as
	// published in the Official Journal; the LOTL is refused unless one of
	// them signed it.
	PinnedCerts []string `yaml:"pinned_certs"`
	// CacheDir keeps the last good copy of every list. Required: it is what
	// verification uses while the network is down.
	CacheDir string `yaml:"cache_dir"`
	// Interval between refreshes (default 6h); Jitter (default a tenth of
	// Interval) spreads them, so that gateways do not fetch in step.
	Interval time.Duration `yaml:"refresh_interval"`
	Jitter   time.Duration `yaml:"jitter"`
	// Timeout bounds the fetch of one list (default 30s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes caps one list (default xmldsig's 16 MiB).
	MaxBytes int `yaml:"max_bytes"`
	// Territories restricts the national lists fetched (e.g. [DE, AT]);
	// empty: every list the LOTL points to.
	Territories []string `yaml:"territories"`
	// AcceptedVersions defaults to DefaultAcceptedVersions (5 and 6).
	AcceptedVersions []int `yaml:"accepted_versions"`
}

// Enabled reports whether refresh is configured at all.
func (c RefreshConfig) Enabled() bool { return c.LOTLURL != "" }

func (c RefreshConfig) validate() error {
	if _, err := listURL(c.LOTLURL); err != nil {
		return fmt.Errorf("trustedlist: lotl_url: %w", err)
	}
	if c.CacheDir == "" {
		return errors.New("trustedlist: cache_dir is required for the trusted-list refresh")
	}
	if c.Interval < 0 || c.Jitter < 0 || c.Timeout < 0 {
		return errors.New("trustedlist: negative refresh_interval, jitter or timeout")
	}
	return nil
}

// RefreshDeps are the Refresher's collaborators.
type RefreshDeps struct {
	// Pinned are the LOTL signing certificates (read from
	// RefreshConfig.PinnedCerts by the caller). Required.
	Pinned []*cert.Certificate
	// HTTP fetches the lists; nil: a client without proxy from the
	// environment.
	HTTP   *http.Client
	Logger *slog.Logger
	// OnUpdate is called after every refresh with the new snapshot (also
	// when it came from the cache), e.g. to rebuild a trust store.
	OnUpdate func(*Snapshot)
}

// Snapshot is the set of verified lists after one refresh.
type Snapshot struct {
	LOTL  *TrustedList
	Lists []*TrustedList
	// Sources says for each list (by cache name) where it came from:
	// "network <url>" or "cache (<reason>)".
	Sources map[string]string
	// Problems are lists that could not be used at all, and lists used
	// past their NextUpdate.
	Problems    []string
	RefreshedAt time.Time
}

// Refresher keeps the LOTL and the national lists it points to current:
// each fetched list is verified (the LOTL against the pinned certificates,
// each national list against the certificates the LOTL names for it) and
// cached; when a fetch fails or a list is refused, the cached good copy is
// used.
type Refresher struct {
	cfg   RefreshConfig
	deps  RefreshDeps
	cache *Cache
	http  *http.Client
	log   *slog.Logger

	mu   sync.RWMutex
	snap *Snapshot
}

// NewRefresher checks cfg and returns a Refresher; nothing is fetched yet.
func NewRefresher(cfg RefreshConfig, deps RefreshDeps) (*Refresher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(deps.Pinned) == 0 {
		return nil, errors.New("trustedlist: no pinned LOTL signing certificates")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultRefreshInterval
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = cfg.Interval / 10
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultFetchTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = xmldsig.DefaultLimits().MaxBytes
	}
	r := &Refresher{cfg: cfg, deps: deps, cache: &Cache{Dir: cfg.CacheDir}, http: deps.HTTP, log: deps.Logger}
	if r.http == nil {
		r.http = &http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxListRedirects {
				return fmt.Errorf("more than %d redirects", maxListRedirects)
			}
			return nil
		}}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Current returns the last snapshot, nil before the first refresh.
func (r *Refresher) Current() *Snapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.snap
}

// Run refreshes every Interval (± Jitter) until ctx ends, starting at once
// unless a refresh has already succeeded. After a refresh without a usable
// LOTL it retries sooner, doubling the pause from DefaultMinBackoff up to
// Interval.
func (r *Refresher) Run(ctx context.Context) error {
	minBackoff := min(DefaultMinBackoff, r.cfg.Interval)
	backoff := minBackoff
	var wait time.Duration
	if r.Current() != nil {
		wait = r.jittered(r.cfg.Interval)
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if _, err := r.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.WarnContext(ctx, "trusted-list refresh failed", "err", err, "retry_in", backoff)
			wait = r.jittered(backoff)
			backoff = min(2*backoff, r.cfg.Interval)
			continue
		}
		wait, backoff = r.jittered(r.cfg.Interval), minBackoff
	}
}

func (r *Refresher) jittered(d time.Duration) time.Duration {
	j := min(r.cfg.Jitter, d/2)
	if j <= 0 {
		return d
	}
	return d - j + rand.N(2*j+1)
}

// Refresh fetches and verifies the LOTL and the national lists once. It
// fails only when no verified LOTL is available, neither fetched nor
// cached; a national list that cannot be had is a Problem of the snapshot.
func (r *Refresher) Refresh(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{Sources: map[string]string{}, RefreshedAt: time.Now().UTC()}
	lotlCfg := Config{SigningCertificates: r.deps.Pinned, AcceptedVersions: r.cfg.AcceptedVersions, Limits: r.limits()}
	lotl, src, err := r.obtain(ctx, lotlCacheName, r.cfg.LOTLURL, lotlCfg)
	if err != nil {
		return nil, fmt.Errorf("trustedlist: refresh: LOTL: %w", err)
	}
	if !lotl.IsLOTL() {
		return nil, fmt.Errorf("trustedlist: refresh: %s is a %s, not a list of trusted lists", r.cfg.LOTLURL, lotl.Type)
	}
	snap.LOTL, snap.Sources[lotlCacheName] = lotl, src
	r.checkNextUpdate(snap, lotlCacheName, lotl)
	for _, p := range r.pointers(lotl) {
		name := "tl-" + strings.ToUpper(p.Territory)
		if len(p.Certificates) == 0 {
			snap.Problems = append(snap.Problems, name+": the LOTL names no signing certificate")
			continue
		}
		cfg := Config{SigningCertificates: p.Certificates, AcceptedVersions: r.cfg.AcceptedVersions, Limits: r.limits()}
		tl, src, err := r.obtain(ctx, name, p.Location, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			snap.Problems = append(snap.Problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if !strings.EqualFold(tl.SchemeTerritory, p.Territory) {
			snap.Problems = append(snap.Problems, fmt.Sprintf("%s: list is of territory %q", name, tl.SchemeTerritory))
			continue
		}
		snap.Lists = append(snap.Lists, tl)
		snap.Sources[name] = src
		r.checkNextUpdate(snap, name, tl)
	}
	r.mu.Lock()
	r.snap = snap
	r.mu.Unlock()
	r.log.InfoContext(ctx, "trusted lists refreshed", "lotl_sequence", lotl.SequenceNumber, "lists", len(snap.Lists), "problems", len(snap.Problems))
	if r.deps.OnUpdate != nil {
		r.deps.OnUpdate(snap)
	}
	return snap, nil
}

func (r *Refresher) limits() xmldsig.Limits { return xmldsig.Limits{MaxBytes: r.cfg.MaxBytes} }

func (r *Refresher) checkNextUpdate(snap *Snapshot, name string, tl *TrustedList) {
	if !tl.NextUpdate.IsZero() && tl.NextUpdate.Before(snap.RefreshedAt) {
		snap.Problems = append(snap.Problems, fmt.Sprintf("%s: sequence %d is past its NextUpdate %s", name, tl.SequenceNumber, tl.NextUpdate.Format(time.RFC3339)))
	}
}

var territoryRe = regexp.MustCompile(`^[A-Za-z]{2}$`)

// pointers selects the XML national lists of the configured territories,
// one per territory.
func (r *Refresher) pointers(lotl *TrustedList) []Pointer {
	var out []Pointer
	seen := map[string]bool{}
	for _, p := range lotl.Pointers {
		t := strings.ToUpper(p.Territory)
		switch {
		case strings.HasSuffix(p.Type, "listofthelists"), !territoryRe.MatchString(t), seen[t]:
			continue
		case p.MimeType != "" && !strings.Contains(p.MimeType, "xml"):
			continue // the PDF form of the same list
		case len(r.cfg.Territories) > 0 && !containsFold(r.cfg.Territories, t):
			continue
		}
		seen[t] = true
		out = append(out, p)
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// obtain fetches one list and stores it in the cache if it verifies and is
// not a rollback; otherwise it falls back to the cached copy, which Cache
// verifies again.
func (r *Refresher) obtain(ctx context.Context, name, location string, cfg Config) (*TrustedList, string, error) {
	data, err := r.fetch(ctx, location)
	if err == nil {
		tl, serr := r.cache.Store(ctx, name, data, cfg)
		if serr == nil {
			return tl, "network " + location, nil
		}
		err = serr
		r.log.WarnContext(ctx, "trusted list refused", "list", name, "url", location, "err", err)
	}
	cached, cerr := r.cache.Load(ctx, name, cfg)
	if cerr != nil {
		return nil, "", errors.Join(err, cerr)
	}
	return cached, fmt.Sprintf("cache (%v)", err), nil
}

func (r *Refresher) fetch(ctx context.Context, location string) ([]byte, error) {
	u, err := listURL(location)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", location, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: HTTP status %s", location, resp.Status)
	}
	max := int64(r.cfg.MaxBytes)
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", location, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", location, max)
	}
	return data, nil
}

func listURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("URL %q: want an http(s) URL", raw)
	}
	return u, nil
}
