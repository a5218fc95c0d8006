package cryptblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blob/blobtest"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/packblob"
)

// memBackend makes blob.Memory, which has only Put and Open, a
// blob.Backend for the suite, verifying on read as the real stores do. It
// counts puts, so that tests can see what reached the inner store.
type memBackend struct {
	m    *blob.Memory
	mu   sync.Mutex
	puts int
}

func (b *memBackend) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	ref, err := b.m.Put(ctx, r, maxSize)
	if err == nil {
		b.mu.Lock()
		b.puts++
		b.mu.Unlock()
	}
	return ref, err
}

func (b *memBackend) PutBytes(ctx context.Context, p []byte) (blob.Ref, error) {
	return b.Put(ctx, bytes.NewReader(p), 0)
}

func (b *memBackend) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if err := blob.ValidRef(ref); err != nil {
		return nil, err
	}
	rc, err := b.m.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	return blob.NewVerifyingReader(ctx, rc, ref), nil
}

func (b *memBackend) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	return blob.ReadAllFrom(ctx, b, ref, max)
}

func (b *memBackend) Verify(ctx context.Context, ref blob.Ref) error {
	return blob.VerifyFrom(ctx, b, ref)
}

func (b *memBackend) Stat(ctx context.Context, ref blob.Ref) (blob.Ref, error) {
	if err := blob.ValidRef(ref); err != nil {
		return blob.Ref{}, err
	}
	c, ok := b.m.Bytes(ref)
	if !ok {
		_, err := b.m.Open(ctx, ref)
		return blob.Ref{}, err
	}
	return blob.Ref{SHA256: ref.SHA256, Size: int64(len(c))}, nil
}

func (b *memBackend) Ping(context.Context) error { return nil }

func (b *memBackend) putCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

func testKEK(t testing.TB) KEK {
	t.Helper()
	key := make([]byte, keySize)
	rand.Read(key)
	k, err := NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openKeys(t testing.TB, path string) *blobkeys.SQLite {
	t.Helper()
	k, err := blobkeys.OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("open key store: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// inners are the stores the suite runs cryptblob over; each returns a
// function that opens the inner store over one storage place.
var inners = []struct {
	name string
	// storage prepares an empty place; open opens a store over it.
	storage func(t *testing.T) (open func(t *testing.T) blob.Backend)
	// large and heap are the suite's streaming test; Memory holds every
	// blob whole, so there the test only bounds what cryptblob adds.
	large, heap int64
}{
	{"memory", func(*testing.T) func(*testing.T) blob.Backend {
		b := &memBackend{m: &blob.Memory{}}
		return func(*testing.T) blob.Backend { return b }
	}, 8 << 20, 64 << 20},
	{"dir", func(t *testing.T) func(*testing.T) blob.Backend {
		dir := t.TempDir()
		return func(t *testing.T) blob.Backend {
			s, err := blob.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}, 48 << 20, 32 << 20},
	{"packblob", func(t *testing.T) func(*testing.T) blob.Backend {
		dir := t.TempDir()
		return func(t *testing.T) blob.Backend {
			s, err := packblob.Open(context.Background(), packblob.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}, 48 << 20, 32 << 20},
}

// fixture is one storage place of cryptblob: an inner store, a key store
// file and a KEK; every store opened over it is another node or a restart.
type fixture struct {
	inner func(t *testing.T) blob.Backend
	keys  string
	kek   KEK
}

func newFixture(t *testing.T, inner func(t *testing.T) (open func(t *testing.T) blob.Backend)) *fixture {
	return &fixture{inner: inner(t), keys: filepath.Join(t.TempDir(), "keys.db"), kek: testKEK(t)}
}

func (f *fixture) open(t *testing.T) *Store {
	return New(f.inner(t), openKeys(t, f.keys), f.kek, nil)
}

// TestConformance runs the blob suite over cryptblob on each inner store.
// Corrupt replaces a blob's content the way an attacker holding its data
// key would: it encrypts the altered content under the same key, stores
// that ciphertext and points the key entry at it, so that every
// authentication tag verifies and only the plaintext hash and size can
// catch it. Ciphertexts altered without the key are TestTampering's.
func TestConformance(t *testing.T) {
	for _, in := range inners {
		t.Run(in.name, func(t *testing.T) {
			blobtest.Run(t, blobtest.Backend{LargeSize: in.large, MaxHeapGrowth: uint64(in.heap),
				Storage: func(t *testing.T) blobtest.Storage {
					f := newFixture(t, in.storage)
					return blobtest.Storage{
						Open:    func() (blob.Backend, error) { return f.open(t), nil },
						Corrupt: func(ref blob.Ref, content []byte) error { return f.open(t).reencrypt(ref, content) },
					}
				}})
		})
	}
}

// reencrypt replaces the content of ref with content encrypted under ref's
// own data key.
func (s *Store) reencrypt(ref blob.Ref, content []byte) error {
	ctx := context.Background()
	e, err := s.keys.Get(ctx, ref)
	if err != nil {
		return err
	}
	dataKey, err := s.dataKey(e, ref)
	if err != nil {
		return err
	}
	var ct bytes.Buffer
	if _, err := encrypt(ctx, &ct, bytes.NewReader(content), dataKey, nil, s.chunk, 0); err != nil {
		return err
	}
	return s.repoint(ref, e, ct.Bytes())
}

// repoint stores ciphertext as an object of the inner store and makes it
// the ciphertext of ref's entry, keeping the wrapped key.
func (s *Store) repoint(ref blob.Ref, e blobkeys.Entry, ciphertext []byte) error {
	ctx := context.Background()
	cref, err := s.inner.PutBytes(ctx, ciphertext)
	if err != nil {
		return err
	}
	if err := s.keys.Erase(ctx, ref); err != nil {
		return err
	}
	e.Cipher = cref
	_, err = s.keys.Add(ctx, ref, e)
	return err
}

func refOf(b []byte) blob.Ref {
	s := sha256.Sum256(b)
	return blob.Ref{SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}
}
