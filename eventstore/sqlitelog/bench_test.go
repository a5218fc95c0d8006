package sqlitelog

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkAppend64VsRaw is the ratio the performance table asks
// for, measured so that a shared machine's load falls on both sides alike:
// slices of 1,280 events alternate between 64 appenders on the log and
// SQLite alone writing the same number of 1 KiB rows in 64-row commits with
// the log's pragmas, into a plain table (raw) and into the log's own schema
// (rawlog), as `poststelle bench` does.
func BenchmarkAppend64VsRaw(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	l, err := Open(ctx, Config{Path: filepath.Join(dir, "log.db"), Signer: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	raw := openRaw(b, filepath.Join(dir, "raw.db"), `CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, data BLOB NOT NULL)`)
	rawLog := openRaw(b, filepath.Join(dir, "rawlog.db"), Schema)
	const slice = 1280
	data := make([]byte, 1024)
	var tLog, tRaw, tRawLog, cLog, cRaw, cRawLog time.Duration
	for i := 0; b.Loop(); i++ {
		base := i * slice
		c0 := cpuTime()
		tRaw += timed(func() {
			rawInserts(b, raw, base, slice, 64, `INSERT INTO t (k, data) VALUES (?, ?)`, func(j int) []any { return []any{fmt.Sprint("key-", j), data} })
		})
		cRaw += cpuTime() - c0
		c0 = cpuTime()
		tRawLog += timed(func() {
			rawInserts(b, rawLog, base, slice, 64, `INSERT INTO events (off, id, tenant, stream, stream_seq, type, version, message_key,
				correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				func(j int) []any {
					h := make([]byte, 32)
					return []any{j, fmt.Sprint("bench-", j), "bench", fmt.Sprint("s-", j%1000), j/1000 + 1, "BenchEvent", 1, "", "", "", []byte("{}"), data, time.Now().UnixNano(), h, h}
				})
		})
		cRawLog += cpuTime() - c0
		c0 = cpuTime()
		tLog += timed(func() { logAppends(b, l, base, slice, 64, data) })
		cLog += cpuTime() - c0
	}
	n := float64(b.N * slice)
	b.ReportMetric(n/tLog.Seconds(), "log-events/s")
	b.ReportMetric(n/tRaw.Seconds(), "raw-rows/s")
	b.ReportMetric(100*tRaw.Seconds()/tLog.Seconds(), "%-of-raw")
	b.ReportMetric(100*tRawLog.Seconds()/tLog.Seconds(), "%-of-rawlog")
	// CPU time per event does not depend on what else the machine runs.
	b.ReportMetric(float64(cLog.Microseconds())/n, "log-cpu-µs/event")
	b.ReportMetric(float64(cRaw.Microseconds())/n, "raw-cpu-µs/event")
	b.ReportMetric(float64(cRawLog.Microseconds())/n, "rawlog-cpu-µs/event")
}

func timed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

func openRaw(b *testing.B, path, schema string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		b.Fatal(err)
	}
	return db
}

// rawInserts writes rows [from, from+n) in commits of batch rows, each
// statement parsed anew as the harness's baseline does.
func rawInserts(b *testing.B, db *sql.DB, from, n, batch int, q string, args func(int) []any) {
	for i := from; i < from+n; i += batch {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for j := i; j < min(i+batch, from+n); j++ {
			if _, err := tx.Exec(q, args(j)...); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// logAppends appends events [from, from+n) from appenders goroutines, one
// event per call, as the harness's 64-appender measurement does.
func logAppends(b *testing.B, l *Log, from, n, appenders int, data []byte) {
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := from + a; i < from+n; i += appenders {
				e := eventstore.Event{ID: fmt.Sprintf("bench-%d", i), Tenant: "bench", Stream: fmt.Sprintf("s-%d", i%1000), Type: "BenchEvent", Version: 1, Data: data}
				if _, err := l.Append(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
