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
	cfg   Config
	logID string
	wdb   *sql.DB // the writer's single connection
	rdb   *sql.DB // readers
	// readStmt is Read's prepared statement on rdb (readStatement).
	readMu   sync.Mutex
	readStmt *sql.Stmt
	reqs     chan *appendReq
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after each commit
	groups map[string]*sync.Mutex

	// Writer state, owned by the writer goroutine after Open.
	next       int64
	prev       [32]byte
	frontier   *integrity.Frontier
	seqCache   map[string]int64 // tenant\x00stream → newest committed sequence number
	walBytes   int              // about how much the commits since the last checkpoint request wrote
	ckpt       chan struct{}    // asks the checkpointer for a WAL checkpoint; closed by the writer
	cdb        *sql.DB          // the checkpointer's connection
	ckptPassed chan struct{}    // the checkpointer finished a pass
	ckptDone   chan struct{}
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
	if l.cdb, err = sql.Open("sqlite", "file:"+cfg.Path+"?_pragma=busy_timeout(10000)"); err != nil {
		wdb.Close()
		l.rdb.Close()
		return nil, fmt.Errorf("sqlitelog: open %s for checkpoints: %w", cfg.Path, err)
	}
	l.cdb.SetMaxOpenConns(1)
	l.ckpt, l.ckptPassed, l.ckptDone = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	go l.checkpointer()
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
		// Readers map the database instead of copying every page in with a
		// read call; a full scan (log verify, a projection rebuild) spent
		// a fifth of its time in pread.
		q.Add("_pragma", "mmap_size(268435456)")
	} else {
		q.Set("_txlock", "immediate")
		// The checkpointer copies the WAL into the database beside the
		// writer (checkpoint.go) instead of the writer doing it inline.
		q.Add("_pragma", "wal_autocheckpoint(0)")
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
	if _, err := l.wdb.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?), ('format', ?)`, hex.EncodeToString(idBytes[:]), format); err != nil {
		return fmt.Errorf("sqlitelog: write log id: %w", err)
	}
	if err := l.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'log_id'`).Scan(&l.logID); err != nil {
		return fmt.Errorf("sqlitelog: read log id: %w", err)
	}
	if err := checkFormat(ctx, l.wdb, l.cfg.Path); err != nil {
		return err
	}
	return l.loadHead(ctx)
}

// format names the database layout; a log of another layout is refused.
const format = "poststelle-sqlitelog-1"

func checkFormat(ctx context.Context, db *sql.DB, path string) error {
	var f string
	if err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'format'`).Scan(&f); err != nil {
		return fmt.Errorf("sqlitelog: read format of %s: %w", path, err)
	}
	if f != format {
		return fmt.Errorf("sqlitelog: %s has format %q, this gateway reads %q", path, f, format)
	}
	return nil
}

// errResume starts every reason to refuse resuming a log: a writer must not
// extend a chain from state it cannot trust, since everything it then
// appended would fail verification.
const errResume = "sqlitelog: cannot resume the log"

// loadHead restores the chain head and Merkle frontier after a restart. It
// trusts nothing it can cheaply check: the newest checkpoint's signature, its
// frontier against its root, the event count and the newest event's stored
// leaf hash against the event. A full check is `poststelle log verify`.
func (l *Log) loadHead(ctx context.Context) error {
	l.frontier = &integrity.Frontier{}
	var c eventstore.Checkpoint
	var t int64
	var frontier, root []byte
	err := l.wdb.QueryRowContext(ctx, `SELECT size, root, time, key_id, signature, frontier FROM checkpoints ORDER BY size DESC LIMIT 1`).
		Scan(&c.Size, &root, &t, &c.KeyID, &c.Signature, &frontier)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("sqlitelog: read newest checkpoint: %w", err)
	default:
		if len(root) != 32 {
			return fmt.Errorf("%s: newest checkpoint (size %d) has a %d-byte root; run 'poststelle log verify'", errResume, c.Size, len(root))
		}
		copy(c.Root[:], root)
		c.Time = time.Unix(0, t).UTC()
		if err := l.checkNewest(&c); err != nil {
			return err
		}
		f, err := decodeFrontier(c.Size, frontier)
		if err != nil {
			return fmt.Errorf("%s: %w; run 'poststelle log verify'", errResume, err)
		}
		if f.Root() != c.Root {
			return fmt.Errorf("%s: stored frontier at size %d does not match its checkpoint; run 'poststelle log verify'", errResume, c.Size)
		}
		l.frontier = f
	}
	var count int64
	var last sql.NullInt64
	if err := l.wdb.QueryRowContext(ctx, `SELECT count(*), max(off) FROM events`).Scan(&count, &last); err != nil {
		return fmt.Errorf("sqlitelog: count events: %w", err)
	}
	if count != c.Size || (count > 0 && last.Int64 != count-1) {
		return fmt.Errorf("%s: %d events (last offset %d) but the newest checkpoint covers %d; the database was altered, run 'poststelle log verify'",
			errResume, count, last.Int64, c.Size)
	}
	l.next = c.Size
	if c.Size == 0 {
		return nil
	}
	return l.loadPrev(ctx, c.Size-1)
}

// checkNewest verifies the newest checkpoint with the writer's own key.
func (l *Log) checkNewest(c *eventstore.Checkpoint) error {
	pub := l.cfg.Signer.Public()
	kid, err := integrity.KeyID(pub)
	if err != nil {
		return err
	}
	if err := integrity.VerifyCheckpoint(pub, l.logID, c); err != nil || c.KeyID != kid {
		return fmt.Errorf("%s: the newest checkpoint (size %d) is not signed by this gateway's key %s (%v); run 'poststelle log verify'",
			errResume, c.Size, kid, err)
	}
	return nil
}

// loadPrev recomputes the newest event's leaf hash, which the next event
// links to, and refuses a stored leaf_hash that differs.
func (l *Log) loadPrev(ctx context.Context, off int64) error {
	e, err := l.queryOne(ctx, l.wdb, `WHERE off = ?`, off)
	if err != nil || e == nil {
		return fmt.Errorf("%s: read newest event %d: %v; run 'poststelle log verify'", errResume, off, err)
	}
	var stored []byte
	if err := l.wdb.QueryRowContext(ctx, `SELECT leaf_hash FROM events WHERE off = ?`, off).Scan(&stored); err != nil {
		return fmt.Errorf("sqlitelog: read leaf hash of event %d: %w", off, err)
	}
	leaf := integrity.LeafHash(e)
	if string(stored) != string(leaf[:]) {
		return fmt.Errorf("%s: the stored leaf hash of the newest event (offset %d) is not its hash; run 'poststelle log verify'", errResume, off)
	}
	l.prev = leaf
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
		<-l.ckptDone
		err = errors.Join(l.wdb.Close(), l.cdb.Close())
	})
	l.readMu.Lock()
	if l.readStmt != nil {
		err = errors.Join(err, l.readStmt.Close())
		l.readStmt = nil
	}
	l.readMu.Unlock()
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
