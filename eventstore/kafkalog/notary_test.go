package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// slowNotary is an interval no test outlives: a log with it never signs on
// a tick, so every checkpoint it writes comes from a hand-over or Close.
const slowNotary = time.Hour

// afterLag is a verification time at which an uncovered tail of a log with
// slowNotary has outlived its CheckpointLag (two intervals).
func afterLag() time.Time { return time.Now().Add(3 * slowNotary) }

func openWith(t *testing.T, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Topic, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// crash stops l as a killed process stops: at once, without the final
// checkpoints (which need l.ctx), leaving the topics as they are.
func crash(l *Log) {
	l.closed.Do(func() {
		l.cancel()
		l.wg.Wait()
		close(l.done)
	})
}

// appendSpread appends n events into streams spread over the partitions and
// returns the partitions they went to.
func appendSpread(t *testing.T, l *Log, prefix string, n int) []int32 {
	t.Helper()
	var parts []int32
	for i := range n {
		res, err := l.Append(context.Background(), tev(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("s%d", i), "x"))
		if err != nil {
			t.Fatal(err)
		}
		if p := res[0].Position.Partition; !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	return parts
}

// verifyAt verifies the topic as log verify --kafka does, with a reader
// configured with slowNotary, at the given time.
func verifyAt(t *testing.T, topic string, now time.Time) (integrity.LogSummary, error) {
	t.Helper()
	r, err := OpenReader(context.Background(), Config{Brokers: brokers(), Topic: topic, CheckpointInterval: slowNotary})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return integrity.VerifyLogWith(context.Background(), r, testKey.Public(), integrity.VerifyOptions{Now: func() time.Time { return now }})
}

func uncovered(s integrity.LogSummary) int64 {
	var n int64
	for _, p := range s.Partitions {
		n += p.Uncovered
	}
	return n
}

// TestCloseSignsFinalCheckpoints: a gateway closed cleanly leaves every
// event covered, so log verify passes long after the lag has expired.
func TestCloseSignsFinalCheckpoints(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	l := openWith(t, cfg)
	if parts := appendSpread(t, l, "e", 20); len(parts) < 2 {
		t.Fatalf("events went to %d partitions; the test needs several", len(parts))
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("close took %s", time.Since(start).Round(time.Millisecond))
	s, err := verifyAt(t, topic, afterLag())
	if err != nil {
		t.Fatalf("verify after a clean close: %v", err)
	}
	if s.Events != 20 || uncovered(s) != 0 {
		t.Fatalf("verify after a clean close: %d events, %d uncovered; want 20, 0", s.Events, uncovered(s))
	}
}

// TestCrashLeavesTailUncovered: a gateway that stops without Close leaves
// its tail uncovered; log verify reports it while it is young and fails it
// once the lag has expired.
func TestCrashLeavesTailUncovered(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	l := openWith(t, cfg)
	appendSpread(t, l, "e", 20)
	crash(l)
	s, err := verifyAt(t, topic, time.Now())
	if err != nil {
		t.Fatalf("verify a young uncovered tail: %v", err)
	}
	if s.Events != 20 || uncovered(s) != 20 {
		t.Fatalf("verify a young uncovered tail: %d events, %d uncovered; want 20, 20", s.Events, uncovered(s))
	}
	_, err = verifyAt(t, topic, afterLag())
	var pr *integrity.Problem
	if !errors.As(err, &pr) || !strings.Contains(pr.Reason, "after the newest checkpoint") {
		t.Fatalf("verify an expired uncovered tail: %v, want a Problem about events after the newest checkpoint", err)
	}
}

// TestNewOwnerCoversTail: when a crashed gateway's partitions move to
// another process, that process's notary covers the tail it did not write
// on its first tick.
func TestNewOwnerCoversTail(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	w1 := openWith(t, cfg)
	appendSpread(t, w1, "e", 20)
	crash(w1)
	if _, err := verifyAt(t, topic, afterLag()); err == nil {
		t.Fatal("the crashed gateway's tail passed verification before any other notary ran")
	}
	w2 := openWith(t, testConfig(topic)) // the default test interval, 100 ms
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := verifyAt(t, topic, afterLag())
		if err == nil {
			if s.Events != 20 || uncovered(s) != 0 {
				t.Fatalf("after the takeover: %d events, %d uncovered; want 20, 0", s.Events, uncovered(s))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new owner did not cover the tail within 30 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = w2
}

// owned lists the partitions l's notary owns now.
func owned(l *Log) []int32 {
	st := l.notaries
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []int32
	for p, o := range st.owned {
		if o {
			out = append(out, int32(p))
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRebalanceHandsOverSigned: a notary that gives partitions up at a
// rebalance signs their heads first, so that the events of its last
// interval do not wait for the new owner's first tick.
func TestRebalanceHandsOverSigned(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	w1 := openWith(t, cfg)
	waitFor(t, "the first gateway's notary owns every partition", func() bool { return len(owned(w1)) == int(cfg.Partitions) })
	appendSpread(t, w1, "e", 20)
	if _, err := verifyAt(t, topic, afterLag()); err == nil {
		t.Fatal("the tail passed verification before any checkpoint was signed")
	}
	w2 := openWith(t, cfg)
	waitFor(t, "the second gateway's notary owns a partition", func() bool { return len(owned(w2)) > 0 })
	s, err := verifyAt(t, topic, afterLag())
	if err != nil {
		t.Fatalf("verify after the rebalance: %v", err)
	}
	if s.Events != 20 || uncovered(s) != 0 {
		t.Fatalf("after the rebalance: %d events, %d uncovered; want 20, 0", s.Events, uncovered(s))
	}
}

// TestFinalCheckpointsCoverWrites: Close's last pass covers the partitions
// this process wrote to, owned or not, so an appender whose notary never
// got an assignment (it closed too soon, or lost every partition to others)
// leaves nothing uncovered. The pass runs here while the notary, which
// never ticks, owns everything and hands nothing over.
func TestFinalCheckpointsCoverWrites(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	l := openWith(t, cfg)
	waitFor(t, "the notary owns every partition", func() bool { return len(owned(l)) == int(cfg.Partitions) })
	parts := appendSpread(t, l, "e", 20)
	w := l.checkpointWriter()
	defer w.Close()
	l.finalCheckpoints(w)
	s, err := verifyAt(t, topic, afterLag())
	if err != nil {
		t.Fatalf("verify after the final pass: %v", err)
	}
	if s.Events != 20 || uncovered(s) != 0 {
		t.Fatalf("after the final pass: %d events, %d uncovered; want 20, 0", s.Events, uncovered(s))
	}
	for p := range cfg.Partitions {
		cps, err := l.Checkpoints(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if want := slices.Contains(parts, p); (len(cps) == 1) != want {
			t.Fatalf("partition %d: %d checkpoints; written to: %v", p, len(cps), want)
		}
	}
}

// TestCloseIsBounded: Close returns within CloseTimeout (plus the
// consumer group's own leave) when the cluster has gone away.
func TestCloseIsBounded(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := testConfig(topicName(t))
	cfg.Brokers = c.ListenAddrs()
	cfg.CheckpointInterval = slowNotary
	cfg.CloseTimeout = time.Second
	l := openWith(t, cfg)
	appendSpread(t, l, "e", 4)
	c.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		l.Close()
		close(done)
	}()
	select {
	case <-done:
		t.Logf("close without a cluster took %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(cfg.CloseTimeout + 15*time.Second):
		t.Fatal("Close hung without a cluster")
	}
}

// TestCloseDuringAppends closes a log while appenders are busy: the
// producer's last requests complete before the final checkpoints, so every
// event in the topic is covered, the appends that succeeded among them.
func TestCloseDuringAppends(t *testing.T) {
	topic := topicName(t)
	cfg := testConfig(topic)
	cfg.CheckpointInterval = slowNotary
	l := openWith(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for a := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := l.Append(context.Background(), tev(fmt.Sprintf("e-%d-%d", a, i), fmt.Sprintf("s-%d", a), "x"))
				if err != nil {
					if !errors.Is(err, eventstore.ErrClosed) {
						t.Errorf("appender %d: %v", a, err)
					}
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		})
	}
	waitFor(t, "a few appends succeeded", func() bool { mu.Lock(); defer mu.Unlock(); return acked >= 50 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s, err := verifyAt(t, topic, afterLag())
	if err != nil {
		t.Fatalf("verify after closing during appends: %v", err)
	}
	if s.Events < int64(acked) || uncovered(s) != 0 {
		t.Fatalf("after closing during appends: %d events (%d acknowledged), %d uncovered; want all covered", s.Events, acked, uncovered(s))
	}
	t.Logf("%d events, %d acknowledged", s.Events, acked)
}
