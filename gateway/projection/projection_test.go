package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// ledger records every event it applies with a plain INSERT, so that an
// event applied twice fails the batch instead of passing unnoticed, and
// fails on the event at failAt (-1: never).
type ledger struct {
	failAt  *atomic.Int64
	commits *atomic.Int64
}

func newLedger() ledger {
	l := ledger{failAt: &atomic.Int64{}, commits: &atomic.Int64{}}
	l.failAt.Store(-1)
	return l
}

var errInjected = errors.New("injected failure")

func (ledger) Name() string { return "ledger" }

func (ledger) Setup(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS ledger (part INTEGER NOT NULL, off INTEGER NOT NULL, stream TEXT NOT NULL,
		PRIMARY KEY (part, off)) STRICT`)
	return err
}

func (ledger) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM ledger`)
	return err
}

func (l ledger) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, _ gateway.Payload) error {
	if e.Position.Offset == l.failAt.Load() {
		return errInjected
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO ledger (part, off, stream) VALUES (?, ?, ?)`, e.Position.Partition, e.Position.Offset, e.Stream)
	return err
}

func (l ledger) Committed() { l.commits.Add(1) }

func appendReceived(t *testing.T, env *gatewaytest.Env, from, n int) {
	t.Helper()
	evs := make([]eventstore.Event, 0, n)
	for i := from; i < from+n; i++ {
		e, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint("m", i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: fmt.Sprintf("b%d@example.org", i)},
				Subject: fmt.Sprint("s", i), ReceivedAt: time.Unix(1e9+int64(i), 0).UTC()})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if _, err := env.Log.Append(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// ledgerState returns the applied offsets in order and the stored position.
func ledgerState(t *testing.T, db *sql.DB) (offsets []int64, next int64) {
	t.Helper()
	rows, err := db.Query(`SELECT off FROM ledger ORDER BY off`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var o int64
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, o)
	}
	if err := db.QueryRow(`SELECT COALESCE(MAX(next), 0) FROM projection_positions WHERE name = 'ledger'`).Scan(&next); err != nil {
		t.Fatal(err)
	}
	return offsets, next
}

func wantDense(t *testing.T, offsets []int64, n int64) {
	t.Helper()
	if int64(len(offsets)) != n {
		t.Fatalf("applied %d events, want %d: %v", len(offsets), n, offsets)
	}
	for i, o := range offsets {
		if o != int64(i) {
			t.Fatalf("applied offsets %v, want 0..%d each once", offsets, n-1)
		}
	}
}

// A batch that fails leaves neither its rows nor its position behind (the
// crash between a batch and its position cannot happen: they commit
// together), and the next run applies each event once.
func TestFailedBatchRollsBackRowsAndPosition(t *testing.T) {
	ctx := context.Background()
	env := gatewaytest.New(t)
	appendReceived(t, env, 0, 10)
	l := newLedger()
	l.failAt.Store(6)
	r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry(), MaxBatch: 4}
	if err := r.CatchUp(ctx, l); !errors.Is(err, errInjected) {
		t.Fatalf("CatchUp = %v, want the injected failure", err)
	}
	offsets, next := ledgerState(t, env.State)
	if next != 4 {
		t.Errorf("position after the failed batch = %d, want 4 (the first batch only)", next)
	}
	wantDense(t, offsets, 4)
	l.failAt.Store(-1)
	if err := r.CatchUp(ctx, l); err != nil {
		t.Fatal(err)
	}
	offsets, next = ledgerState(t, env.State)
	wantDense(t, offsets, 10)
	if next != 10 {
		t.Errorf("position = %d, want 10", next)
	}
}

// Run folds a backlog in batches, resumes after a stop where its position
// says, and restarts itself after a failed batch without applying anything
// twice.
func TestRunBatchesResumesAndRecovers(t *testing.T) {
	env := gatewaytest.New(t)
	const backlog = 300
	appendReceived(t, env, 0, backlog)
	l := newLedger()
	r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry(), MaxBatch: 32}
	if err := r.Setup(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	run := func(until int64) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, l) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, next := ledgerState(t, env.State)
			if next >= until {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("position %d after 30 s, want %d", next, until)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	}
	run(backlog)
	offsets, _ := ledgerState(t, env.State)
	wantDense(t, offsets, backlog)
	// 300 events one per transaction would be 300 commits; the backlog is
	// queued far faster than a commit takes, so batches form.
	if c := l.commits.Load(); c > backlog/2 {
		t.Errorf("%d commits for a backlog of %d events: not batched", c, backlog)
	}

	appendReceived(t, env, backlog, 50)
	l.failAt.Store(backlog + 20) // the first attempt fails; Run restarts after its backoff
	go func() { time.Sleep(300 * time.Millisecond); l.failAt.Store(-1) }()
	run(backlog + 50)
	offsets, _ = ledgerState(t, env.State)
	wantDense(t, offsets, backlog+50)
}

// Run and CatchUp may fold one projection at once (the evidence recorder
// catches the references up while their Run follows the log): each event
// is still applied once.
func TestRunAndCatchUpTogetherApplyOnce(t *testing.T) {
	env := gatewaytest.New(t)
	l := newLedger()
	r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry(), MaxBatch: 8}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Setup(ctx, l); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, l) }()
	var wg sync.WaitGroup
	for i := range 10 {
		appendReceived(t, env, i*20, 20)
		wg.Go(func() {
			if err := r.CatchUp(ctx, l); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := r.CatchUp(ctx, l); err != nil {
		t.Fatal(err)
	}
	offsets, next := ledgerState(t, env.State)
	wantDense(t, offsets, 200)
	if next != 200 {
		t.Errorf("position = %d, want 200", next)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v (a duplicate apply fails the ledger's INSERT)", err)
	}
}

// A rebuild folded in batches of any size reproduces the read model that
// events folded one at a time gave.
func TestRebuildInBatchesMatchesOneByOne(t *testing.T) {
	ctx := context.Background()
	env := gatewaytest.New(t)
	appendReceived(t, env, 0, 40)
	msgs := projection.Messages{}
	one := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry(), MaxBatch: 1}
	if err := one.CatchUp(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	want, err := projection.Dump(ctx, env.State)
	if err != nil {
		t.Fatal(err)
	}
	if want == "" {
		t.Fatal("empty read model")
	}
	for _, size := range []int{7, 256} {
		r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry(), MaxBatch: size}
		if err := r.Rebuild(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		if got, _ := projection.Dump(ctx, env.State); got != "" {
			t.Fatalf("rebuild left rows: %q", got)
		}
		if err := r.CatchUp(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		got, err := projection.Dump(ctx, env.State)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("batches of %d: dump differs\n got %s\nwant %s", size, got, want)
		}
	}
}

// A statement that does not prepare reports its error through the batch;
// it is not cached as a working one.
func TestBadStatementFailsTheBatch(t *testing.T) {
	ctx := context.Background()
	env := gatewaytest.New(t)
	appendReceived(t, env, 0, 3)
	r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	for range 2 {
		err := r.CatchUp(ctx, badQuery{})
		if err == nil || !strings.Contains(err.Error(), "no such table: missing_table") {
			t.Fatalf("CatchUp = %v, want the missing table's error", err)
		}
	}
}

type badQuery struct{}

func (badQuery) Name() string                         { return "bad" }
func (badQuery) Setup(context.Context, *sql.Tx) error { return nil }
func (badQuery) Reset(context.Context, *sql.Tx) error { return nil }
func (badQuery) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, _ gateway.Payload) error {
	var n int
	return tx.QueryRowContext(ctx, `SELECT n FROM missing_table WHERE stream = ?`, e.Stream).Scan(&n)
}
