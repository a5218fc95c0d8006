package kafkalog

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

// The benchmarks run against kfake, or against the cluster in KAFKA_BROKERS
// (e.g. the integration broker: KAFKA_BROKERS=127.0.0.1:19092).

func benchAppend(b *testing.B, appenders int) {
	l := openTest(b, fmt.Sprintf("bench-%d-%d", appenders, b.N))
	data := make([]byte, 1024)
	var seq atomic.Int64
	b.SetBytes(int64(len(data)))
	b.SetParallelism(max(1, appenders/max(1, runtimeProcs())))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := seq.Add(1_000_000_000)
		for pb.Next() {
			i := seq.Add(1)
			e := tev("b"+strconv.FormatInt(i, 10), "s"+strconv.FormatInt(w+i%16, 10), "")
			e.Data = data
			if _, err := l.Append(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppend1(b *testing.B)  { benchAppend(b, 1) }
func BenchmarkAppend64(b *testing.B) { benchAppend(b, 64) }

func BenchmarkDecodeEvent(b *testing.B) {
	e := tev("id-1", "stream-1", "")
	e.Data = make([]byte, 1024)
	v := encodeEvent(&e)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := decodeEvent(v); err != nil {
			b.Fatal(err)
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
