package cryptblob

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/packblob"
)

// BenchmarkPut10KiB is the intake cost of encryption at rest: 16 writers
// putting distinct 10 KiB blobs into packblob alone (plain) and through
// cryptblob over packblob with the SQLite key store (encrypted), in one
// run, so that the ratio of the two is the overhead.
func BenchmarkPut10KiB(b *testing.B) {
	open := map[string]func(b *testing.B) blob.Backend{
		"plain": func(b *testing.B) blob.Backend { return openPack(b) },
		"encrypted": func(b *testing.B) blob.Backend {
			return New(openPack(b), openKeys(b, filepath.Join(b.TempDir(), "keys.db")), testKEK(b), nil)
		},
	}
	for _, name := range []string{"plain", "encrypted"} {
		b.Run(name, func(b *testing.B) {
			s := open[name](b)
			var seq atomic.Uint64
			b.SetBytes(10 << 10)
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				data := make([]byte, 10<<10)
				for pb.Next() {
					binary.BigEndian.PutUint64(data, seq.Add(1))
					if _, err := s.PutBytes(context.Background(), data); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func openPack(b *testing.B) *packblob.Store {
	s, err := packblob.Open(context.Background(), packblob.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
