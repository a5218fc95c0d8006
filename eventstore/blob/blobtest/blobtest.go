// Package blobtest is the conformance suite every blob.Backend passes, so
// that the gateway behaves the same on the local directory and on S3. A
// backend's test calls Run with a Backend that opens stores over one shared
// storage: two stores opened by the same Backend are two nodes of a cluster.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Storage is one empty storage place (a directory, a bucket or a prefix in
// one) that a test of the suite uses alone.
type Storage struct {
	// Open returns a store over the storage; every call sees the same blobs
	// (a second node, or the same node restarted).
	Open func() (blob.Backend, error)
	// Corrupt replaces the stored bytes of ref with content behind the
	// store's back, as rot or a tampering operator would.
	Corrupt func(ref blob.Ref, content []byte) error
}

// Backend makes storage for the suite.
type Backend struct {
	// Storage prepares a fresh storage place for one test; cleanup is the
	// backend's to register with t.Cleanup.
	Storage func(t *testing.T) Storage
	// LargeSize is the size of the streamed-blob test (default 96 MiB).
	LargeSize int64
	// MaxHeapGrowth is how much the heap may grow while that blob streams
	// through Put and Verify (default 32 MiB): a store buffering the whole
	// content fails.
	MaxHeapGrowth uint64
}

// Run runs the whole suite.
func Run(t *testing.T, b Backend) {
	if b.LargeSize == 0 {
		b.LargeSize = 96 << 20
	}
	if b.MaxHeapGrowth == 0 {
		b.MaxHeapGrowth = 32 << 20
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"PutOpenStat", testPutOpenStat},
		{"ContentAddressed", testContentAddressed},
		{"IdempotentPut", testIdempotentPut},
		{"ConcurrentSamePut", testConcurrentSamePut},
		{"SizeLimit", testSizeLimit},
		{"FailedPutStoresNothing", testFailedPut},
		{"ReadYourWriteOnAnotherStore", testReadOtherStore},
		{"NotFound", testNotFound},
		{"BadRefs", testBadRefs},
		{"CorruptionDetected", testCorruption},
		{"LargeBlobStreams", testLarge},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, &fixture{Storage: b.Storage(t), b: b}) })
	}
}

type fixture struct {
	Storage
	b Backend
}

func (f *fixture) open(t *testing.T) blob.Backend {
	t.Helper()
	s, err := f.Open()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// content returns n pseudo-random bytes, different for every call.
func content(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())})
	r.Read(b)
	return b
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readAll(t *testing.T, s blob.Backend, ref blob.Ref) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), ref)
	if err != nil {
		t.Fatalf("open %s: %v", ref.SHA256, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", ref.SHA256, err)
	}
	return got
}

func testPutOpenStat(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, 5, 64 << 10, 1<<20 + 3} {
		data := content(n)
		ref, err := s.Put(ctx, bytes.NewReader(data), 0)
		if err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		if ref.Size != int64(n) || ref.SHA256 != sumOf(data) {
			t.Fatalf("put %d bytes: ref %+v, want size %d sha256 %s", n, ref, n, sumOf(data))
		}
		if got := readAll(t, s, ref); !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes: got %d different bytes", n, len(got))
		}
		st, err := s.Stat(ctx, ref)
		if err != nil || st != ref {
			t.Fatalf("stat: %+v %v, want %+v", st, err, ref)
		}
		all, err := s.ReadAll(ctx, ref, int64(n))
		if err != nil || !bytes.Equal(all, data) {
			t.Fatalf("read all at the limit: %v", err)
		}
		if err := s.Verify(ctx, ref); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
	ref, err := s.PutBytes(ctx, []byte("Zugang"))
	if err != nil || ref.SHA256 != sumOf([]byte("Zugang")) {
		t.Fatalf("put bytes: %+v %v", ref, err)
	}
	if _, err := s.ReadAll(ctx, ref, 5); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("read all above the limit: %v, want ErrTooLarge", err)
	}
}

func testContentAddressed(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	a, err1 := s.PutBytes(ctx, []byte("Eingang 1"))
	c, err2 := s.PutBytes(ctx, []byte("Eingang 2"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if a.SHA256 == c.SHA256 {
		t.Fatal("different contents got the same reference")
	}
	if string(readAll(t, s, a)) != "Eingang 1" || string(readAll(t, s, c)) != "Eingang 2" {
		t.Fatal("a reference returned another blob's content")
	}
}

func testIdempotentPut(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	data := content(3000)
	first, err := s.PutBytes(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := s.Put(ctx, bytes.NewReader(data), int64(len(data)))
		if err != nil || again != first {
			t.Fatalf("put again: %+v %v, want %+v", again, err, first)
		}
	}
	if got := readAll(t, s, first); !bytes.Equal(got, data) {
		t.Fatal("content changed by a repeated put")
	}
}

func testConcurrentSamePut(t *testing.T, b *fixture) {
	stores := []blob.Backend{b.open(t), b.open(t)}
	data := content(256 << 10)
	want := blob.Ref{SHA256: sumOf(data), Size: int64(len(data))}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			ref, err := stores[i%2].Put(context.Background(), bytes.NewReader(data), 0)
			if err != nil || ref != want {
				t.Errorf("concurrent put %d: %+v %v", i, ref, err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return
	}
	for _, s := range stores {
		if got := readAll(t, s, want); !bytes.Equal(got, data) {
			t.Fatal("content wrong after concurrent puts")
		}
	}
}

func testSizeLimit(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	data := content(1000)
	_, err := s.Put(ctx, bytes.NewReader(data), 999)
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("put above the limit: %v, want ErrTooLarge", err)
	}
	if _, err := s.Stat(ctx, blob.Ref{SHA256: sumOf(data), Size: 1000}); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("refused blob is visible: %v", err)
	}
	if ref, err := s.Put(ctx, bytes.NewReader(data), 1000); err != nil || ref.Size != 1000 {
		t.Fatalf("put at the limit: %+v %v", ref, err)
	}
}

// failingReader yields its content, then an error instead of EOF.
type failingReader struct{ r io.Reader }

var errPeerGone = errors.New("blobtest: peer went away")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errPeerGone
	}
	return n, err
}

func testFailedPut(t *testing.T, b *fixture) {
	s := b.open(t)
	data := content(200 << 10)
	ref := blob.Ref{SHA256: sumOf(data), Size: int64(len(data))}
	if _, err := s.Put(context.Background(), &failingReader{bytes.NewReader(data)}, 0); !errors.Is(err, errPeerGone) {
		t.Fatalf("put from a failing reader: %v, want its error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, bytes.NewReader(data), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a cancelled context: %v, want context.Canceled", err)
	}
	// The content's hash is only known at the end, so neither attempt can
	// have stored a blob under it.
	if _, err := b.open(t).Stat(context.Background(), ref); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("failed put left a blob: %v", err)
	}
}

// testReadOtherStore is read-your-write across nodes, and durability across
// a restart: once Put returns, a store opened afresh over the same storage
// serves the bytes.
func testReadOtherStore(t *testing.T, b *fixture) {
	a := b.open(t)
	data := content(70 << 10)
	ref, err := a.PutBytes(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	other := b.open(t)
	if got := readAll(t, other, ref); !bytes.Equal(got, data) {
		t.Fatal("another store read different bytes")
	}
}

func testNotFound(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	ref := blob.Ref{SHA256: sumOf(content(10)), Size: 10}
	if _, err := s.Open(ctx, ref); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("open: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, ref); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("stat: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadAll(ctx, ref, 0); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("read all: %v, want ErrNotFound", err)
	}
}

func testBadRefs(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	for _, sum := range []string{"", "../../etc/passwd", "ZZ", string(make([]byte, 64)),
		"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789", "tmp/" + sumOf(nil)[4:]} {
		ref := blob.Ref{SHA256: sum}
		if _, err := s.Open(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("open %q: %v, want ErrBadRef", sum, err)
		}
		if _, err := s.Stat(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("stat %q: %v, want ErrBadRef", sum, err)
		}
	}
}

func testCorruption(t *testing.T, b *fixture) {
	s := b.open(t)
	ctx := context.Background()
	cases := []struct {
		name string
		with func(orig []byte) []byte
	}{
		{"one byte flipped", func(o []byte) []byte { c := bytes.Clone(o); c[len(c)/2] ^= 1; return c }},
		{"truncated", func(o []byte) []byte { return o[:len(o)-1] }},
		{"extended", func(o []byte) []byte { return append(bytes.Clone(o), 'x') }},
		{"emptied", func([]byte) []byte { return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := content(4096)
			ref, err := s.PutBytes(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Corrupt(ref, tc.with(data)); err != nil {
				t.Fatalf("corrupt: %v", err)
			}
			if err := s.Verify(ctx, ref); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("verify: %v, want ErrCorrupt", err)
			}
			if _, err := s.ReadAll(ctx, ref, 0); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("read all: %v, want ErrCorrupt", err)
			}
		})
	}
}

// patternReader yields n bytes of a cheap, non-repeating pattern without
// holding them.
type patternReader struct {
	n, off int64
	onRead func()
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rest := p.n - p.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24)
	}
	p.off += int64(len(b))
	if p.onRead != nil {
		p.onRead()
	}
	return len(b), nil
}

// heapPeak samples the live heap while a blob streams.
type heapPeak struct {
	base, peak uint64
	reads      int
}

func (h *heapPeak) sample() {
	h.reads++
	if h.reads%64 != 0 {
		return
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

func testLarge(t *testing.T, b *fixture) {
	if testing.Short() {
		t.Skip("large blob skipped in -short mode")
	}
	grown, err := streamLarge(context.Background(), b.open(t), b.open(t), b.b.LargeSize)
	if err != nil {
		t.Fatal(err)
	}
	if grown > b.b.MaxHeapGrowth {
		t.Fatalf("streaming %d MiB grew the heap by %d MiB (limit %d MiB): content is buffered",
			b.b.LargeSize>>20, grown>>20, b.b.MaxHeapGrowth>>20)
	}
	t.Logf("%d MiB streamed, heap grew by at most %.1f MiB", b.b.LargeSize>>20, float64(grown)/(1<<20))
}

// streamLarge puts size bytes through w and reads them back through r,
// checking the reference, and returns how far the live heap grew meanwhile.
func streamLarge(ctx context.Context, w, r blob.Backend, size int64) (uint64, error) {
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{n: size}); err != nil {
		return 0, err
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h := &heapPeak{base: m.HeapInuse, peak: m.HeapInuse}
	ref, err := w.Put(ctx, &patternReader{n: size, onRead: h.sample}, size)
	if err != nil {
		return 0, fmt.Errorf("put %d bytes: %w", size, err)
	}
	if ref.SHA256 != hex.EncodeToString(want.Sum(nil)) || ref.Size != size {
		return 0, fmt.Errorf("large blob ref %+v", ref)
	}
	rc, err := r.Open(ctx, ref)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, &sampled{r: rc, h: h}); err != nil {
		return 0, fmt.Errorf("read back: %w", err)
	}
	return h.peak - min(h.base, h.peak), nil
}

type sampled struct {
	r io.Reader
	h *heapPeak
}

func (s *sampled) Read(p []byte) (int, error) {
	s.h.sample()
	return s.r.Read(p)
}

func testPing(t *testing.T, b *fixture) {
	if err := b.open(t).Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
