package kafkalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// heads returns every partition's tree head as this process folded it.
func heads(l *Log) []string {
	var out []string
	for _, s := range l.parts {
		out = append(out, fmt.Sprintf("%d:%x", s.frontier.Size(), s.frontier.Root()))
	}
	return out
}

// TestSnapshotResumesTheSameFold checks that a log reopened from its fold
// snapshot has the fold a full replay gives (heads, stream numbers, known
// ids and message keys) and goes on from there, and that a snapshot of
// another topic is not used.
func TestSnapshotResumesTheSameFold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "snap-" + time.Now().Format("150405.000000")
	path := filepath.Join(t.TempDir(), "fold.snapshot")
	cfg := testConfig(topic)
	cfg.SnapshotPath = path
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		e := tev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%7), "x")
		e.MessageKey = fmt.Sprintf("k%d", i)
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot written at Close: %v", err)
	}
	// Ten more events that the snapshot does not hold.
	w, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 50; i++ {
		if _, err := w.Append(ctx, tev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%7), "x")); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	full, err := OpenReader(ctx, Config{Brokers: brokers(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	r, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.resumed != 40 {
		t.Fatalf("resumed %d events from the snapshot, want 40", r.resumed)
	}
	if got, want := fmt.Sprint(heads(r)), fmt.Sprint(heads(full)); got != want {
		t.Fatalf("heads from the snapshot %s, from a full fold %s", got, want)
	}
	again := tev("e3", "s3", "x")
	again.MessageKey = "k3"
	res, err := r.Append(ctx, again)
	if err != nil || !res[0].Existing {
		t.Fatalf("re-append of a snapshotted id: %+v %v", res, err)
	}
	dup := tev("other", "s1", "x")
	dup.MessageKey = "k1"
	if _, err := r.Append(ctx, dup); err == nil {
		t.Fatal("a message key held in the snapshot was taken again")
	}
	next := tev("e50", "s1", "x")
	if _, err := r.Append(ctx, next); err != nil {
		t.Fatal(err)
	}
	evs, err := r.ReadStream(ctx, "t1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.StreamSeq != int64(i+1) {
			t.Fatalf("stream s1 event %d has seq %d", i, e.StreamSeq)
		}
	}

	other := testConfig(topic + "-other")
	other.SnapshotPath = path
	o, err := Open(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.resumed != 0 {
		t.Fatalf("another topic resumed %d events from a foreign snapshot", o.resumed)
	}
	if end, _ := o.End(ctx, 0); end != 0 {
		t.Fatalf("another topic's log starts with %d events from a foreign snapshot", end)
	}
}

// BenchmarkOpenFold measures how long a gateway takes to open a log of
// KAFKALOG_BENCH_EVENTS events (default 20000): the whole fold against the
// fold from its snapshot. Run with KAFKALOG_BENCH_EVENTS=1000000 for the
// figure in docs/architecture.md.
func BenchmarkOpenFold(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("KAFKALOG_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	topic := fmt.Sprintf("openfold-%d-%d", n, time.Now().UnixNano())
	path := filepath.Join(b.TempDir(), "fold.snapshot")
	cfg := testConfig(topic)
	cfg.Partitions = 12
	cfg.SnapshotPath = path
	seed, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 300)
	var wg sync.WaitGroup
	const appenders = 64
	for w := range appenders {
		wg.Go(func() {
			batch := make([]eventstore.Event, 0, 100)
			for i := w; i < n; i += appenders {
				e := tev("ev-"+strconv.Itoa(i), "msg-"+strconv.Itoa(i/4), "")
				e.Data = data
				batch = append(batch, e)
				if len(batch) == cap(batch) || i+appenders >= n {
					if _, err := seed.Append(ctx, batch...); err != nil {
						b.Error(err)
						return
					}
					batch = batch[:0]
				}
			}
		})
	}
	wg.Wait()
	seed.Close() // writes the snapshot
	for _, mode := range []string{"full", "snapshot"} {
		b.Run(mode, func(b *testing.B) {
			c := cfg
			if mode == "full" {
				c.SnapshotPath = ""
			}
			for b.Loop() {
				l, err := Open(ctx, c)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				var total int64
				for p := range c.Partitions {
					e, _ := l.End(ctx, p)
					total += e
				}
				if total != int64(n) {
					b.Fatalf("opened with %d events, want %d", total, n)
				}
				if mode == "full" {
					l.cfg.SnapshotPath = "" // keep the seeded snapshot as it is
				}
				l.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n), "events")
		})
	}
}

// FuzzLoadSnapshot feeds hostile snapshot files to the loader: it may
// refuse them, never panic, and what it accepts is consistent per partition.
func FuzzLoadSnapshot(f *testing.F) {
	good := &Log{cfg: Config{Topic: "t", Partitions: 2}, parts: []*partitionState{newPartitionState(), newPartitionState()}}
	for i := range 3 {
		e := tev(fmt.Sprintf("e%d", i), "s", "x")
		e.MessageKey = fmt.Sprintf("k%d", i)
		good.parts[i%2].foldDecoded(int32(i%2), 2, &rawRecord{offset: int64(i)}, decoded{e: e})
	}
	dir := f.TempDir()
	good.cfg.SnapshotPath = filepath.Join(dir, "seed")
	if err := good.saveSnapshot(); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(good.cfg.SnapshotPath)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "snap")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		l := &Log{cfg: Config{Topic: "t", Partitions: 2, SnapshotPath: path}, parts: []*partitionState{newPartitionState(), newPartitionState()}}
		n, err := l.loadSnapshot()
		if err != nil {
			return
		}
		var total int64
		for _, s := range l.parts {
			if len(s.leaves) != len(s.koffs) || len(s.seqs) != len(s.koffs) || s.frontier.Size() != int64(len(s.koffs)) {
				t.Fatalf("accepted an inconsistent partition")
			}
			total += int64(len(s.koffs))
		}
		if total != n {
			t.Fatalf("reported %d events, holds %d", n, total)
		}
	})
}
