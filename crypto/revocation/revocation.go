// Package revocation fetches revocation data online: OCSP responses
// (RFC 6960, with the nonce of RFC 8954) from the responders named in a
// certificate's authority information access, and CRLs (RFC 5280) from its
// HTTP CRL distribution points, with size caps, timeouts and a cache.
//
// A Client is a trust.RevocationSource. It checks what it fetched before
// handing it on (responder authority, nonce, freshness at fetch time), and
// trust evaluates it again exactly as embedded data; every object fetched is
// returned as trust.FetchedEvidence so that the report lists it with its
// URL and fetch time.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxOCSPBytes = 64 << 10
	DefaultMaxCRLBytes  = trust.MaxCRLSize
	DefaultCacheBytes   = 64 << 20
	DefaultMaxAge       = 24 * time.Hour
	DefaultClockSkew    = 5 * time.Minute
	DefaultStaleRetry   = 15 * time.Minute
	maxRedirects        = 3
)

// Config is the verification.online section. Online fetching is off unless
// Enabled is set.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// Timeout bounds one fetch (connect, request and body).
	Timeout time.Duration `yaml:"timeout"`
	// MaxOCSPBytes and MaxCRLBytes cap a response body; larger is an error.
	MaxOCSPBytes int64 `yaml:"max_ocsp_bytes"`
	MaxCRLBytes  int64 `yaml:"max_crl_bytes"`
	// CacheBytes caps the in-memory CRL cache (approximate parsed size).
	CacheBytes int64 `yaml:"cache_bytes"`
	// CacheDir, when set, also keeps fetched CRLs on disk across restarts.
	CacheDir string `yaml:"cache_dir"`
	// OCSPGet sends requests shorter than 255 bytes by GET (RFC 6960
	// A.1), which caching proxies can serve; otherwise POST.
	OCSPGet bool `yaml:"ocsp_get"`
	// OCSPHash is the CertID hash, "sha1" (default, what every responder
	// understands, RFC 5019) or "sha256".
	OCSPHash string `yaml:"ocsp_hash"`
	// RequireNonce refuses responses that do not echo the request nonce;
	// by default a missing echo is noted (pre-produced responses are
	// legitimate), a different nonce is always refused.
	RequireNonce bool `yaml:"require_nonce"`
	// MaxAge is how old a response or CRL without nextUpdate may be.
	MaxAge time.Duration `yaml:"max_age"`
	// ClockSkew is tolerated between our clock and the responder's.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// StaleRetry is how long a CRL that is already past its nextUpdate is
	// kept before it is fetched again.
	StaleRetry time.Duration `yaml:"stale_retry"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defN := func(n *int64, v int64) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&c.Timeout, DefaultTimeout)
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.ClockSkew, DefaultClockSkew)
	def(&c.StaleRetry, DefaultStaleRetry)
	defN(&c.MaxOCSPBytes, DefaultMaxOCSPBytes)
	defN(&c.MaxCRLBytes, DefaultMaxCRLBytes)
	defN(&c.CacheBytes, DefaultCacheBytes)
	if c.OCSPHash == "" {
		c.OCSPHash = "sha1"
	}
	return c
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	switch strings.ToLower(c.OCSPHash) {
	case "", "sha1", "sha256":
	default:
		return fmt.Errorf("revocation: ocsp_hash %q: want sha1 or sha256", c.OCSPHash)
	}
	if c.MaxCRLBytes > trust.MaxCRLSize {
		return fmt.Errorf("revocation: max_crl_bytes %d exceeds the parser's cap %d", c.MaxCRLBytes, trust.MaxCRLSize)
	}
	if c.MaxOCSPBytes > trust.MaxOCSPSize {
		return fmt.Errorf("revocation: max_ocsp_bytes %d exceeds the parser's cap %d", c.MaxOCSPBytes, trust.MaxOCSPSize)
	}
	return nil
}

// Client fetches OCSP responses and CRLs. It is safe for concurrent use.
type Client struct {
	cfg    Config
	http   *http.Client
	log    *slog.Logger
	crls   *crlCache
	now    func() time.Time
	random io.Reader

	mu       sync.Mutex
	inflight map[string]*flight // CRL fetches in progress, by URL
}

// Deps are the Client's collaborators; all optional.
type Deps struct {
	// HTTP is the client used for fetching; nil: a client with no proxy
	// from the environment, redirects limited to http URLs.
	HTTP   *http.Client
	Logger *slog.Logger
	// Now and Random replace the clock and the nonce source in tests.
	Now    func() time.Time
	Random io.Reader
}

// New returns a Client for cfg.
func New(cfg Config, deps Deps) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, http: deps.HTTP, log: deps.Logger, now: deps.Now, random: deps.Random, inflight: map[string]*flight{}}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}, CheckRedirect: checkRedirect}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.crls = newCRLCache(cfg.CacheBytes, cfg.CacheDir)
	return c, nil
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "http" {
		return fmt.Errorf("redirect to %s refused: only http", req.URL.Scheme)
	}
	return nil
}

// FetchRevocation asks the certificate's OCSP responders first and falls
// back to its CRL distribution points when no responder gave a usable
// answer (none reachable, refused, or status unknown). Errors of individual sources are joined; data is returned even
// when some sources failed.
func (c *Client) FetchRevocation(ctx context.Context, leaf, issuer *cert.Certificate) (*trust.FetchedRevocation, error) {
	out := &trust.FetchedRevocation{}
	var errs []error
	for _, u := range leaf.OCSPServers {
		r, ev, err := c.OCSP(ctx, u, leaf, issuer)
		if ev != nil {
			out.Evidence = append(out.Evidence, *ev)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.OCSP = append(out.OCSP, r)
		if r.Responses[0].Status == trust.OCSPUnknown {
			errs = append(errs, fmt.Errorf("revocation: OCSP %s: the responder does not know the certificate", u))
			continue
		}
		return out, nil
	}
	for _, u := range leaf.CRLDistributionPoints {
		crl, ev, err := c.CRL(ctx, u, issuer)
		if ev != nil {
			out.Evidence = append(out.Evidence, *ev)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.CRLs = append(out.CRLs, crl)
		return out, nil
	}
	if len(leaf.OCSPServers) == 0 && len(leaf.CRLDistributionPoints) == 0 {
		errs = append(errs, errors.New("revocation: certificate names no OCSP responder and no CRL distribution point"))
	}
	return out, errors.Join(errs...)
}

// do sends req and reads a 200 response body of at most max bytes.
func (c *Client) do(ctx context.Context, req *http.Request, max int64) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("response of %d bytes exceeds the cap of %d", resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("response exceeds the cap of %d bytes", max)
	}
	return body, ctx.Err()
}

// httpURL accepts only absolute http URLs: https would need revocation
// checking of its own TLS chain, ldap is not supported.
func httpURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", raw, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("URL %q: scheme %q not supported (only http)", raw, u.Scheme)
	}
	return u, nil
}
