package routing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Engine holds the current rule set and replaces it when the file changes.
// Readers never wait: a reload compiles the new set aside and swaps a
// pointer. A file that fails to load leaves the running rules in place.
type Engine struct {
	path   string
	opts   Options
	logger *slog.Logger
	cur    atomic.Pointer[Set]

	mu      sync.Mutex // serialises reloads
	modTime time.Time
	size    int64
}

// Static returns an engine that always uses set (the demo catch-all, tests).
func Static(set *Set) *Engine {
	e := &Engine{logger: slog.Default()}
	e.cur.Store(set)
	return e
}

// Load compiles the rule file; the first load must succeed.
func Load(path string, opts Options, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{path: path, opts: opts, logger: logger}
	if _, err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Rules returns the current rule set.
func (e *Engine) Rules() *Set { return e.cur.Load() }

// ReadFile reads a rule file with the size cap.
func ReadFile(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("routing: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("routing: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("routing: read %s: %w", path, err)
	}
	if len(raw) > MaxFileBytes {
		return nil, nil, fmt.Errorf("routing: %s is larger than %d bytes", path, MaxFileBytes)
	}
	return raw, st, nil
}

// Reload reads the file and swaps in its rules if their version changed.
// On error the current rules stay.
func (e *Engine) Reload() (changed bool, err error) {
	if e.path == "" {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	raw, st, err := ReadFile(e.path)
	if err != nil {
		return false, err
	}
	e.modTime, e.size = st.ModTime(), st.Size()
	set, err := Parse(raw, e.opts)
	if err != nil {
		return false, fmt.Errorf("%s: %w", e.path, err)
	}
	old := e.cur.Load()
	if old != nil && old.Version == set.Version {
		return false, nil
	}
	if old != nil && old.Len() > 0 && set.Len() == 0 {
		// Most likely a file caught half-written or emptied by accident;
		// routing everything to triage would be the wrong fallback.
		return false, fmt.Errorf("%s: contains no rules; write an explicit rule set (a triage catch-all) to route everything to triage", e.path)
	}
	e.cur.Store(set)
	e.logger.Info("routing rules loaded", "file", e.path, "rules", set.Len(), "version", set.Version)
	return true, nil
}

// statChanged reports whether the file looks different from the last load.
func (e *Engine) statChanged() bool {
	st, err := os.Stat(e.path)
	if err != nil {
		return true // let Reload report it
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return !st.ModTime().Equal(e.modTime) || st.Size() != e.size
}

// Watch reloads the rules when the file's modification time or size
// changes (checked every interval, default 2 s) and on SIGHUP, until ctx
// ends. Load errors are logged and the old rules kept.
func (e *Engine) Watch(ctx context.Context, interval time.Duration) error {
	if e.path == "" {
		<-ctx.Done()
		return ctx.Err()
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hup:
		case <-t.C:
			if !e.statChanged() {
				continue
			}
		}
		if _, err := e.Reload(); err != nil {
			// Log a broken file once, not at every tick.
			if err.Error() != lastErr {
				e.logger.Error("routing rules not reloaded; the previous rules stay in force", "file", e.path,
					"version", e.Rules().Version, "err", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
	}
}

// ErrNoRules is returned when an engine has no rule set.
var ErrNoRules = errors.New("routing: no rules loaded")
