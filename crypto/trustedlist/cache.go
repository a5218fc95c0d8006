package trustedlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// ErrRollback is returned when a list older (by sequence number) than the
// cached good copy is offered: an attacker replaying an old list must not
// replace a newer one.
var ErrRollback = errors.New("trustedlist: sequence number older than the cached copy")

// Cache keeps the last good copy of each list in a directory, one file per
// name. Nothing is fetched here; callers hand in bytes they obtained.
type Cache struct {
	Dir string
}

var cacheName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (c *Cache) path(name string) (string, error) {
	if !cacheName.MatchString(name) {
		return "", fmt.Errorf("trustedlist: cache name %q not allowed", name)
	}
	return filepath.Join(c.Dir, name+".xml"), nil
}

// Load reads the cached copy of name and verifies it again (the directory
// is not trusted more than the network).
func (c *Cache) Load(ctx context.Context, name string, cfg Config) (*TrustedList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := c.path(name)
	if err != nil {
		return nil, err
	}
	data, err := readCapped(p, cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("trustedlist: cache %s: %w", name, err)
	}
	tl, err := Load(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("trustedlist: cache %s: %w", name, err)
	}
	return tl, nil
}

// Store verifies data and, if it is good and not older than the cached
// copy, replaces the cached copy atomically. A list that fails keeps the
// previous copy in place.
func (c *Cache) Store(ctx context.Context, name string, data []byte, cfg Config) (*TrustedList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := c.path(name)
	if err != nil {
		return nil, err
	}
	tl, err := Load(data, cfg)
	if err != nil {
		return nil, err
	}
	if old, err := c.Load(ctx, name, cfg); err == nil && old.SequenceNumber > tl.SequenceNumber {
		return nil, fmt.Errorf("%w: offered %d, cached %d", ErrRollback, tl.SequenceNumber, old.SequenceNumber)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("trustedlist: cache: %w", err)
	}
	f, err := os.CreateTemp(c.Dir, "."+name+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("trustedlist: cache: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("trustedlist: cache write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("trustedlist: cache sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("trustedlist: cache close: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return nil, fmt.Errorf("trustedlist: cache rename: %w", err)
	}
	return tl, nil
}

func readCapped(path string, lim xmldsig.Limits) ([]byte, error) {
	max := lim.MaxBytes
	if max <= 0 {
		max = xmldsig.DefaultLimits().MaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("file exceeds %d bytes", max)
	}
	return data, nil
}
