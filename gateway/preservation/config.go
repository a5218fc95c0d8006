package preservation

import (
	"crypto"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "crypto/sha3" // registers SHA3-256/384/512 for crypto.Hash

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Config is the preservation job's configuration (evidence.records in the
// gateway's configuration).
type Config struct {
	// Enabled turns the job on or off; unset: on wherever a TSA is
	// configured, as receipt timestamps are.
	Enabled *bool `yaml:"enabled"`
	// Interval is the time between runs (default 24h); the first run is a
	// minute after start, or Interval if that is shorter.
	Interval time.Duration `yaml:"interval"`
	// Hash is the algorithm of new records (default SHA-256).
	Hash string `yaml:"hash"`
	// RenewHash is the algorithm of hash-tree renewals (default SHA-512,
	// as `poststelle evidence renew`).
	RenewHash string `yaml:"renew_hash"`
	// TSA is the URL of the TSA that stamps records and renewals; empty:
	// the first of verification.tsas (the gateway's own TSA in the demo).
	TSA string `yaml:"tsa"`
	// MaxBatch caps the data objects of one run's hash tree, the head
	// included (default 100,000; at least 2); the rest wait for the next
	// run.
	MaxBatch int `yaml:"max_batch"`
}

// Defaults.
const (
	DefaultInterval = 24 * time.Hour
	DefaultMaxBatch = 100_000
	// firstRunAfter is how soon after start the first run comes.
	firstRunAfter = time.Minute
)

// WithDefaults returns c with every unset field defaulted; Enabled stays as
// it is, since its default depends on the TSAs configured elsewhere.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Hash == "" {
		c.Hash = "SHA-256"
	}
	if c.RenewHash == "" {
		c.RenewHash = "SHA-512"
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	return c
}

// Validate names the first bad field under prefix (e.g.
// "evidence.records").
func (c Config) Validate(prefix string) error {
	c = c.WithDefaults()
	if c.Interval < time.Second {
		return fmt.Errorf("%s.interval: %v is shorter than a second", prefix, c.Interval)
	}
	if _, err := ParseHash(c.Hash); err != nil {
		return fmt.Errorf("%s.hash: %w", prefix, err)
	}
	if _, err := ParseHash(c.RenewHash); err != nil {
		return fmt.Errorf("%s.renew_hash: %w", prefix, err)
	}
	if c.MaxBatch < 2 {
		return fmt.Errorf("%s.max_batch: %d is fewer than 2 (a run's originals and the log's head)", prefix, c.MaxBatch)
	}
	if c.TSA != "" {
		if u, err := url.Parse(c.TSA); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.tsa: %q is not an http(s) URL", prefix, c.TSA)
		}
	}
	return nil
}

// On reports whether the job runs, given whether a TSA is configured.
func (c Config) On(tsaConfigured bool) bool {
	if c.Enabled != nil {
		return *c.Enabled
	}
	return tsaConfigured || c.TSA != ""
}

// hashes are the algorithms records may be built or rehashed with: those
// BSI TR-02102-1 lists (ers.DefaultPolicy's catalogue) and the TSAs serve.
var hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512}

// ParseHash reads an algorithm name as sigalg.HashName writes it
// ("SHA-256", "SHA3-512"), case-insensitively.
func ParseHash(name string) (crypto.Hash, error) {
	for _, h := range hashes {
		if strings.EqualFold(sigalg.HashName(h), name) && h.Available() {
			return h, nil
		}
	}
	return 0, fmt.Errorf("%q is not one of SHA-256, SHA-384, SHA-512, SHA3-256, SHA3-384, SHA3-512", name)
}
