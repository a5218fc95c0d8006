package tsa

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SerialFile issues serial numbers persisted in a file: each number is
// written (and synced) before it is handed out, so a restart continues
// above it. A number is also never below the current time in microseconds
// since 1970, so that a lost file does not make the TSA repeat serials
// unless the clock went back as well.
type SerialFile struct {
	Path string
	// Clock defaults to time.Now.
	Clock func() time.Time

	mu   sync.Mutex
	last *big.Int
}

// maxSerialFile caps the file: a decimal number of at most 160 bits.
const maxSerialFile = 128

// Next returns the next serial number.
func (f *SerialFile) Next(ctx context.Context) (*big.Int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		last, err := f.read()
		if err != nil {
			return nil, err
		}
		f.last = last
	}
	clock := f.Clock
	if clock == nil {
		clock = time.Now
	}
	next := new(big.Int).Add(f.last, big.NewInt(1))
	if now := big.NewInt(clock().UnixMicro()); now.Cmp(next) > 0 {
		next = now
	}
	if err := f.write(next); err != nil {
		return nil, err
	}
	f.last = next
	return new(big.Int).Set(next), nil
}

func (f *SerialFile) read() (*big.Int, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return new(big.Int), nil
	}
	if err != nil {
		return nil, fmt.Errorf("tsa: read serial file: %w", err)
	}
	if len(b) > maxSerialFile {
		return nil, fmt.Errorf("tsa: serial file %s has %d bytes, more than a serial number", f.Path, len(b))
	}
	n, ok := new(big.Int).SetString(strings.TrimSpace(string(b)), 10)
	if !ok || n.Sign() < 0 {
		return nil, fmt.Errorf("tsa: serial file %s does not hold a serial number", f.Path)
	}
	return n, nil
}

// write replaces the file atomically: a crash leaves the old or the new
// number, never a torn one.
func (f *SerialFile) write(n *big.Int) error {
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, ".serial-*")
	if err != nil {
		return fmt.Errorf("tsa: write serial file: %w", err)
	}
	_, err = tmp.WriteString(n.String() + "\n")
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("tsa: write serial file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // makes the rename durable where the filesystem needs it
		_ = d.Close()
	}
	return nil
}
