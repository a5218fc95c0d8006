package sqlitelog

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
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
	if err := checkFormat(ctx, l.rdb, path); err != nil {
		l.rdb.Close()
		return nil, err
	}
	l.closed.Do(func() {}) // Close must only close the readers
	return l, nil
}

// StoredHashes implements integrity.StoredHashes: the leaf_hash column and
// the checkpoints' frontiers, which Open trusts when it resumes the chain.
func (l *Log) StoredHashes(ctx context.Context, partition int32, from, to int64) (integrity.Stored, error) {
	s := integrity.Stored{Leaves: map[int64][]byte{}, Frontiers: map[int64][]byte{}}
	if partition != 0 {
		return s, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	if err := l.scanPairs(ctx, s.Leaves, `SELECT off, leaf_hash FROM events WHERE off >= ? AND off < ?`, from, to); err != nil {
		return s, fmt.Errorf("sqlitelog: read leaf hashes %d to %d: %w", from, to, err)
	}
	if err := l.scanPairs(ctx, s.Frontiers, `SELECT size, frontier FROM checkpoints WHERE size > ? AND size <= ?`, from, to); err != nil {
		return s, fmt.Errorf("sqlitelog: read frontiers %d to %d: %w", from, to, err)
	}
	return s, nil
}

// ReadStored implements integrity.StoredReader: Read and the leaf_hash
// column in one scan, and the frontiers of the checkpoints it reaches.
func (l *Log) ReadStored(ctx context.Context, partition int32, from int64, limit int) ([]eventstore.Event, integrity.Stored, error) {
	if limit <= 0 || limit > maxRead {
		limit = maxRead
	}
	// An auditor reads whole pages, so they are allocated whole.
	s := integrity.Stored{Leaves: make(map[int64][]byte, limit), Frontiers: map[int64][]byte{}}
	if partition != 0 {
		return nil, s, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	rows, err := l.rdb.QueryContext(ctx, `SELECT off, id, tenant, stream, stream_seq, type, version, message_key, correlation_id,
	causation_id, metadata, data, recorded_at, prev_hash, leaf_hash FROM events WHERE off >= ? ORDER BY off LIMIT ?`, from, limit)
	if err != nil {
		return nil, s, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
	}
	defer rows.Close()
	out := make([]eventstore.Event, 0, limit)
	for rows.Next() {
		var leaf []byte
		e, err := scanEvent(rows, &leaf)
		if err != nil {
			return nil, s, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
		}
		s.Leaves[e.Position.Offset] = leaf
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s, fmt.Errorf("sqlitelog: read events from %s: %w", l.cfg.Path, err)
	}
	if len(out) == 0 {
		return nil, s, nil
	}
	if err := l.scanPairs(ctx, s.Frontiers, `SELECT size, frontier FROM checkpoints WHERE size > ? AND size <= ?`, from, out[len(out)-1].Position.Offset+1); err != nil {
		return nil, s, fmt.Errorf("sqlitelog: read frontiers from %d: %w", from, err)
	}
	return out, s, nil
}

func (l *Log) scanPairs(ctx context.Context, into map[int64][]byte, q string, args ...any) error {
	rows, err := l.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		into[k] = v
	}
	return rows.Err()
}
