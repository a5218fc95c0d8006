package pipeline_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

type env struct {
	log *sqlitelog.Log
	db  *sql.DB
	off *pubsub.SQLOffsets
}

func newEnv(t *testing.T) *env {
	g := gatewaytest.New(t)
	return &env{log: g.Log, db: g.State, off: g.Offsets}
}

func receive(t *testing.T, l eventstore.Log, n int) {
	t.Helper()
	in := &gateway.Intake{Log: l}
	for i := range n {
		_, err := in.Record(context.Background(), "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint(i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: fmt.Sprintf("msg %d", i), From: gateway.Address{Address: "a@example.org"}, ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls the log until want events of type typ exist.
func waitFor(t *testing.T, l *sqlitelog.Log, typ string, want int) []eventstore.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := l.Read(context.Background(), 0, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var got []eventstore.Event
		for _, e := range evs {
			if e.Type == typ {
				got = append(got, e)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) != want {
				t.Fatalf("%d %s events, want %d", len(got), typ, want)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runPipeline(t *testing.T, e *env, hs ...pipeline.Handler) context.CancelFunc {
	t.Helper()
	p, err := pipeline.New(pipeline.Config{Log: e.log, Offsets: e.off, Registry: gateway.NewRegistry(), MaxRetries: 2, RetryInterval: time.Millisecond}, hs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

var routeAll = pipeline.Handler{Name: "route-all", Topic: "MessageReceived",
	Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
		return []gateway.Payload{&gateway.MessageRouted{Offices: []string{"demo"}, DecidedBy: "rules"}}, nil
	}}

func TestHandlerAppendsFollowUps(t *testing.T) {
	e := newEnv(t)
	receive(t, e.log, 5)
	runPipeline(t, e, routeAll)
	routed := waitFor(t, e.log, "MessageRouted", 5)
	for _, r := range routed {
		if r.CausationID == "" || r.CorrelationID != r.Stream {
			t.Fatalf("follow-up lacks causation or correlation: %+v", r)
		}
	}
}

func TestReprocessingIsIdempotent(t *testing.T) {
	e := newEnv(t)
	receive(t, e.log, 3)
	cancel := runPipeline(t, e, routeAll)
	waitFor(t, e.log, "MessageRouted", 3)
	cancel()
	// Forget the handler's position, as a crash before saving it would.
	if _, err := e.db.Exec(`DELETE FROM subscription_offsets`); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, e, routeAll)
	receive(t, e.log, 4) // one new message after the replay
	waitFor(t, e.log, "MessageRouted", 4)
	time.Sleep(200 * time.Millisecond)
	waitFor(t, e.log, "MessageRouted", 4)
}

func TestPoisonQueue(t *testing.T) {
	e := newEnv(t)
	receive(t, e.log, 3)
	var calls atomic.Int32
	flaky := pipeline.Handler{Name: "flaky", Topic: "MessageReceived",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			calls.Add(1)
			switch p.(*gateway.MessageReceived).Subject {
			case "msg 0":
				return nil, errors.New("verifier unavailable")
			case "msg 1":
				panic("bug in handler")
			}
			return []gateway.Payload{&gateway.MessageRouted{Offices: []string{"x"}, DecidedBy: "rules"}}, nil
		}}
	runPipeline(t, e, flaky)
	failed := waitFor(t, e.log, "ProcessingFailed", 2)
	waitFor(t, e.log, "MessageRouted", 1) // the stream moved on past the poison
	reg := gateway.NewRegistry()
	for _, f := range failed {
		p, err := reg.Decode(&f)
		if err != nil {
			t.Fatal(err)
		}
		pf := p.(*gateway.ProcessingFailed)
		if pf.Handler != "flaky" || pf.Attempts != 3 || pf.Error == "" {
			t.Fatalf("poison record: %+v", pf)
		}
	}
	if n := calls.Load(); n != 7 { // 3 attempts each for two poisoned messages, 1 for the good one
		t.Fatalf("handler ran %d times, want 7", n)
	}
}

func TestProjectionRebuildIsIdentical(t *testing.T) {
	e := newEnv(t)
	receive(t, e.log, 20)
	runPipeline(t, e, routeAll)
	waitFor(t, e.log, "MessageRouted", 20)
	r := &projection.Runner{Log: e.log, DB: e.db, Registry: gateway.NewRegistry()}
	ctx := context.Background()
	if err := r.CatchUp(ctx, projection.Messages{}); err != nil {
		t.Fatal(err)
	}
	before, err := projection.Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	// Applying again must change nothing: positions live in the same transaction.
	if err := r.CatchUp(ctx, projection.Messages{}); err != nil {
		t.Fatal(err)
	}
	if again, _ := projection.Dump(ctx, e.db); again != before {
		t.Fatal("catching up twice changed the read model")
	}
	if err := r.Rebuild(ctx, projection.Messages{}); err != nil {
		t.Fatal(err)
	}
	if empty, _ := projection.Dump(ctx, e.db); empty != "" {
		t.Fatal("rebuild did not drop the read model")
	}
	if err := r.CatchUp(ctx, projection.Messages{}); err != nil {
		t.Fatal(err)
	}
	after, _ := projection.Dump(ctx, e.db)
	if after != before {
		t.Fatalf("rebuilt read model differs:\nbefore %s\nafter  %s", before, after)
	}
	rows, _ := projection.ListMessages(ctx, e.db, 100)
	if len(rows) != 20 || rows[0].State != "routed" || rows[0].Offices != "demo" {
		t.Fatalf("read model: %d rows, first %+v", len(rows), rows[0])
	}
}

// With OffsetWriteInterval the positions are written behind, and the ones
// reached are written when Run ends, so a clean stop redoes nothing.
func TestOffsetsWrittenBehindAndAtStop(t *testing.T) {
	e := newEnv(t)
	receive(t, e.log, 4)
	p, err := pipeline.New(pipeline.Config{Log: e.log, Offsets: e.off, Registry: gateway.NewRegistry(), OffsetWriteInterval: time.Hour}, routeAll)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, e.log, "MessageRouted", 4)
	group := "pipeline/route-all/MessageReceived"
	// The last position is saved after the last acknowledgement; give the
	// handler's goroutine its moment, then nothing may have been written.
	time.Sleep(100 * time.Millisecond)
	if n, err := e.off.Load(context.Background(), group, 0); err != nil || n != 0 {
		t.Fatalf("position %d written before the interval (%v)", n, err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	end, _ := e.log.End(context.Background(), 0)
	n, err := e.off.Load(context.Background(), group, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The routed events are after the last MessageReceived: the position
	// is at least past every message handled.
	if n < 4 || n > end {
		t.Fatalf("position after stop = %d, want the handled messages' (≥ 4, ≤ %d)", n, end)
	}
}
