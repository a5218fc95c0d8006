package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestPutOpenRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, content := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte("x"), 1<<20+3)} {
		ref, err := s.PutBytes(ctx, content)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Size != int64(len(content)) {
			t.Fatalf("size %d, want %d", ref.Size, len(content))
		}
		again, err := s.PutBytes(ctx, content)
		if err != nil || again != ref {
			t.Fatalf("second put: %v %v", again, err)
		}
		got, err := s.ReadAll(ctx, ref, 0)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read back: %v", err)
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %d", len(tmp))
	}
}

func TestSizeLimit(t *testing.T) {
	s, _ := Open(t.TempDir())
	_, err := s.Put(context.Background(), bytes.NewReader(make([]byte, 101)), 100)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if ref, err := s.Put(context.Background(), bytes.NewReader(make([]byte, 100)), 100); err != nil || ref.Size != 100 {
		t.Fatalf("at the limit: %v %v", ref, err)
	}
}

func TestCorruptionDetected(t *testing.T) {
	s, _ := Open(t.TempDir())
	ctx := context.Background()
	ref, _ := s.PutBytes(ctx, []byte("evidence of receipt"))
	p := s.path(ref.SHA256)
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, []byte("evidence of receipT"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, ref); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of altered blob: %v, want ErrCorrupt", err)
	}
	os.WriteFile(p, []byte("evidence"), 0o600)
	if _, err := s.ReadAll(ctx, ref, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of truncated blob: %v, want ErrCorrupt", err)
	}
	os.Remove(p)
	if _, err := s.Open(ctx, ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of removed blob: %v, want ErrNotFound", err)
	}
}

func TestBadRefs(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, sum := range []string{"", "../../etc/passwd", "ZZ", string(make([]byte, 64))} {
		if _, err := s.Open(context.Background(), Ref{SHA256: sum}); !errors.Is(err, ErrBadRef) {
			t.Errorf("ref %q: err = %v, want ErrBadRef", sum, err)
		}
	}
}

// zeroReader yields n zero bytes without allocating them.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestStreamsLargeBlob stores 256 MiB and checks that the heap does not grow
// with the content: blobs stream, they are never held whole.
func TestStreamsLargeBlob(t *testing.T) {
	s, _ := Open(t.TempDir())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ref, err := s.Put(context.Background(), &zeroReader{n: 256 << 20}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grown := int64(after.TotalAlloc - before.TotalAlloc); grown > 16<<20 {
		t.Fatalf("storing 256 MiB allocated %d bytes: content is being buffered", grown)
	}
}

func BenchmarkPut64KiB(b *testing.B) {
	s, _ := Open(b.TempDir())
	data := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, err := s.PutBytes(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutConcurrent16 stores 10 KiB blobs from 16 goroutines, as 16
// SMTP senders do; the barrier lets them share syncs.
func BenchmarkPutConcurrent16(b *testing.B) {
	s, _ := Open(b.TempDir())
	var n atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 writers
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 10<<10)
		for pb.Next() {
			i := n.Add(1)
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			if _, err := s.PutBytes(context.Background(), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
}

func TestMemory(t *testing.T) {
	var m Memory
	ctx := context.Background()
	ref, err := m.Put(ctx, bytes.NewReader([]byte("part")), 0)
	if err != nil {
		t.Fatal(err)
	}
	disk, _ := Open(t.TempDir())
	if want, _ := disk.PutBytes(ctx, []byte("part")); ref != want {
		t.Fatalf("memory ref %v differs from the directory store's %v", ref, want)
	}
	rc, err := m.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "part" {
		t.Fatalf("read %q", b)
	}
	if _, err := m.Put(ctx, bytes.NewReader(make([]byte, 11)), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized put: %v", err)
	}
	if _, err := m.Open(ctx, Ref{SHA256: "00"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}
