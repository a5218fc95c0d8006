// Command readstore measures the two designs of issue 16 for "every node
// answers for every office": each node folding the log into its own SQLite
// state database, as the gateway does, against one PostgreSQL shared by
// the nodes. Both fold the same events through the same projections
// (offices.Inbox with QueuedOrder, projection.Messages, batches of up to
// projection.DefaultMaxBatch) and answer the office API's queries
// (offices.ListInboxPage with the API's limit, offices.GetMessage) while a
// fold runs.
//
//	pg=$(bash test/integration/postgres/pg.sh start)
//	go run ./bench/readstore -pg "$pg" -pgpid "$(bash test/integration/postgres/pg.sh pid)" -json out.json
//
// CPU time is read from the kernel: getrusage for this process, /proc for
// the postmaster and its backends.
package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/bench/figures"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
)

type config struct {
	pgDSN      string
	pgPID      int
	messages   int
	rounds     int
	offices    int
	readFor    time.Duration
	offerRate  int
	jsonPath   string
	listLimit  int
	readerSets []int
}

func main() {
	var c config
	flag.StringVar(&c.pgDSN, "pg", "", "PostgreSQL DSN (test/integration/postgres/pg.sh start)")
	flag.IntVar(&c.pgPID, "pgpid", 0, "the postmaster's pid, for its CPU time")
	flag.IntVar(&c.messages, "messages", 4000, "messages in the folded log (5 events each)")
	flag.IntVar(&c.rounds, "rounds", 2, "fold rounds per store")
	flag.IntVar(&c.offices, "offices", 16, "offices the messages are routed to, round robin")
	flag.DurationVar(&c.readFor, "read-for", 8*time.Second, "duration of each read phase")
	flag.IntVar(&c.offerRate, "rate", 1000, "events/s appended during the read phases, a rate every store folds (SMTP intake is 765 messages/s × 5 events = 3,825)")
	flag.StringVar(&c.jsonPath, "json", "", "write the figures here (bench/figures)")
	flag.Parse()
	c.listLimit, c.readerSets = 100, []int{0, 1, 16}
	if c.pgDSN == "" || c.pgPID == 0 {
		fmt.Fprintln(os.Stderr, "readstore: -pg and -pgpid are required")
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "readstore:", err)
		os.Exit(1)
	}
}

// store is one read store under test.
type store struct {
	name string
	// open returns an empty store.
	open func(ctx context.Context) (*sql.DB, error)
	// server is true for PostgreSQL, whose processes' CPU counts too.
	server bool
}

func run(ctx context.Context, c config) error {
	dir, err := os.MkdirTemp("", "readstore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fig := figures.New("readstore")
	fig.Params["messages"] = strconv.Itoa(c.messages)
	fig.Params["events"] = strconv.Itoa(5 * c.messages)
	fig.Params["rounds"] = strconv.Itoa(c.rounds)
	fig.Params["offered events/s during reads"] = strconv.Itoa(c.offerRate)
	fig.Params["read phase"] = c.readFor.String()
	n := 0
	stores := []store{
		{name: "sqlite", open: func(ctx context.Context) (*sql.DB, error) {
			n++
			return openSQLite(filepath.Join(dir, fmt.Sprintf("state-%d.db", n)))
		}},
		{name: "pg", server: true, open: func(ctx context.Context) (*sql.DB, error) { return freshPostgres(ctx, c.pgDSN) }},
		{name: "pg-async", server: true, open: func(ctx context.Context) (*sql.DB, error) {
			return freshPostgres(ctx, withParam(c.pgDSN, "synchronous_commit=off"))
		}},
	}
	reg := gateway.NewRegistry()
	for _, s := range stores {
		if err := measureFold(ctx, c, dir, s, reg, fig); err != nil {
			return fmt.Errorf("fold into %s: %w", s.name, err)
		}
		for _, readers := range c.readerSets {
			if err := measureReads(ctx, c, dir, s, reg, readers, fig); err != nil {
				return fmt.Errorf("reads from %s with %d readers: %w", s.name, readers, err)
			}
		}
	}
	summarize(fig)
	for _, f := range fig.Figures {
		fmt.Printf("%-40s %14.4f %-14s p50 %.3f ms p99 %.3f ms  %s\n", f.Key, f.Value, f.Unit, f.P50Ms, f.P99Ms, f.Label)
	}
	if c.jsonPath != "" {
		return figures.Write(c.jsonPath, fig)
	}
	return nil
}

// openSQLite opens a state database as internal/assembly does.
func openSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// freshPostgres empties the database and opens a pool large enough for the
// readers and the folds.
func freshPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := openPostgres(dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(24)
	db.SetMaxIdleConns(24)
	if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public`); err != nil {
		db.Close()
		return nil, fmt.Errorf("reset schema: %w", err)
	}
	return db, nil
}

func withParam(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

func projections() []projection.Projection {
	return []projection.Projection{offices.Inbox{QueuedOrder: true}, projection.Messages{}}
}

// messageEvents are one message's events as a cluster's log has them:
// received, verified, routed, delivered to the office's queue and its
// place there (in the office's stream).
func messageEvents(i, nOffices int) ([]eventstore.Event, error) {
	office := fmt.Sprintf("office-%02d", i%nOffices)
	rec, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint("m", i)),
		&gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: fmt.Sprintf("b%d@example.org", i)},
			Subject: fmt.Sprint("bench ", i), ReceivedAt: time.Unix(1e9+int64(i), 0).UTC()})
	if err != nil {
		return nil, err
	}
	verified, err := gateway.Follow("verification", &rec, 0, &gateway.SignaturesVerified{WrittenFormReason: "no signature"})
	if err != nil {
		return nil, err
	}
	routed, err := gateway.Follow("routing", &rec, 0, &gateway.MessageRouted{Offices: []string{office}, Rule: "catch-all", DecidedBy: "rules"})
	if err != nil {
		return nil, err
	}
	delivered, err := gateway.Follow(offices.QueueDeliveryHandler, &routed, 0, &gateway.MessageDelivered{Office: office, Via: "queue"})
	if err != nil {
		return nil, err
	}
	queued, err := gateway.Follow(offices.QueueDeliveryHandler, &routed, 1, &gateway.MessageQueued{Office: office, Stream: rec.Stream, RoutedBy: routed.ID, Rule: "catch-all"})
	if err != nil {
		return nil, err
	}
	return []eventstore.Event{rec, verified, routed, delivered, queued}, nil
}

func buildEvents(from, to, nOffices int) ([]eventstore.Event, error) {
	var evs []eventstore.Event
	for i := from; i < to; i++ {
		m, err := messageEvents(i, nOffices)
		if err != nil {
			return nil, err
		}
		evs = append(evs, m...)
	}
	return evs, nil
}

func openLog(ctx context.Context, path string, evs []eventstore.Event) (*sqlitelog.Log, error) {
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: path, Signer: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	for chunk := range slices.Chunk(evs, 2048) {
		if _, err := l.Append(ctx, chunk...); err != nil {
			l.Close()
			return nil, fmt.Errorf("append: %w", err)
		}
	}
	return l, nil
}

// measureFold folds the whole log into a fresh store, rounds times, one
// projection after the other as BenchmarkFold does.
func measureFold(ctx context.Context, c config, dir string, s store, reg *gateway.Registry, fig *figures.Run) error {
	evs, err := buildEvents(0, c.messages, c.offices)
	if err != nil {
		return err
	}
	l, err := openLog(ctx, filepath.Join(dir, "fold-"+s.name+".db"), evs)
	if err != nil {
		return err
	}
	defer l.Close()
	var wall time.Duration
	var self, server float64
	for range c.rounds {
		db, err := s.open(ctx)
		if err != nil {
			return err
		}
		r := &projection.Runner{Log: l, DB: db, Registry: reg, Logger: slog.New(slog.DiscardHandler)}
		for _, p := range projections() {
			if err := r.Setup(ctx, p); err != nil {
				db.Close()
				return err
			}
		}
		c0 := sample(s, c.pgPID)
		start := time.Now()
		for _, p := range projections() {
			if err := r.CatchUp(ctx, p); err != nil {
				db.Close()
				return err
			}
		}
		wall += time.Since(start)
		c1 := sample(s, c.pgPID)
		self += c1.self - c0.self
		server += c1.server - c0.server
		if err := checkFolded(ctx, db, c); err != nil {
			db.Close()
			return err
		}
		db.Close()
	}
	total := float64(len(evs) * c.rounds)
	fig.Add(s.name+".fold.events_per_s", s.name+": events folded per second (each into both read models)", total/wall.Seconds(), "events/s")
	fig.Add(s.name+".fold.cpu_us_per_event.self", s.name+": CPU of the folding process per event", 1e6*self/total, "µs/event")
	if s.server {
		fig.Add(s.name+".fold.cpu_us_per_event.server", s.name+": CPU of the PostgreSQL processes per event", 1e6*server/total, "µs/event")
	}
	return nil
}

// checkFolded makes sure the fold did its work: every office lists its
// share of the messages.
func checkFolded(ctx context.Context, db *sql.DB, c config) error {
	want := c.messages / c.offices
	last, err := offices.LatestSeq(ctx, db, "office-00")
	if err != nil {
		return err
	}
	if last < int64(want) {
		return fmt.Errorf("office-00 lists up to seq %d, want at least %d", last, want)
	}
	return nil
}

type cpu struct{ self, server float64 }

func sample(s store, pgPID int) cpu {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	out := cpu{self: tv(ru.Utime) + tv(ru.Stime)}
	if s.server {
		out.server = serverCPU(pgPID)
	}
	return out
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// clockTicks is USER_HZ, 100 on every Linux architecture Go runs on.
const clockTicks = 100

// serverCPU is the CPU time of the postmaster, its reaped children and
// its live backends.
func serverCPU(pid int) float64 {
	total := 0.0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := procStat(p)
		if !ok {
			continue
		}
		switch {
		case p == pid:
			total += f[11] + f[12] + f[13] + f[14]
		case int(f[1]) == pid:
			total += f[11] + f[12]
		}
	}
	return total / clockTicks
}

// procStat returns the numeric fields of /proc/pid/stat after the command
// (index 0 is the state, 1 the ppid, 11 utime, 12 stime, 13 cutime, 14 cstime).
func procStat(pid int) ([]float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 15 {
		return nil, false
	}
	out := make([]float64, 15)
	for k := 1; k < 15; k++ {
		out[k], _ = strconv.ParseFloat(fields[k], 64)
	}
	return out, true
}

// measureReads folds a first log into a fresh store, then runs readers
// against it while events are appended at the offered rate and followed by
// the projections, as a serving gateway does.
func measureReads(ctx context.Context, c config, dir string, s store, reg *gateway.Registry, readers int, fig *figures.Run) error {
	base, err := buildEvents(0, c.messages, c.offices)
	if err != nil {
		return err
	}
	more := int(c.readFor.Seconds()*float64(c.offerRate)/5) + 1000
	extra, err := buildEvents(c.messages, c.messages+more, c.offices)
	if err != nil {
		return err
	}
	l, err := openLog(ctx, filepath.Join(dir, fmt.Sprintf("read-%s-%d.db", s.name, readers)), base)
	if err != nil {
		return err
	}
	defer l.Close()
	db, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	r := &projection.Runner{Log: l, DB: db, Registry: reg, Logger: slog.New(slog.DiscardHandler)}
	for _, p := range projections() {
		if err := r.CatchUp(ctx, p); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range projections() {
		wg.Go(func() { _ = r.Run(ctx, p) })
	}
	c0 := sample(s, c.pgPID)
	start := time.Now()
	appended := make(chan int, 1)
	go func() { appended <- offer(ctx, l, extra, c.offerRate, c.readFor) }()
	var lists, gets []time.Duration
	if readers > 0 {
		lists, gets, err = read(ctx, db, c, readers, start.Add(c.readFor))
	}
	n := <-appended
	elapsed := time.Since(start)
	c1 := sample(s, c.pgPID)
	var next int64
	if qerr := db.QueryRowContext(ctx, `SELECT next FROM projection_positions WHERE name = 'messages' AND part = 0`).Scan(&next); qerr != nil {
		err = errors.Join(err, fmt.Errorf("read the fold's position: %w", qerr))
	}
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s.read.r%d", s.name, readers)
	label := fmt.Sprintf("%s, %d reader(s), fold at %d events/s", s.name, readers, c.offerRate)
	fig.Add(key+".appended_events", label+": events appended and followed meanwhile", float64(n), "events")
	fig.Add(key+".unfolded_events", label+": events appended but not yet folded when the phase ended", float64(int64(len(base)+n)-next), "events")
	fig.Add(key+".cpu_s.self", label+": CPU of the serving process", c1.self-c0.self, "s")
	if s.server {
		fig.Add(key+".cpu_s.server", label+": CPU of the PostgreSQL processes", c1.server-c0.server, "s")
	}
	if readers == 0 {
		return nil
	}
	fig.Add(key+".list_per_s", label+": queue lists (since seq, limit 100) per second", float64(len(lists))/elapsed.Seconds(), "lists/s").
		Latency(pct(lists, 50), pct(lists, 99))
	fig.Add(key+".get_per_s", label+": message fetches per second", float64(len(gets))/elapsed.Seconds(), "gets/s").
		Latency(pct(gets, 50), pct(gets, 99))
	fig.Add(key+".reads", label+": list-and-fetch pairs done", float64(len(gets)), "reads")
	return nil
}

// offer appends evs at rate events/s until d has passed, a tick's worth
// (whole messages) every 50 ms so that the log's fsync per append does not
// cap the rate; it returns how many it appended.
func offer(ctx context.Context, l *sqlitelog.Log, evs []eventstore.Event, rate int, d time.Duration) int {
	const tick = 50 * time.Millisecond
	start := time.Now()
	n := 0
	for k := 1; time.Since(start) < d; k++ {
		due := min(len(evs), int(float64(rate)*(time.Duration(k)*tick).Seconds())/5*5)
		if due > n {
			if _, err := l.Append(ctx, evs[n:due]...); err != nil {
				return n
			}
			n = due
		}
		select {
		case <-time.After(time.Until(start.Add(time.Duration(k) * tick))):
		case <-ctx.Done():
			return n
		}
	}
	return n
}

// read runs the readers until the deadline: each lists a random office's
// queue from a random place, as a client polling with since does, then
// fetches one of the messages listed.
func read(ctx context.Context, db *sql.DB, c config, readers int, deadline time.Time) (lists, gets []time.Duration, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, readers)
	perOffice := int64(c.messages / c.offices)
	for w := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var ls, gs []time.Duration
			for time.Now().Before(deadline) {
				office := fmt.Sprintf("office-%02d", rng.IntN(c.offices))
				t0 := time.Now()
				msgs, err := offices.ListInboxPage(ctx, db, offices.Query{Office: office, Since: rng.Int64N(max(1, perOffice-int64(c.listLimit))), Limit: c.listLimit})
				ls = append(ls, time.Since(t0))
				if err != nil {
					errs[w] = err
					return
				}
				if len(msgs) == 0 {
					errs[w] = errors.New("an office listed nothing")
					return
				}
				t1 := time.Now()
				if _, err := offices.GetMessage(ctx, db, office, msgs[rng.IntN(len(msgs))].Stream); err != nil {
					errs[w] = err
					return
				}
				gs = append(gs, time.Since(t1))
			}
			mu.Lock()
			lists, gets = append(lists, ls...), append(gets, gs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lists, gets, errors.Join(errs...)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
