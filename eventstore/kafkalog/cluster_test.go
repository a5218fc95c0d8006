package kafkalog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

func appendStreams(t *testing.T, ctx context.Context, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(ctx, eventstore.Event{ID: fmt.Sprintf("e%d", i), Tenant: "t", Stream: fmt.Sprintf("s%d", i), Type: "Note", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFollowDeliversEveryPartition checks that two processes following the
// log each get every event once, where a group subscription splits them.
func TestFollowDeliversEveryPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "follow-" + time.Now().Format("150405.000000")
	logs := make([]*Log, 2)
	for i := range logs {
		l, err := Open(ctx, testConfig(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	const n = 40
	appendStreams(t, ctx, logs[0], n)
	for i, l := range logs {
		var mu sync.Mutex
		seen := map[string]int{}
		fctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- l.Follow(fctx, func(context.Context, int32) (int64, error) { return 0, nil }, func(_ context.Context, e eventstore.Event) error {
				mu.Lock()
				defer mu.Unlock()
				seen[e.ID]++
				if len(seen) == n {
					stop()
				}
				return nil
			})
		}()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("process %d: saw %d of %d events", i, len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("process %d: %s delivered %d times", i, id, c)
			}
		}
	}
}

// TestOffsetsOnCluster checks that handler positions saved by one process
// are what another loads, per group and partition.
func TestOffsetsOnCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "offsets-" + time.Now().Format("150405.000000")
	a, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.Offsets().Load(ctx, "h", 1); err != nil || got != 0 {
		t.Fatalf("unknown group: %d, %v; want 0", got, err)
	}
	for _, c := range []struct {
		group string
		p     int32
		next  int64
	}{{"h", 1, 17}, {"h", 2, 5}, {"other", 1, 3}, {"h", 1, 18}} {
		if err := a.Offsets().Save(ctx, c.group, c.p, c.next); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		group string
		p     int32
		want  int64
	}{{"h", 1, 18}, {"h", 2, 5}, {"other", 1, 3}, {"h", 3, 0}} {
		if got, err := b.Offsets().Load(ctx, c.group, c.p); err != nil || got != c.want {
			t.Errorf("%s/%d: got %d, %v; want %d", c.group, c.p, got, err, c.want)
		}
	}
}

// TestOwnershipMovesOnLeave checks that two members share the partitions
// with one owner each, and that the survivor owns all once the other leaves.
func TestOwnershipMovesOnLeave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := "owner-" + time.Now().Format("150405.000000")
	l, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, b := l.Ownership("sched"), l.Ownership("sched")
	actx, stopA := context.WithCancel(ctx)
	go a.Run(actx)
	go b.Run(ctx)
	waitFor(t, "a shared assignment", func() bool { return a.Owned()+b.Owned() == 4 && a.Owned() > 0 && b.Owned() > 0 })
	for i := range 20 {
		s := fmt.Sprintf("s%d", i)
		if a.Owns("t", s) == b.Owns("t", s) {
			t.Errorf("stream %s: owned by both or neither", s)
		}
	}
	stopA()
	waitFor(t, "the survivor owning every partition", func() bool { return a.Owned() == 0 && b.Owned() == 4 })
}
