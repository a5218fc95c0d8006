package sqlitelog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

func benchAppend(b *testing.B, appenders int) {
	l, err := Open(context.Background(), Config{Path: filepath.Join(b.TempDir(), "log.db"), Signer: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, 1024)
	var next atomic.Int64
	b.SetBytes(1024)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				e := eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: fmt.Sprint("s", i%100), Type: "T", Version: 1, Data: data}
				if _, err := l.Append(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppend1(b *testing.B)  { benchAppend(b, 1) }
func BenchmarkAppend64(b *testing.B) { benchAppend(b, 64) }

func BenchmarkVerify(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log.db")
	l, err := Open(context.Background(), Config{Path: path, Signer: testKey})
	if err != nil {
		b.Fatal(err)
	}
	const n = 20000
	batch := make([]eventstore.Event, 0, 500)
	for i := range n {
		batch = append(batch, eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: fmt.Sprint("s", i%100), Type: "T", Version: 1, Data: make([]byte, 1024)})
		if len(batch) == cap(batch) {
			if _, err := l.Append(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	l.Close()
	ro, err := OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := integrity.VerifyLog(context.Background(), ro, testKey.Public(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
