package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
)

// benchResult is one row of the benchmark table.
type benchResult struct {
	name     string
	events   int
	elapsed  time.Duration
	p50, p99 time.Duration
	lat      []time.Duration // what p50 and p99 were taken from, when measured
}

// add sums two rounds of one measurement.
func (r benchResult) add(o benchResult) benchResult {
	sum := benchResult{name: r.name, events: r.events + o.events, elapsed: r.elapsed + o.elapsed, lat: slices.Concat(r.lat, o.lat)}
	sum.p50, sum.p99 = percentiles(slices.Clone(sum.lat))
	return sum
}

func (r benchResult) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("bench", stderr)
	n := fs.Int("events", 20000, "events per measurement")
	size := fs.Int("size", 1024, "payload `bytes` per event")
	dir := fs.String("dir", "", "directory for the benchmark databases (default: a temporary directory)")
	jsonOut := fs.String("json", "", "also write the figures as JSON to `file` (for bench/report)")
	rounds := fs.Int("rounds", 1, "run the measurements this many times in turn and add them up, so that a change of load on a shared machine hits the baselines and ours alike")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "poststelle-bench-")
		if err != nil {
			fmt.Fprintln(stderr, "poststelle:", err)
			return exitFailed
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	results, err := benchRounds(ctx, *dir, *n, *size, max(*rounds, 1), stderr)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: bench:", err)
		return exitFailed
	}
	printBench(stdout, results, *size)
	if *jsonOut != "" {
		if err := figures.Write(*jsonOut, benchFigures(results, *n, *size, max(*rounds, 1))); err != nil {
			fmt.Fprintln(stderr, "poststelle: bench:", err)
			return exitFailed
		}
	}
	return exitOK
}

// benchKeys name the rows of benchAll in the JSON figures, in its order.
var benchKeys = []string{"raw1", "raw64", "rawlog64", "append1", "append64", "verify", "sha256"}

func benchFigures(rs []benchResult, n, size, rounds int) *figures.Run {
	run := figures.New("sqlite")
	run.Params["events"] = fmt.Sprint(n)
	run.Params["rounds"] = fmt.Sprint(rounds)
	run.Params["size"] = fmt.Sprint(size)
	for i, r := range rs {
		run.Add(benchKeys[i], r.name, r.rate(), "events/s").Latency(r.p50, r.p99)
	}
	return run
}

// benchRounds runs benchAll rounds times, each in a directory of its own,
// and adds the rounds up per measurement.
func benchRounds(ctx context.Context, dir string, n, size, rounds int, progress io.Writer) ([]benchResult, error) {
	var out []benchResult
	for r := range rounds {
		rd := filepath.Join(dir, fmt.Sprintf("round%d", r))
		if err := os.MkdirAll(rd, 0o750); err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		rs, err := benchAll(ctx, rd, n, size, progress)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		if out == nil {
			out = rs
			continue
		}
		for i := range out {
			out[i] = out[i].add(rs[i])
		}
	}
	return out, nil
}

func benchAll(ctx context.Context, dir string, n, size int, progress io.Writer) ([]benchResult, error) {
	var out []benchResult
	steps := []struct {
		name string
		f    func() (benchResult, error)
	}{
		{"raw SQLite, 1 row per commit", func() (benchResult, error) { return benchRawSQLite(ctx, dir, "raw1", min(n, 2000), size, 1) }},
		{"raw SQLite, 64 rows per commit", func() (benchResult, error) { return benchRawSQLite(ctx, dir, "raw64", n, size, 64) }},
		{"raw SQLite, log schema, 64 rows per commit", func() (benchResult, error) { return benchRawLogSchema(ctx, dir, "rawlog64", n, size, 64) }},
		{"poststelle append, 1 appender", func() (benchResult, error) { return benchAppend(ctx, dir, "log1", min(n, 2000), size, 1) }},
		{"poststelle append, 64 appenders", func() (benchResult, error) { return benchAppend(ctx, dir, "log64", n, size, 64) }},
		{"poststelle log verify", func() (benchResult, error) { return benchVerify(ctx, dir, "log64") }},
		{"raw SHA-256 of the events' bytes, all cores", func() (benchResult, error) { return benchHash(ctx, max(n, 200000), size) }},
	}
	for _, s := range steps {
		fmt.Fprintf(progress, "measuring %s ...\n", s.name)
		r, err := s.f()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r.name = s.name
		out = append(out, r)
	}
	return out, nil
}

func printBench(w io.Writer, rs []benchResult, size int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "measurement (%d-byte events, synchronous=FULL)\tevents\tevents/s\tp50\tp99\t\n", size)
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t\n", r.name, r.events, r.rate(), fmtDur(r.p50), fmtDur(r.p99))
	}
	tw.Flush()
	if len(rs) >= 5 {
		fmt.Fprintf(w, "\nratio append/raw: 1 appender %.0f%% of raw 1-row commits; 64 appenders %.0f%% of raw 64-row commits, %.0f%% of raw 64-row commits into the log's schema (goal: at least 80%% of the raw batched rate)\n",
			100*rs[3].rate()/rs[0].rate(), 100*rs[4].rate()/rs[1].rate(), 100*rs[4].rate()/rs[2].rate())
	}
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

func percentiles(lat []time.Duration) (time.Duration, time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// benchRawSQLite inserts rows into a plain table with the log's pragmas, the
// baseline the append rate is compared with.
func benchRawSQLite(ctx context.Context, dir, name string, n, size, batch int) (benchResult, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name+".db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return benchResult{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, data BLOB NOT NULL)`); err != nil {
		return benchResult{}, err
	}
	data := make([]byte, size)
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < n; i += batch {
		t0 := time.Now()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return benchResult{}, err
		}
		for j := i; j < min(i+batch, n); j++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, data) VALUES (?, ?)`, fmt.Sprint("key-", j), data); err != nil {
				tx.Rollback()
				return benchResult{}, err
			}
		}
		if err := tx.Commit(); err != nil {
			return benchResult{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	r := benchResult{events: n, elapsed: time.Since(start), lat: lat}
	r.p50, r.p99 = percentiles(slices.Clone(lat))
	return r, nil
}

// benchRawLogSchema inserts rows into the log's own tables without anything
// the log adds (lookups, hashing, signing): what SQLite alone costs for the
// same rows, indexes and fsyncs.
func benchRawLogSchema(ctx context.Context, dir, name string, n, size, batch int) (benchResult, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name+".db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return benchResult{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, sqlitelog.Schema); err != nil {
		return benchResult{}, err
	}
	data, hash := make([]byte, size), make([]byte, 32)
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < n; i += batch {
		t0 := time.Now()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return benchResult{}, err
		}
		for j := i; j < min(i+batch, n); j++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO events (off, id, tenant, stream, stream_seq, type, version, message_key,
				correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				j, fmt.Sprint("bench-", j), "bench", fmt.Sprint("s-", j%1000), j/1000+1, "BenchEvent", 1, "", "", "", []byte("{}"), data,
				time.Now().UnixNano(), hash, hash); err != nil {
				tx.Rollback()
				return benchResult{}, err
			}
		}
		if err := tx.Commit(); err != nil {
			return benchResult{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	r := benchResult{events: n, elapsed: time.Since(start), lat: lat}
	r.p50, r.p99 = percentiles(slices.Clone(lat))
	return r, nil
}

var benchKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func benchAppend(ctx context.Context, dir, name string, n, size, appenders int) (benchResult, error) {
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, name+".db"), Signer: benchKey})
	if err != nil {
		return benchResult{}, err
	}
	defer l.Close()
	data := make([]byte, size)
	lats := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	start := time.Now()
	for a := range appenders {
		wg.Go(func() {
			for i := a; i < n; i += appenders {
				e := eventstore.Event{ID: fmt.Sprintf("bench-%d", i), Tenant: "bench", Stream: fmt.Sprintf("s-%d", i%1000),
					Type: "BenchEvent", Version: 1, Data: data}
				t0 := time.Now()
				if _, err := l.Append(ctx, e); err != nil {
					errs <- err
					return
				}
				lats[a] = append(lats[a], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return benchResult{}, err
	}
	r := benchResult{events: n, elapsed: elapsed, lat: slices.Concat(lats...)}
	r.p50, r.p99 = percentiles(slices.Clone(r.lat))
	return r, nil
}

// benchHash hashes the leaf encoding of n benchmark events with SHA-256 on
// every core: what the machine can hash, the limit beside the log verify
// rate (which hashes each leaf once and more besides).
func benchHash(ctx context.Context, n, size int) (benchResult, error) {
	leaf := integrity.EncodeLeaf(&eventstore.Event{ID: "bench-12345", Tenant: "bench", Stream: "s-123", StreamSeq: 12,
		Type: "BenchEvent", Version: 1, Data: make([]byte, size), RecordedAt: time.Now()})
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			buf := slices.Clone(leaf)
			for i := w; i < n && ctx.Err() == nil; i += workers {
				buf[0] = byte(i)
				sha256.Sum256(buf)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return benchResult{}, err
	}
	return benchResult{events: n, elapsed: time.Since(start)}, nil
}

func benchVerify(ctx context.Context, dir, name string) (benchResult, error) {
	l, err := sqlitelog.OpenReadOnly(ctx, filepath.Join(dir, name+".db"))
	if err != nil {
		return benchResult{}, err
	}
	defer l.Close()
	start := time.Now()
	sum, err := integrity.VerifyLog(ctx, l, benchKey.Public(), nil)
	if err != nil {
		return benchResult{}, err
	}
	return benchResult{events: int(sum.Events), elapsed: time.Since(start)}, nil
}
