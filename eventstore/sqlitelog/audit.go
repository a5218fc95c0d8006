package sqlitelog

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// OpenReadOnly opens an existing log for auditing: it reads events and
// checkpoints exactly as stored and never writes, and it does not refuse a
// database whose state is inconsistent, since finding such states is the
// auditor's job. Append fails with ErrClosed.
func OpenReadOnly(ctx context.Context, path string) (*Log, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlitelog: %w", err)
	}
	l := &Log{cfg: Config{Path: path}, stop: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}), groups: map[string]*sync.Mutex{}}
	close(l.stop)
	close(l.done)
	var err error
	if l.rdb, err = openDB(path, true); err != nil {
		return nil, err
	}
	if err := l.rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'log_id'`).Scan(&l.logID); err != nil {
		l.rdb.Close()
		return nil, fmt.Errorf("sqlitelog: read log id of %s: %w", path, err)
	}
	l.closed.Do(func() {}) // Close must only close the readers
	return l, nil
}
