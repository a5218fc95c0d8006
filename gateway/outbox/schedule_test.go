package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// stepEffect reads each payload as one scripted step.
type stepEffect struct{ Effect }

type stepPayload struct {
	gateway.ReplyFailed
	step Step
}

func (stepEffect) Kind() string { return "test" }
func (stepEffect) Steps(_ *eventstore.Event, p gateway.Payload) []Step {
	if s, ok := p.(*stepPayload); ok {
		return []Step{s.step}
	}
	return nil
}

// TestScheduleNeverGoesBack: the schedule keeps the latest attempt, a done
// effect stays done, and kinds do not see each other's rows.
func TestScheduleNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s := Schedule{Effect: stepEffect{}}
	tests := []struct {
		step      Step
		state     string
		attempt   int
		retryAt   int64
		lastError string
	}{
		{Step{ID: "x", State: StatePending}, StatePending, 0, 0, ""},
		{Step{ID: "x", State: StateRetry, Attempt: 2, RetryAt: at, Error: "e2"}, StateRetry, 2, at.UnixMilli(), "e2"},
		{Step{ID: "x", State: StateRetry, Attempt: 1, RetryAt: at.Add(-time.Minute), Error: "e1"}, StateRetry, 2, at.UnixMilli(), "e2"}, // older attempt, seen late
		{Step{ID: "x", State: StatePending}, StateRetry, 2, at.UnixMilli(), "e2"},
		{Step{ID: "x", State: StateDone, Attempt: 3}, StateDone, 3, 0, "e2"},
		{Step{ID: "x", State: StateFailed, Attempt: 4, Error: "late"}, StateDone, 3, 0, "e2"}, // done stays done
	}
	for i, tt := range tests {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Setup(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, tx, &eventstore.Event{Tenant: "t", Stream: "msg-1"}, &stepPayload{step: tt.step}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		st, err := GetStatus(ctx, db, "test", "t", "x")
		if err != nil {
			t.Fatal(err)
		}
		if st.State != tt.state || st.Attempt != tt.attempt || st.RetryAtMillis != tt.retryAt || st.LastError != tt.lastError || st.Stream != "msg-1" {
			t.Fatalf("step %d: %+v, want %s attempt %d retry %d error %q", i, st, tt.state, tt.attempt, tt.retryAt, tt.lastError)
		}
	}
	if due, err := Due(ctx, db, "test", at.Add(time.Hour).UnixMilli(), 10); err != nil || len(due) != 0 {
		t.Fatalf("done effect is due: %+v %v", due, err)
	}
	if rows, err := Dump(ctx, db, "other"); err != nil || len(rows) != 0 {
		t.Fatalf("another kind sees %+v %v", rows, err)
	}
}

// TestReopenAfterPermanentFailure: a retry at the attempt of a permanent
// failure (a resend a person ordered) reopens the effect in the schedule and
// in the story the Scheduler folds; at any other attempt, or after success,
// it changes nothing.
func TestReopenAfterPermanentFailure(t *testing.T) {
	ctx := context.Background()
	db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s := Schedule{Effect: stepEffect{}}
	steps := []struct {
		step    Step
		state   string
		attempt int
	}{
		{Step{ID: "x", State: StateRetry, Attempt: 1, RetryAt: at, Error: "503"}, StateRetry, 1},
		{Step{ID: "x", State: StateFailed, Attempt: 2, Error: "may have been sent"}, StateFailed, 2},
		{Step{ID: "x", State: StateRetry, Attempt: 1, RetryAt: at, Error: "stale"}, StateFailed, 2}, // an earlier attempt: nothing
		{Step{ID: "x", State: StateRetry, Attempt: 2, RetryAt: at, Error: "resend ordered"}, StateRetry, 2},
		{Step{ID: "x", State: StateDone, Attempt: 3}, StateDone, 3},
		{Step{ID: "x", State: StateRetry, Attempt: 3, RetryAt: at, Error: "late"}, StateDone, 3}, // done stays done
	}
	var hist []Decoded
	sched := &Scheduler{effect: stepEffect{}}
	for i, tt := range steps {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Setup(ctx, tx); err != nil {
			t.Fatal(err)
		}
		ev := &eventstore.Event{Tenant: "t", Stream: "msg-1"}
		p := &stepPayload{step: tt.step}
		if err := s.Apply(ctx, tx, ev, p); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		st, err := GetStatus(ctx, db, "test", "t", "x")
		if err != nil {
			t.Fatal(err)
		}
		if st.State != tt.state || st.Attempt != tt.attempt {
			t.Fatalf("step %d: schedule %+v, want %s attempt %d", i, st, tt.state, tt.attempt)
		}
		hist = append(hist, Decoded{Event: ev, Payload: p})
		f := sched.fold(hist, "x")
		wantDone := tt.state == StateDone || tt.state == StateFailed
		if f.done != wantDone || f.attempts != tt.attempt {
			t.Fatalf("step %d: folded %+v, want done %v attempts %d", i, f, wantDone, tt.attempt)
		}
	}
}
