// Package blob stores raw message bytes and parts by their SHA-256. Backend
// is what every store offers; Store, a directory, is the embedded default and
// eventstore/s3blob keeps the same blobs in S3-compatible object storage for
// a cluster. In the directory, writes stream through a temporary file that is fsynced and
// renamed into place, so a blob is either complete or absent; reads verify
// the hash as the bytes stream past, so a blob that rotted on disk is
// reported, never silently delivered. Nothing is held in memory whole: a
// 1 GiB message costs a 32 KiB buffer.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// Ref names a stored blob.
type Ref struct {
	// SHA256 is the lowercase hex SHA-256 of the content.
	SHA256 string `json:"sha256"`
	// Size is the content length in bytes.
	Size int64 `json:"size"`
}

// Errors reported by the store.
var (
	ErrNotFound = errors.New("blob: not found")
	ErrTooLarge = errors.New("blob: content exceeds the size limit")
	ErrCorrupt  = errors.New("blob: content does not match its hash")
	ErrBadRef   = errors.New("blob: malformed reference")
	// ErrErased is a blob whose key was destroyed at the end of its
	// retention (crypto-shredding, eventstore/cryptblob): the reference is
	// known, the bytes are gone for good. It is not ErrNotFound: a store
	// that lost a blob is broken, one that erased it did its job.
	ErrErased = errors.New("blob: content erased")
	// ErrNotErasable is an Erase of a blob that cannot be shredded, such as
	// one stored in plaintext before encryption at rest was switched on.
	ErrNotErasable = errors.New("blob: content cannot be erased")
)

// Eraser is a store that can destroy a blob's content for good. Erase is
// idempotent: erasing an erased blob succeeds. Afterwards every read of the
// reference ends in ErrErased, on every node that shares the store.
type Eraser interface {
	Erase(ctx context.Context, ref Ref) error
}

// Backend is a content-addressed blob store. Every implementation passes
// the suite in eventstore/blob/blobtest: Put streams (bounded memory for any
// size), is idempotent and returns only when the bytes are durable; reads
// verify the hash, so a rotten or altered object ends in ErrCorrupt; a blob
// that is absent is ErrNotFound.
type Backend interface {
	// Put streams r into the store and returns its reference. Input longer
	// than maxSize (when maxSize > 0) is refused with ErrTooLarge, having
	// stored nothing.
	Put(ctx context.Context, r io.Reader, maxSize int64) (Ref, error)
	// PutBytes stores a byte slice.
	PutBytes(ctx context.Context, b []byte) (Ref, error)
	// Open returns a reader that fails with ErrCorrupt at the end unless the
	// bytes hash to ref; callers read to EOF before trusting them.
	Open(ctx context.Context, ref Ref) (io.ReadCloser, error)
	// ReadAll reads a whole blob, verified, refusing blobs above max.
	ReadAll(ctx context.Context, ref Ref, max int64) ([]byte, error)
	// Verify re-reads a blob and checks its hash and size.
	Verify(ctx context.Context, ref Ref) error
	// Stat reports the stored size of a blob without reading it, or
	// ErrNotFound.
	Stat(ctx context.Context, ref Ref) (Ref, error)
	// Ping checks that the store is reachable and writable in principle;
	// readiness probes call it.
	Ping(ctx context.Context) error
}

// Opener is the read side of a Backend; ReadAllFrom and VerifyFrom build on it.
type Opener interface {
	Open(ctx context.Context, ref Ref) (io.ReadCloser, error)
}

// ReadAllFrom reads a whole blob from o, verified, refusing blobs whose
// reference says they are above max (and, should the store hold more than
// the reference says, stopping at max+1 bytes).
func ReadAllFrom(ctx context.Context, o Opener, ref Ref, max int64) ([]byte, error) {
	if max > 0 && ref.Size > max {
		return nil, fmt.Errorf("%w: %s has %d bytes, limit %d", ErrTooLarge, ref.SHA256, ref.Size, max)
	}
	rc, err := o.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// VerifyFrom re-reads a blob from o and checks its hash and size.
func VerifyFrom(ctx context.Context, o Opener, ref Ref) error {
	rc, err := o.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// ValidRef reports ErrBadRef unless ref names a lowercase hex SHA-256 and a
// non-negative size, so that no backend builds a path or key from anything
// else.
func ValidRef(ref Ref) error {
	if !validSum(ref.SHA256) || ref.Size < 0 {
		return fmt.Errorf("%w: %q", ErrBadRef, ref.SHA256)
	}
	return nil
}

// NewVerifyingReader wraps r, the stored content of ref, so that reading it
// to EOF fails with ErrCorrupt unless the bytes hash to ref.SHA256 and number
// ref.Size; it stops with ErrCorrupt as soon as more than ref.Size bytes
// arrive, so an oversized object cannot exhaust the reader's caller.
func NewVerifyingReader(ctx context.Context, r io.ReadCloser, ref Ref) io.ReadCloser {
	return &verifyingReader{ctx: ctx, f: r, h: sha256.New(), want: ref}
}

// Store is a content-addressed directory.
type Store struct {
	dir string
}

// Open returns the store in dir, creating it when missing. It creates the
// 256 fan-out directories up front and makes their entries durable once, so
// that storing a blob only ever adds a file to a directory that is already
// on disk: fsyncing that one directory then makes the blob durable.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	if err := s.layout(); err != nil {
		return nil, fmt.Errorf("blob: prepare %s: %w", dir, err)
	}
	return s, nil
}

// layoutMarker records that the fan-out directories exist and are durable.
const layoutMarker = "layout-sha256-1"

func (s *Store) layout() error {
	if _, err := os.Stat(filepath.Join(s.dir, layoutMarker)); err == nil {
		return nil
	}
	root := filepath.Join(s.dir, "sha256")
	for _, d := range []string{filepath.Join(s.dir, "tmp"), root} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	for i := range 256 {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprintf("%02x", i)), 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if err := errors.Join(syncDir(root), syncDir(s.dir), syncDir(filepath.Dir(s.dir))); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(s.dir, layoutMarker))
	if err != nil {
		return err
	}
	return errors.Join(f.Close(), syncDir(s.dir))
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(sum string) string {
	return filepath.Join(s.dir, "sha256", sum[:2], sum)
}

func validSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	_, err := hex.DecodeString(sum)
	return err == nil && sum == lowerHex(sum)
}

func lowerHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Put streams r into the store and returns its reference. Content larger than
// maxSize (when maxSize > 0) is refused with ErrTooLarge and not stored.
// Storing the same content twice is harmless and returns the same Ref.
func (s *Store) Put(ctx context.Context, r io.Reader, maxSize int64) (Ref, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*")
	if err != nil {
		return Ref{}, fmt.Errorf("blob: create temporary file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: src})
	if err != nil {
		return Ref{}, fmt.Errorf("blob: write: %w", err)
	}
	if maxSize > 0 && n > maxSize {
		return Ref{}, fmt.Errorf("%w (%d bytes)", ErrTooLarge, maxSize)
	}
	ref := Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	if err := tmp.Sync(); err != nil {
		return Ref{}, fmt.Errorf("blob: sync %s: %w", ref.SHA256, err)
	}
	if err := tmp.Close(); err != nil {
		return Ref{}, fmt.Errorf("blob: close %s: %w", ref.SHA256, err)
	}
	final := s.path(ref.SHA256)
	if _, err := os.Stat(final); err == nil {
		return ref, nil
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Ref{}, fmt.Errorf("blob: move %s into place: %w", ref.SHA256, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return Ref{}, fmt.Errorf("blob: sync directory of %s: %w", ref.SHA256, err)
	}
	return ref, nil
}

// PutBytes stores a byte slice.
func (s *Store) PutBytes(ctx context.Context, b []byte) (Ref, error) {
	return s.Put(ctx, bytesReader(b), 0)
}

// Open returns a reader of the blob's content. The reader fails with
// ErrCorrupt at the end if the bytes read do not hash to the reference, and
// if the size differs; callers must read to EOF before trusting the bytes.
func (s *Store) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ValidRef(ref); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(ref.SHA256))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", ref.SHA256, err)
	}
	return NewVerifyingReader(ctx, f, ref), nil
}

// ReadAll reads a whole blob into memory, verified, refusing blobs above max.
func (s *Store) ReadAll(ctx context.Context, ref Ref, max int64) ([]byte, error) {
	return ReadAllFrom(ctx, s, ref, max)
}

// Verify re-reads a blob and checks its hash and size.
func (s *Store) Verify(ctx context.Context, ref Ref) error {
	return VerifyFrom(ctx, s, ref)
}

// Stat reports the size of the stored file of ref, or ErrNotFound.
func (s *Store) Stat(_ context.Context, ref Ref) (Ref, error) {
	if err := ValidRef(ref); err != nil {
		return Ref{}, err
	}
	fi, err := os.Stat(s.path(ref.SHA256))
	if errors.Is(err, os.ErrNotExist) {
		return Ref{}, fmt.Errorf("%w: %s", ErrNotFound, ref.SHA256)
	}
	if err != nil {
		return Ref{}, fmt.Errorf("blob: stat %s: %w", ref.SHA256, err)
	}
	return Ref{SHA256: ref.SHA256, Size: fi.Size()}, nil
}

// Ping checks that the store's directory is still there.
func (s *Store) Ping(context.Context) error {
	if _, err := os.Stat(filepath.Join(s.dir, "sha256")); err != nil {
		return fmt.Errorf("blob: check %s: %w", s.dir, err)
	}
	return nil
}

// Has reports whether the blob is present (without verifying it).
func (s *Store) Has(ref Ref) bool {
	if !validSum(ref.SHA256) {
		return false
	}
	_, err := os.Stat(s.path(ref.SHA256))
	return err == nil
}

type verifyingReader struct {
	ctx  context.Context
	f    io.ReadCloser
	h    hash.Hash
	n    int64
	want Ref
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if r.n > r.want.Size {
		return n, fmt.Errorf("%w: %s holds more than %d bytes", ErrCorrupt, r.want.SHA256, r.want.Size)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want.SHA256 || r.n != r.want.Size {
			return n, fmt.Errorf("%w: %s read as %s (%d bytes, want %d)", ErrCorrupt, r.want.SHA256, got, r.n, r.want.Size)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }

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

type sliceReader struct {
	b []byte
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
