package blobkeys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/poststelle/poststelle/eventstore/blob"
)

// SQLite is the embedded key store: one SQLite database in WAL mode with
// synchronous=FULL and secure_delete=ON. One committer goroutine takes every
// pending Add and Erase and writes them in one transaction (group commit),
// so that an intake of many small messages shares an fsync between their
// keys instead of paying one per key.
type SQLite struct {
	path   string
	logger *slog.Logger
	wdb    *sql.DB // the committer's single connection
	rdb    *sql.DB // readers
	reqs   chan *request
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
	// Statements prepared once: the driver compiles SQL text anew on every
	// unprepared call, which was most of an Add's CPU.
	sel, ins, del *sql.Stmt // on wdb, for the committer
	read          *sql.Stmt // on rdb, for Get
}

var _ Store = (*SQLite)(nil)

// maxBatch caps how many requests one commit takes.
const maxBatch = 1024

// request is one Add or Erase waiting for the committer.
type request struct {
	erase bool
	plain blob.Ref
	entry Entry
	live  Entry // what Add leaves live
	err   error
	done  chan struct{}
}

// OpenSQLite opens or creates the key store at path.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (*SQLite, error) {
	if logger == nil {
		logger = slog.Default()
	}
	wdb, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("blobkeys: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if err := initSchema(ctx, wdb, path); err != nil {
		wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("blobkeys: open %s for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)
	s := &SQLite{path: path, logger: logger, wdb: wdb, rdb: rdb,
		reqs: make(chan *request, maxBatch), stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.committer()
	return s, nil
}

const (
	selectSQL = `SELECT cipher_sha256, cipher_size, kek, wrapped, erased_at FROM keys WHERE sha256 = ?`
	// A new row, or one over a tombstone; a live row is left as it is
	// (no row changed), and the caller reads it.
	insertSQL = `INSERT INTO keys (sha256, size, cipher_sha256, cipher_size, kek, wrapped, added_at, erased_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
		ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, cipher_sha256 = excluded.cipher_sha256,
			cipher_size = excluded.cipher_size, kek = excluded.kek, wrapped = excluded.wrapped,
			added_at = excluded.added_at, erased_at = NULL
		WHERE keys.erased_at IS NOT NULL`
	// An existing tombstone keeps its time.
	eraseSQL = `INSERT INTO keys (sha256, size, erased_at) VALUES (?, ?, ?)
		ON CONFLICT (sha256) DO UPDATE SET cipher_sha256 = NULL, cipher_size = NULL, kek = NULL, wrapped = NULL,
			added_at = NULL, erased_at = coalesce(keys.erased_at, excluded.erased_at)`
)

func (s *SQLite) prepare(ctx context.Context) error {
	var err error
	for _, p := range []struct {
		db   *sql.DB
		sql  string
		stmt **sql.Stmt
	}{{s.wdb, selectSQL, &s.sel}, {s.wdb, insertSQL, &s.ins}, {s.wdb, eraseSQL, &s.del}, {s.rdb, selectSQL, &s.read}} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			return fmt.Errorf("blobkeys: prepare statements on %s: %w", s.path, err)
		}
	}
	return nil
}

// closeDBs closes the statements and both databases.
func (s *SQLite) closeDBs() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.sel, s.ins, s.del, s.read} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, s.wdb.Close(), s.rdb.Close())...)
}

func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "secure_delete(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// sqliteFormat names the database layout; a database of another layout is
// refused.
const sqliteFormat = "poststelle-blobkeys-1"

// A row is live when wrapped is set and a tombstone when erased_at is; the
// columns of a tombstone other than the reference are NULL, and
// secure_delete zeroes what they held.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS keys (
	sha256 TEXT PRIMARY KEY,
	size INTEGER NOT NULL,
	cipher_sha256 TEXT,
	cipher_size INTEGER,
	kek TEXT,
	wrapped BLOB,
	added_at INTEGER,
	erased_at INTEGER,
	CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
) STRICT;
`

func initSchema(ctx context.Context, db *sql.DB, path string) error {
	if _, err := db.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("blobkeys: create schema in %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)`, sqliteFormat); err != nil {
		return fmt.Errorf("blobkeys: write format of %s: %w", path, err)
	}
	var f string
	if err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'format'`).Scan(&f); err != nil {
		return fmt.Errorf("blobkeys: read format of %s: %w", path, err)
	}
	if f != sqliteFormat {
		return fmt.Errorf("blobkeys: %s has format %q, this gateway reads %q", path, f, sqliteFormat)
	}
	return nil
}

// Add implements Store.
func (s *SQLite) Add(ctx context.Context, plain blob.Ref, e Entry) (Entry, error) {
	if err := blob.ValidRef(plain); err != nil {
		return Entry{}, err
	}
	if err := validEntry(e); err != nil {
		return Entry{}, err
	}
	r := &request{plain: plain, entry: cloneEntry(e), done: make(chan struct{})}
	if err := s.submit(ctx, r); err != nil {
		return Entry{}, err
	}
	return r.live, nil
}

// Erase implements Store.
func (s *SQLite) Erase(ctx context.Context, plain blob.Ref) error {
	if err := blob.ValidRef(plain); err != nil {
		return err
	}
	return s.submit(ctx, &request{erase: true, plain: plain, done: make(chan struct{})})
}

// submit queues r for the committer and waits for its outcome. Once queued
// the request is written even if ctx ends, so the wait ignores ctx:
// returning early would hide whether it became durable.
func (s *SQLite) submit(ctx context.Context, r *request) error {
	select {
	case s.reqs <- r:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return r.err
	case <-s.done:
		select {
		case <-r.done:
			return r.err
		default:
			return ErrClosed
		}
	}
}

// committer is the only goroutine that writes.
func (s *SQLite) committer() {
	defer close(s.done)
	var last batchStats
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.stop:
			s.drainQueued()
			return
		}
		batch := s.gather(first, last)
		start := time.Now()
		s.commit(batch)
		last = batchStats{requests: len(batch), took: time.Since(start)}
	}
}

// batchStats describes the previous commit, which sizes the next batch.
type batchStats struct {
	requests int
	took     time.Duration
}

// gather takes first and whatever else is queued, up to maxBatch: the
// requests that arrived while the last commit was being made durable.
//
// Puts reach the key store just after their ciphertexts' group commit in
// the blob store released them together, a few microseconds apart; a
// committer that commits at once takes the first alone and makes the rest
// wait for the next fsync. So, as the event log's writer does, when fewer
// requests are queued than the last commit carried, it waits for that many,
// but at most half as long as the last commit took.
func (s *SQLite) gather(first *request, last batchStats) []*request {
	batch := []*request{first}
fill:
	for len(batch) < maxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			break fill
		}
	}
	target := min(last.requests, maxBatch)
	if len(batch) >= target || last.took <= 0 {
		return batch
	}
	timer := time.NewTimer(last.took / 2)
	defer timer.Stop()
	for len(batch) < target {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

// drainQueued commits the requests queued when Close came; one that
// races with the end of the committer finds s.done closed and reports
// ErrClosed.
func (s *SQLite) drainQueued() {
	for {
		select {
		case r := <-s.reqs:
			s.commit(s.gather(r, batchStats{}))
		default:
			return
		}
	}
}

func (s *SQLite) commit(batch []*request) {
	ctx := context.Background()
	erased, err := s.commitTx(ctx, batch)
	if err == nil && erased {
		err = s.truncateWAL(ctx)
	}
	if err != nil {
		s.logger.Error("blob key store commit failed", "path", s.path, "requests", len(batch), "err", err)
		for _, r := range batch {
			r.live, r.err = Entry{}, fmt.Errorf("blobkeys: commit: %w", err)
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}

// commitTx writes the batch in one transaction and reports whether it
// erased anything.
func (s *SQLite) commitTx(ctx context.Context, batch []*request) (bool, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UnixNano()
	st := txStmts{sel: tx.StmtContext(ctx, s.sel), ins: tx.StmtContext(ctx, s.ins), del: tx.StmtContext(ctx, s.del)}
	defer st.close()
	erased := false
	for _, r := range batch {
		if r.erase {
			erased = true
			r.err = st.eraseRow(ctx, r.plain, now)
		} else {
			r.live, r.err = st.addRow(ctx, r.plain, r.entry, now)
		}
		if r.err != nil {
			return false, r.err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return erased, nil
}

// txStmts are the committer's statements within one transaction.
type txStmts struct{ sel, ins, del *sql.Stmt }

func (st txStmts) close() {
	st.sel.Close()
	st.ins.Close()
	st.del.Close()
}

// addRow stores e unless a live entry is there, which it then returns;
// requests earlier in the same transaction are visible to it, so
// duplicates within a batch agree. The insert comes first because most
// adds are of new content: the lookup is only for the duplicates.
func (st txStmts) addRow(ctx context.Context, plain blob.Ref, e Entry, now int64) (Entry, error) {
	res, err := st.ins.ExecContext(ctx, plain.SHA256, plain.Size, e.Cipher.SHA256, e.Cipher.Size, e.KEK, e.WrappedKey, now)
	if err != nil {
		return Entry{}, fmt.Errorf("insert key of %s: %w", plain.SHA256, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Entry{}, fmt.Errorf("insert key of %s: %w", plain.SHA256, err)
	} else if n == 1 {
		return e, nil
	}
	old, err := getRow(ctx, st.sel, plain.SHA256)
	if err != nil {
		return Entry{}, fmt.Errorf("read the live key of %s: %w", plain.SHA256, err)
	}
	return old, nil
}

// eraseRow turns the row of plain into a tombstone, or inserts one.
func (st txStmts) eraseRow(ctx context.Context, plain blob.Ref, now int64) error {
	if _, err := st.del.ExecContext(ctx, plain.SHA256, plain.Size, now); err != nil {
		return fmt.Errorf("erase key of %s: %w", plain.SHA256, err)
	}
	return nil
}

// walRetries bounds the attempts at a complete checkpoint after an erasure;
// each waits up to the busy timeout for readers to finish.
const walRetries = 5

// truncateWAL copies the WAL into the database and truncates it, so that
// the page images that held an erased key are gone from the WAL file; the
// pages in the database itself were rewritten with the key zeroed
// (secure_delete). A reader holding an old snapshot makes the checkpoint
// report busy; it is retried, and an erasure whose checkpoint never
// completes fails, so that the caller retries the (idempotent) Erase.
func (s *SQLite) truncateWAL(ctx context.Context) error {
	for attempt := range walRetries {
		var busy, frames, copied int
		if err := s.wdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
			return fmt.Errorf("checkpoint the WAL after an erasure: %w", err)
		}
		if busy == 0 {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return errors.New("erased, but the WAL checkpoint stayed busy: the old key may remain in the WAL until the next erasure's checkpoint")
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, plain blob.Ref) (Entry, error) {
	if err := blob.ValidRef(plain); err != nil {
		return Entry{}, err
	}
	return getRow(ctx, s.read, plain.SHA256)
}

func getRow(ctx context.Context, sel *sql.Stmt, sum string) (Entry, error) {
	var cipherSum, kek sql.NullString
	var cipherSize, erasedAt sql.NullInt64
	var wrapped []byte
	err := sel.QueryRowContext(ctx, sum).Scan(&cipherSum, &cipherSize, &kek, &wrapped, &erasedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Entry{}, fmt.Errorf("%w: no key for %s", blob.ErrNotFound, sum)
	case err != nil:
		return Entry{}, fmt.Errorf("blobkeys: read key of %s: %w", sum, err)
	case erasedAt.Valid:
		return Entry{}, &ErasedError{SHA256: sum, At: time.Unix(0, erasedAt.Int64).UTC()}
	}
	e := Entry{Cipher: blob.Ref{SHA256: cipherSum.String, Size: cipherSize.Int64}, WrappedKey: wrapped, KEK: kek.String}
	if err := validEntry(e); err != nil {
		return Entry{}, fmt.Errorf("blobkeys: stored key of %s: %w", sum, err)
	}
	return e, nil
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM meta LIMIT 1`).Scan(&one); err != nil {
		return fmt.Errorf("blobkeys: check %s: %w", s.path, err)
	}
	return nil
}

// Close stops the committer after the queued requests and closes the
// database.
func (s *SQLite) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		<-s.done
		err = s.closeDBs()
	})
	return err
}

func cloneEntry(e Entry) Entry {
	e.WrappedKey = append([]byte(nil), e.WrappedKey...)
	return e
}
