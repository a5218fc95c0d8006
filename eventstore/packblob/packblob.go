// Package packblob is the embedded blob store: small blobs are appended to
// pack files, many to a file, and the puts that arrive while one is being
// made durable share the next fsync (a group commit, as the log does). A
// blob larger than Config.MaxPacked, and every blob written before packs
// existed, is a file of the directory store (blob.Store) under the same
// directory, so an old data directory is read as it is.
//
// One file per blob cost an SMTP intake a temporary file, a rename and two
// fsyncs per blob, four blobs per message (raw, body part, Prüfprotokoll as
// JSON and HTML), and ext4 serialises the creates and renames on the
// directory's lock; see docs/architecture.md "Blobs" for the measurements.
//
// A pack is a sequence of records, each a 48-byte header (magic, SHA-256,
// size, CRC-32C of the header) followed by the content; a seal record ends a
// pack that its writer closed. The index (hash → pack, offset, size) is
// rebuilt in memory from the headers when the store opens. Each store writes
// only to its own pack, holding an exclusive flock on it; a pack nobody
// holds and that has no seal was left by a crash, so the opening store
// hashes its records, cuts it at the first record that does not hash to its
// header (the torn tail of a put that was never acknowledged) and seals it.
// Reads verify the hash as the bytes stream past, so no wrong byte is ever
// returned.
//
// Blobs are never deleted (neither store has deletion or garbage
// collection).
package packblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Defaults of Config.
const (
	DefaultMaxPacked = 256 << 10
	DefaultPackSize  = 64 << 20
)

// Config configures a store.
type Config struct {
	// Dir is the data directory of the blobs (data_dir/blobs).
	Dir string
	// MaxPacked is the largest blob that goes into a pack (default
	// DefaultMaxPacked); larger ones stream into files. Negative: every
	// new blob is a file, as before packs existed; packs stay readable.
	// Each concurrent put of a blob up to this size holds it in memory.
	MaxPacked int64
	// PackSize is the size after which a writer seals its pack and starts
	// another (default DefaultPackSize). It bounds what a store hashes when
	// it recovers a pack after a crash.
	PackSize int64
	// Logger receives recoveries (default slog.Default()).
	Logger *slog.Logger
}

// Store is a blob.Backend over a directory of packs and files.
type Store struct {
	cfg     Config
	files   *blob.Store
	packDir string
	logger  *slog.Logger

	mu    sync.RWMutex
	index map[[32]byte]location
	names []string         // pack id → file name
	seen  map[string]*seen // file name → how far it was read

	refreshMu sync.Mutex
	commit    committer
}

// location is where a packed blob's record starts. durable is false for
// records of another store's pack that is still being written: they may be
// read, but a put does not count on them.
type location struct {
	pack    uint32
	durable bool
	off     int64
	size    int64
}

type seen struct {
	id     uint32
	end    int64 // records before this offset are indexed
	closed bool  // sealed or recovered: nothing more will be appended
	own    bool
}

// Open opens (creating) the store in cfg.Dir and indexes its packs,
// recovering those a crashed writer left behind.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.MaxPacked == 0 {
		cfg.MaxPacked = DefaultMaxPacked
	}
	if cfg.PackSize <= 0 {
		cfg.PackSize = DefaultPackSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	files, err := blob.Open(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, files: files, packDir: filepath.Join(cfg.Dir, "packs"), logger: cfg.Logger,
		index: map[[32]byte]location{}, seen: map[string]*seen{}}
	s.commit.s = s
	if err := s.preparePackDir(); err != nil {
		return nil, fmt.Errorf("packblob: prepare %s: %w", s.packDir, err)
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) preparePackDir() error {
	if _, err := os.Stat(s.packDir); err == nil {
		return nil
	}
	if err := os.Mkdir(s.packDir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(s.cfg.Dir)
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// Close seals the store's pack, so that the next start need not hash it.
func (s *Store) Close() error {
	return s.commit.close()
}

// Put stores r's content. A blob up to MaxPacked bytes is read into memory,
// appended to the pack and made durable with the puts beside it; a larger
// one streams into a file of its own.
func (s *Store) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	if s.cfg.MaxPacked < 0 {
		return s.files.Put(ctx, r, maxSize)
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, &ctxReader{ctx: ctx, r: r}, s.cfg.MaxPacked+1)
	if err != nil && err != io.EOF {
		return blob.Ref{}, fmt.Errorf("packblob: read content: %w", err)
	}
	if n > s.cfg.MaxPacked {
		return s.files.Put(ctx, io.MultiReader(&buf, r), maxSize)
	}
	if maxSize > 0 && n > maxSize {
		return blob.Ref{}, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
	}
	return s.putSmall(ctx, buf.Bytes())
}

// PutBytes stores a byte slice; the caller must not change it until
// PutBytes returns.
func (s *Store) PutBytes(ctx context.Context, b []byte) (blob.Ref, error) {
	if s.cfg.MaxPacked < 0 || int64(len(b)) > s.cfg.MaxPacked {
		return s.files.PutBytes(ctx, b)
	}
	if err := ctx.Err(); err != nil {
		return blob.Ref{}, err
	}
	return s.putSmall(ctx, b)
}

func (s *Store) putSmall(ctx context.Context, b []byte) (blob.Ref, error) {
	sum := sha256.Sum256(b)
	ref := blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	if loc, ok := s.lookup(sum); ok && loc.durable && loc.size == ref.Size {
		return ref, nil
	}
	if err := s.commit.put(ctx, sum, b); err != nil {
		return blob.Ref{}, fmt.Errorf("packblob: store %s: %w", ref.SHA256, err)
	}
	return ref, nil
}

func (s *Store) lookup(sum [32]byte) (location, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	loc, ok := s.index[sum]
	return loc, ok
}

// find looks a blob up in the index, then among the files, then in packs
// other stores have written since the last look.
func (s *Store) find(ctx context.Context, ref blob.Ref) (location, bool, error) {
	if err := blob.ValidRef(ref); err != nil {
		return location{}, false, err
	}
	var sum [32]byte
	hex.Decode(sum[:], []byte(ref.SHA256))
	if loc, ok := s.lookup(sum); ok {
		return loc, true, nil
	}
	if s.files.Has(ref) {
		return location{}, false, nil
	}
	if err := s.refresh(ctx); err != nil {
		return location{}, false, err
	}
	if loc, ok := s.lookup(sum); ok {
		return loc, true, nil
	}
	return location{}, false, nil
}

// Open returns a reader of the blob that fails with blob.ErrCorrupt at the
// end unless the bytes hash to ref.
func (s *Store) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	loc, packed, err := s.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !packed {
		return s.files.Open(ctx, ref)
	}
	f, err := os.Open(filepath.Join(s.packDir, s.packName(loc.pack)))
	if err != nil {
		return nil, fmt.Errorf("packblob: open the pack of %s: %w", ref.SHA256, err)
	}
	h, err := readHeader(f, loc.off)
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s (its record is gone from the pack)", blob.ErrNotFound, ref.SHA256)
		}
		return nil, fmt.Errorf("%w: %s: %v", blob.ErrCorrupt, ref.SHA256, err)
	}
	if h.kind != kindBlob || hex.EncodeToString(h.sum[:]) != ref.SHA256 {
		f.Close()
		return nil, fmt.Errorf("%w: %s: the pack holds another record at offset %d", blob.ErrCorrupt, ref.SHA256, loc.off)
	}
	body := io.NewSectionReader(f, loc.off+headerSize, h.size)
	return blob.NewVerifyingReader(ctx, &sectionCloser{SectionReader: body, f: f}, ref), nil
}

func (s *Store) packName(id uint32) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.names[id]
}

// ReadAll reads a whole blob, verified, refusing blobs above max.
func (s *Store) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	return blob.ReadAllFrom(ctx, s, ref, max)
}

// Verify re-reads a blob and checks its hash and size.
func (s *Store) Verify(ctx context.Context, ref blob.Ref) error {
	return blob.VerifyFrom(ctx, s, ref)
}

// Stat reports the stored size of a blob, or blob.ErrNotFound.
func (s *Store) Stat(ctx context.Context, ref blob.Ref) (blob.Ref, error) {
	loc, packed, err := s.find(ctx, ref)
	if err != nil {
		return blob.Ref{}, err
	}
	if !packed {
		return s.files.Stat(ctx, ref)
	}
	return blob.Ref{SHA256: ref.SHA256, Size: loc.size}, nil
}

// Ping checks that the directories are still there.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := os.Stat(s.packDir); err != nil {
		return fmt.Errorf("packblob: check %s: %w", s.packDir, err)
	}
	return s.files.Ping(ctx)
}

// refresh indexes the packs that are new since the last look, and the
// records appended since to packs other stores are still writing.
func (s *Store) refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	entries, err := os.ReadDir(s.packDir)
	if err != nil {
		return fmt.Errorf("packblob: list %s: %w", s.packDir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if !strings.HasSuffix(name, packSuffix) {
			continue
		}
		s.mu.RLock()
		st := s.seen[name]
		s.mu.RUnlock()
		if st != nil && (st.closed || st.own) {
			continue
		}
		if err := s.scan(name, st); err != nil {
			return err
		}
	}
	return nil
}

// scan indexes one pack. A pack whose lock it gets has no live writer: it
// is read whole, and recovered when unsealed. One locked by its writer is
// read up to its last complete record.
func (s *Store) scan(name string, st *seen) error {
	path := filepath.Join(s.packDir, name)
	f, writable, err := openPack(path)
	if err != nil {
		return fmt.Errorf("packblob: open pack %s: %w", name, err)
	}
	defer f.Close()
	locked := false
	if writable {
		if locked, err = tryLock(f); err != nil {
			return fmt.Errorf("packblob: lock pack %s: %w", name, err)
		}
		if locked {
			defer unlock(f)
		}
	}
	live := writable && !locked
	from := int64(0)
	if st != nil && live {
		from = st.end
	}
	var w walked
	if live {
		w, err = walk(f, from, false)
	} else {
		w, err = s.settle(f, name, writable)
	}
	if err != nil {
		return fmt.Errorf("packblob: read pack %s: %w", name, err)
	}
	s.add(name, w.records, !live, w.end, !live)
	return nil
}

// settle reads a pack no writer holds. A sealed pack's headers are trusted
// (reads verify the content anyway); an unsealed one is hashed record by
// record, cut after the last good one and sealed, when the directory is
// writable.
func (s *Store) settle(f *os.File, name string, writable bool) (walked, error) {
	w, err := walk(f, 0, false)
	if err != nil || w.sealed {
		return w, err
	}
	if w, err = walk(f, 0, true); err != nil {
		return w, err
	}
	size, err := fileSize(f)
	if err != nil {
		return w, err
	}
	if !writable {
		s.logger.Warn("packblob: pack not sealed and the directory is read-only; reading its good records",
			"pack", name, "records", len(w.records), "good_bytes", w.end, "size", size)
		return w, nil
	}
	if err := f.Truncate(w.end); err != nil {
		return w, fmt.Errorf("cut after %d bytes: %w", w.end, err)
	}
	if _, err := f.WriteAt(sealRecord(int64(len(w.records))), w.end); err != nil {
		return w, fmt.Errorf("seal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return w, fmt.Errorf("sync after recovery: %w", err)
	}
	s.logger.Warn("packblob: recovered a pack its writer did not close", "pack", name,
		"records", len(w.records), "cut_bytes", size-w.end)
	return w, nil
}

func (s *Store) add(name string, recs []record, durable bool, end int64, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seen[name]
	if st == nil {
		st = &seen{id: uint32(len(s.names))}
		s.names = append(s.names, name)
		s.seen[name] = st
	}
	for _, r := range recs {
		if old, ok := s.index[r.sum]; ok && old.durable {
			continue
		}
		s.index[r.sum] = location{pack: st.id, durable: durable, off: r.off, size: r.size}
	}
	st.end, st.closed = end, closed
}

// addOwn registers the writer's new pack so that refresh leaves it alone.
func (s *Store) addOwn(name string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := uint32(len(s.names))
	s.names = append(s.names, name)
	s.seen[name] = &seen{id: id, own: true}
	return id
}

func (s *Store) indexOwn(id uint32, recs []record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.index[r.sum] = location{pack: id, durable: true, off: r.off, size: r.size}
	}
}

func (s *Store) closeOwn(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.seen[name]; st != nil {
		st.own, st.closed = false, true
	}
}

const packSuffix = ".pack"

// newPackName is unique without coordination between stores.
func newPackName() string {
	var r [6]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%s%s", time.Now().UTC().Format("20060102T150405"), hex.EncodeToString(r[:]), packSuffix)
}

// openPack opens a pack for recovery, or read-only where the directory is.
func openPack(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		return f, true, nil
	}
	if errors.Is(err, os.ErrPermission) || isReadOnlyFS(err) {
		f, err = os.Open(path)
		return f, false, err
	}
	return nil, false, err
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionCloser) Close() error { return s.f.Close() }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
