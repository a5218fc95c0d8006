package packblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}).Read(b)
	return b
}

func refOf(b []byte) blob.Ref {
	s := sha256.Sum256(b)
	return blob.Ref{SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}
}

func mustRead(t *testing.T, s blob.Backend, ref blob.Ref) []byte {
	t.Helper()
	b, err := s.ReadAll(context.Background(), ref, 0)
	if err != nil {
		t.Fatalf("read %s: %v", ref.SHA256, err)
	}
	return b
}

func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "packs", "*"+packSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFileBlobsStayReadable: a data directory written by the directory
// store before packs existed is read as it is, and a blob above MaxPacked
// is still written as a file.
func TestFileBlobsStayReadable(t *testing.T) {
	dir := t.TempDir()
	old, err := blob.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oldData := []byte("Zugang am 1. Dezember")
	oldRef, err := old.PutBytes(ctx, oldData)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, Config{Dir: dir, MaxPacked: 1000})
	defer s.Close()
	if got := mustRead(t, s, oldRef); !bytes.Equal(got, oldData) {
		t.Fatal("an old file blob read differently")
	}
	small, large := randomBytes(1, 1000), randomBytes(2, 1001)
	for _, tc := range []struct {
		data   []byte
		inFile bool
	}{{small, false}, {large, true}} {
		ref, err := s.Put(ctx, bytes.NewReader(tc.data), 0)
		if err != nil {
			t.Fatal(err)
		}
		if old.Has(ref) != tc.inFile {
			t.Errorf("blob of %d bytes: stored as a file %v, want %v", len(tc.data), old.Has(ref), tc.inFile)
		}
		if got := mustRead(t, s, ref); !bytes.Equal(got, tc.data) {
			t.Errorf("blob of %d bytes read differently", len(tc.data))
		}
	}
	if n := len(packFiles(t, dir)); n != 1 {
		t.Fatalf("%d packs, want 1", n)
	}
}

// TestFilesOnlyStillReadsPacks: with packing off (MaxPacked < 0) new blobs
// are files, and blobs already in packs are still served.
func TestFilesOnlyStillReadsPacks(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	packed := randomBytes(3, 5000)
	ref, err := s.PutBytes(context.Background(), packed)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	files := open(t, Config{Dir: dir, MaxPacked: -1})
	defer files.Close()
	if got := mustRead(t, files, ref); !bytes.Equal(got, packed) {
		t.Fatal("a packed blob read differently with packing off")
	}
	newRef, err := files.PutBytes(context.Background(), randomBytes(4, 10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256", newRef.SHA256[:2], newRef.SHA256)); err != nil {
		t.Fatalf("with packing off a new blob is no file: %v", err)
	}
}

// TestConcurrentWritersShareSyncs stores many distinct blobs from 64
// goroutines, then reads every one through a store opened afresh.
func TestConcurrentWritersShareSyncs(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, PackSize: 256 << 10})
	var wg sync.WaitGroup
	refs := make([]blob.Ref, 64*20)
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				k := g*20 + i
				ref, err := s.PutBytes(context.Background(), randomBytes(uint64(k), 100+k*7))
				if err != nil {
					t.Error(err)
					return
				}
				refs[k] = ref
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(packFiles(t, dir)); n < 2 {
		t.Fatalf("%d packs after about 4 MiB with a pack size of 256 KiB, want several", n)
	}
	again := open(t, Config{Dir: dir})
	defer again.Close()
	for k, ref := range refs {
		if got := mustRead(t, again, ref); !bytes.Equal(got, randomBytes(uint64(k), 100+k*7)) {
			t.Fatalf("blob %d read differently", k)
		}
	}
}

// TestTornTail: what a crash can leave after a pack's last durable record
// is cut when the store opens; the acknowledged blobs are all there, the
// torn one is gone and can be stored again, and the pack is sealed.
func TestTornTail(t *testing.T) {
	torn := randomBytes(99, 3000)
	tornSum := sha256.Sum256(torn)
	full := append(encodeHeader(kindBlob, tornSum, int64(len(torn))), torn...)
	zeroed := append(encodeHeader(kindBlob, tornSum, int64(len(torn))), make([]byte, len(torn))...)
	badCRC := bytes.Clone(full)
	badCRC[40] ^= 1
	wrongSum := append(encodeHeader(kindBlob, sha256.Sum256([]byte("other")), int64(len(torn))), torn...)
	tests := []struct {
		name string
		tail []byte
		kept bool // the tail is a complete, good record
	}{
		{"half a header", full[:20], false},
		{"header without content", full[:headerSize], false},
		{"content cut short", full[:headerSize+1000], false},
		{"content zeroed (size extended, data never written)", zeroed, false},
		{"header checksum wrong", badCRC, false},
		{"content does not hash to the header", wrongSum, false},
		{"seal not at the end", append(sealRecord(3), full...), false},
		{"nothing after the zeros' start", nil, false},
		{"complete record", full, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, Config{Dir: dir})
			var acked []blob.Ref
			for i := range 3 {
				ref, err := s.PutBytes(context.Background(), randomBytes(uint64(i), 2000+i))
				if err != nil {
					t.Fatal(err)
				}
				acked = append(acked, ref)
			}
			good := s.commit.off
			s.commit.abandon() // the crash: no seal, lock released
			packs := packFiles(t, dir)
			if len(packs) != 1 {
				t.Fatalf("%d packs, want 1", len(packs))
			}
			if size := fileLen(t, packs[0]); size <= good {
				t.Fatalf("pack of %d bytes is not preallocated beyond its records (%d bytes)", size, good)
			}
			writeAt(t, packs[0], tc.tail, good)

			again := open(t, Config{Dir: dir})
			defer again.Close()
			for i, ref := range acked {
				if got := mustRead(t, again, ref); !bytes.Equal(got, randomBytes(uint64(i), 2000+i)) {
					t.Fatalf("acknowledged blob %d read differently", i)
				}
			}
			tornRef := refOf(torn)
			_, err := again.Stat(context.Background(), tornRef)
			if tc.kept != (err == nil) || (!tc.kept && !errors.Is(err, blob.ErrNotFound)) {
				t.Fatalf("stat of the tail's blob: %v, kept %v", err, tc.kept)
			}
			want := good + headerSize
			if tc.kept {
				want += int64(len(full))
			}
			if got := fileLen(t, packs[0]); got != want {
				t.Fatalf("pack is %d bytes after recovery, want %d (good records and a seal)", got, want)
			}
			ref, err := again.PutBytes(context.Background(), torn)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, again, ref); !bytes.Equal(got, torn) {
				t.Fatal("the torn blob stored again reads differently")
			}
		})
	}
}

func fileLen(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// writeAt writes what a crash left where the next batch would have gone,
// over the pack's preallocated zeros.
func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLiveWriterNotRecovered: a store opening while another holds its
// pack reads that pack's records but neither cuts nor seals it, and does
// not count on them for its own puts.
func TestLiveWriterNotRecovered(t *testing.T) {
	dir := t.TempDir()
	writer := open(t, Config{Dir: dir})
	data := randomBytes(7, 4000)
	ref, err := writer.PutBytes(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	pack := packFiles(t, dir)[0]
	size := fileLen(t, pack)
	reader := open(t, Config{Dir: dir})
	if got := mustRead(t, reader, ref); !bytes.Equal(got, data) {
		t.Fatal("the live pack's blob read differently")
	}
	if got := fileLen(t, pack); got != size {
		t.Fatalf("the live pack changed from %d to %d bytes", size, got)
	}
	if _, err := reader.PutBytes(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	if n := len(packFiles(t, dir)); n != 2 {
		t.Fatalf("%d packs: the second store's put relied on the live pack", n)
	}
	more := randomBytes(8, 100)
	ref2, err := writer.PutBytes(context.Background(), more)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, reader, ref2); !bytes.Equal(got, more) {
		t.Fatal("a blob appended later to the live pack is not found")
	}
	writer.Close()
	reader.Close()
}

// TestEveryIndexedBlobVerifies is what the fuzz target and the crash test
// check after opening: nothing the index lists reads as wrong bytes.
func everyIndexedBlobVerifies(t *testing.T, s *Store) int {
	t.Helper()
	s.mu.RLock()
	var refs []blob.Ref
	for sum, loc := range s.index {
		refs = append(refs, blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: loc.size})
	}
	s.mu.RUnlock()
	for _, ref := range refs {
		if err := s.Verify(context.Background(), ref); err != nil {
			t.Fatalf("indexed blob %s: %v", ref.SHA256, err)
		}
	}
	return len(refs)
}

// FuzzRecover opens a store over a pack of arbitrary bytes: it must not
// panic, and every blob it then lists must read as exactly its content.
func FuzzRecover(f *testing.F) {
	a, b := []byte("Eingang"), randomBytes(1, 300)
	rec := func(d []byte) []byte { return append(encodeHeader(kindBlob, sha256.Sum256(d), int64(len(d))), d...) }
	f.Add(append(rec(a), rec(b)...))
	f.Add(append(append(rec(a), rec(b)...), sealRecord(2)...))
	f.Add(append(rec(a), rec(b)[:100]...))
	f.Add(append(rec(a), sealRecord(5)...))
	f.Add([]byte{})
	// The directory store's layout is made once: it costs 256 directories
	// and their syncs.
	dir := f.TempDir()
	if _, err := blob.Open(dir); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pack []byte) { recoverPack(t, dir, pack) })
}

// recoverPack is FuzzRecover's body.
func recoverPack(t *testing.T, dir string, pack []byte) {
	t.Helper()
	if len(pack) > 1<<20 {
		return
	}
	if err := os.RemoveAll(filepath.Join(dir, "packs")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "packs", "fuzz"+packSuffix), pack, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return
	}
	defer s.Close()
	s.mu.RLock()
	var refs []blob.Ref
	for sum, loc := range s.index {
		refs = append(refs, blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: loc.size})
	}
	s.mu.RUnlock()
	for _, ref := range refs {
		rc, err := s.Open(context.Background(), ref)
		if err != nil {
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil && refOf(got) != ref {
			t.Fatalf("%s read without error as other bytes", ref.SHA256)
		}
		if err != nil && !errors.Is(err, blob.ErrCorrupt) {
			t.Fatalf("%s: %v, want the content or ErrCorrupt", ref.SHA256, err)
		}
	}
}

// BenchmarkPut10KiB stores distinct 10 KiB blobs from 1, 16 and 64
// writers in the file-per-blob store and in packs, side by side.
func BenchmarkPut10KiB(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		for _, kind := range []string{"files", "packs"} {
			b.Run(fmt.Sprintf("%s/writers=%d", kind, writers), func(b *testing.B) {
				cfg := Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)}
				if kind == "files" {
					cfg.MaxPacked = -1
				}
				s := open(b, cfg)
				defer s.Close()
				benchPuts(b, s, writers)
			})
		}
	}
}

func benchPuts(b *testing.B, s *Store, writers int) {
	var next atomic.Int64
	b.SetBytes(10 << 10)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			data := make([]byte, 10<<10)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if _, err := s.PutBytes(context.Background(), data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
}
