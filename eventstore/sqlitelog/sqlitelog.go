// Package sqlitelog is the embedded event log: one SQLite database in WAL mode
// with synchronous=FULL, so an acknowledged append survives a crash of the
// process or the machine. One writer goroutine takes every pending append,
// writes them in one transaction and commits once, so that concurrent
// appenders share an fsync (group commit). The same transaction links each
// event to its predecessor and stores a signed checkpoint of the partition's
// Merkle tree head (package integrity).
package sqlitelog

import (
	"context"
	"crypto"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// Config configures the embedded log.
type Config struct {
	// Path is the database file; it is created when missing.
	Path string
	// Signer signs checkpoints; required.
	Signer crypto.Signer
	// MaxBatch caps how many events one commit takes (default 2048).
	MaxBatch int
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// Now returns the recording time (default time.Now); tests fix it.
	Now func() time.Time
}

// Log is the SQLite event log. It implements eventstore.Log and eventstore.Heads.
type Log struct {
	cfg    Config
	logID  string
	wdb    *sql.DB // the writer's single connection
	rdb    *sql.DB // readers
	reqs   chan *appendReq
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after each commit
	groups map[string]*sync.Mutex

	// Writer state, owned by the writer goroutine after Open.
	next     int64
	prev     [32]byte
	frontier *integrity.Frontier
	seqCache map[string]int64 // tenant\x00stream → newest committed sequence number
	// Statements prepared once on the writer's connection.
	insert, insertCheckpoint *sql.Stmt
}

// prepare readies the writer's statements. OR IGNORE turns a duplicate id
// or message key into "no row inserted", which conflict() then explains; it
// spares a lookup per event.
func (l *Log) prepare(ctx context.Context) error {
	var err error
	l.insert, err = l.wdb.PrepareContext(ctx, `INSERT OR IGNORE INTO events (off, id, tenant, stream, stream_seq, type, version,
		message_key, correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("sqlitelog: prepare insert: %w", err)
	}
	l.insertCheckpoint, err = l.wdb.PrepareContext(ctx, `INSERT INTO checkpoints (size, root, time, key_id, signature, frontier) VALUES (?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("sqlitelog: prepare checkpoint insert: %w", err)
	}
	return nil
}

type appendReq struct {
	ctx     context.Context
	events  []eventstore.Event
	results []eventstore.Result
	err     error
	done    chan struct{}
}

// Open opens or creates the log at cfg.Path.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Signer == nil {
		return nil, errors.New("sqlitelog: a checkpoint signer is required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2048
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	wdb, err := sql.Open("sqlite", dsn(cfg.Path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlitelog: open %s: %w", cfg.Path, err)
	}
	wdb.SetMaxOpenConns(1)
	l := &Log{cfg: cfg, wdb: wdb, reqs: make(chan *appendReq, 1024), stop: make(chan struct{}),
		done: make(chan struct{}), notify: make(chan struct{}), groups: map[string]*sync.Mutex{}, seqCache: map[string]int64{}}
	if err := errors.Join(l.init(ctx), l.prepare(ctx)); err != nil {
		wdb.Close()
		return nil, err
	}
	if l.rdb, err = openDB(cfg.Path, true); err != nil {
		wdb.Close()
		return nil, err
	}
	go l.writer()
	return l, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Schema is the embedded log's SQL schema. It is exported for the benchmark
// harness, which measures raw inserts into the same tables as a baseline.
const Schema = schema

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS events (
	off INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	tenant TEXT NOT NULL,
	stream TEXT NOT NULL,
	stream_seq INTEGER NOT NULL,
	type TEXT NOT NULL,
	version INTEGER NOT NULL,
	message_key TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	causation_id TEXT NOT NULL,
	metadata BLOB NOT NULL,
	data BLOB NOT NULL,
	recorded_at INTEGER NOT NULL,
	prev_hash BLOB NOT NULL,
	leaf_hash BLOB NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (tenant, stream, stream_seq);
CREATE UNIQUE INDEX IF NOT EXISTS events_message_key ON events (tenant, message_key) WHERE message_key != '';
CREATE TABLE IF NOT EXISTS checkpoints (
	size INTEGER PRIMARY KEY,
	root BLOB NOT NULL,
	time INTEGER NOT NULL,
	key_id TEXT NOT NULL,
	signature BLOB NOT NULL,
	frontier BLOB NOT NULL
) STRICT;
`

// init creates the schema, the log id, and loads the writer's state.
func (l *Log) init(ctx context.Context) error {
	if _, err := l.wdb.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("sqlitelog: create schema in %s: %w", l.cfg.Path, err)
	}
	var idBytes [16]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return err
	}
	if _, err := l.wdb.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?), ('format', 'poststelle-sqlitelog-1')`, hex.EncodeToString(idBytes[:])); err != nil {
		return fmt.Errorf("sqlitelog: write log id: %w", err)
	}
	if err := l.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'log_id'`).Scan(&l.logID); err != nil {
		return fmt.Errorf("sqlitelog: read log id: %w", err)
	}
	return l.loadHead(ctx)
}

// loadHead restores the chain head and Merkle frontier after a restart and
// checks that the stored state is consistent with the newest event.
func (l *Log) loadHead(ctx context.Context) error {
	l.frontier = &integrity.Frontier{}
	var size int64
	var frontier []byte
	var root []byte
	err := l.wdb.QueryRowContext(ctx, `SELECT size, root, frontier FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &root, &frontier)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("sqlitelog: read newest checkpoint: %w", err)
	default:
		f, err := decodeFrontier(size, frontier)
		if err != nil {
			return err
		}
		if r := f.Root(); string(r[:]) != string(root) {
			return fmt.Errorf("sqlitelog: stored frontier at size %d does not match its checkpoint; run 'poststelle log verify'", size)
		}
		l.frontier = f
	}
	var count int64
	if err := l.wdb.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&count); err != nil {
		return fmt.Errorf("sqlitelog: count events: %w", err)
	}
	if count != size {
		return fmt.Errorf("sqlitelog: %d events but newest checkpoint covers %d; the database was altered, run 'poststelle log verify'", count, size)
	}
	l.next = size
	if size == 0 {
		return nil
	}
	var leaf []byte
	if err := l.wdb.QueryRowContext(ctx, `SELECT leaf_hash FROM events WHERE off = ?`, size-1).Scan(&leaf); err != nil {
		return fmt.Errorf("sqlitelog: read newest event %d: %w", size-1, err)
	}
	copy(l.prev[:], leaf)
	return nil
}

// LogID identifies this log in its signed checkpoints.
func (l *Log) LogID() string { return l.logID }

// Partitions implements eventstore.Log; the embedded log has one.
func (l *Log) Partitions(context.Context) (int32, error) { return 1, nil }

// Append implements eventstore.Log.
func (l *Log) Append(ctx context.Context, events ...eventstore.Event) ([]eventstore.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &appendReq{ctx: ctx, events: events, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-l.stop:
		return nil, eventstore.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued the request is written even if ctx ends, so waiting here
	// ignores ctx: returning early would hide whether it became durable.
	select {
	case <-r.done:
		return r.results, r.err
	case <-l.done:
		select {
		case <-r.done:
			return r.results, r.err
		default:
			return nil, eventstore.ErrClosed
		}
	}
}

// Close stops the writer after pending appends and closes the database.
func (l *Log) Close() error {
	var err error
	l.closed.Do(func() {
		close(l.stop)
		<-l.done
		err = l.wdb.Close()
	})
	if l.wdb == nil {
		return l.rdb.Close()
	}
	return errors.Join(err, l.rdb.Close())
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, readOnly))
	if err != nil {
		return nil, fmt.Errorf("sqlitelog: open %s: %w", path, err)
	}
	if readOnly {
		db.SetMaxOpenConns(4)
	}
	return db, nil
}

// Checkpoints implements eventstore.Heads.
func (l *Log) Checkpoints(ctx context.Context, partition int32) ([]eventstore.Checkpoint, error) {
	if partition != 0 {
		return nil, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	rows, err := l.rdb.QueryContext(ctx, `SELECT size, root, time, key_id, signature FROM checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("sqlitelog: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []eventstore.Checkpoint
	for rows.Next() {
		var c eventstore.Checkpoint
		var root []byte
		var t int64
		if err := rows.Scan(&c.Size, &root, &t, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("sqlitelog: read checkpoint: %w", err)
		}
		if len(root) != 32 {
			return nil, fmt.Errorf("sqlitelog: checkpoint at size %d has a %d-byte root", c.Size, len(root))
		}
		copy(c.Root[:], root)
		c.Time = time.Unix(0, t).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func (l *Log) signalCommit() {
	l.mu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func (l *Log) waitChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}
