//go:build integration

package kafka_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
)

func brokerScript(t *testing.T, cmd string) {
	t.Helper()
	c := exec.Command("bash", "broker.sh", cmd)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		t.Fatalf("broker.sh %s: %v", cmd, err)
	}
}

// TestBrokerRestart stops and starts the broker while eight appenders write.
// An appender retries a failed append with the same event (as an adapter
// does until it may acknowledge its sender). Every append that returned
// success must be in the log afterwards, exactly once, and the log must
// verify against its signed checkpoints.
func TestBrokerRestart(t *testing.T) {
	topic := uniqueTopic("restart")
	ctx := context.Background()
	l, err := kafkalog.Open(ctx, config(t, topic, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var mu sync.Mutex
	acked := map[string]bool{}
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := eventstore.Event{ID: fmt.Sprintf("r%d-%d", w, i), Tenant: "t1", Stream: fmt.Sprintf("w%d", w),
					Type: "T", Version: 1, Data: []byte(strconv.Itoa(i))}
				for {
					actx, cancel := context.WithTimeout(ctx, 20*time.Second)
					_, err := l.Append(actx, e)
					cancel()
					if err == nil {
						mu.Lock()
						acked[e.ID] = true
						mu.Unlock()
						break
					}
					failures.Add(1)
					select {
					case <-stop:
						return // never acknowledged: may or may not be stored
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		})
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "appends before the restart", func() bool { return ackedCount() >= 300 })
	brokerScript(t, "stop")
	before := ackedCount()
	brokerScript(t, "start")
	waitFor(t, "appends after the restart", func() bool { return ackedCount() >= before+300 })
	close(stop)
	wg.Wait()
	t.Logf("%d appends acknowledged, %d failed attempts during the restart", ackedCount(), failures.Load())

	// A fresh process folds the topic from the start.
	l2, err := kafkalog.Open(ctx, config(t, topic, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	// The notary recovers from the restart: it signs every partition's head.
	for p := range int32(4) {
		end, _ := l2.End(ctx, p)
		waitFor(t, fmt.Sprintf("a checkpoint of partition %d at %d", p, end), func() bool {
			cps, err := l2.Checkpoints(ctx, p)
			return err == nil && len(cps) > 0 && cps[len(cps)-1].Size == end
		})
	}
	stored := map[string]int{}
	for p := range int32(4) {
		evs, err := l2.Read(ctx, p, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			stored[e.ID]++
		}
		verifyPartition(t, l2, p, evs)
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Fatalf("acknowledged event %s stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n != 1 {
			t.Fatalf("event %s stored %d times", id, n)
		}
	}
}

func verifyPartition(t *testing.T, l *kafkalog.Log, p int32, evs []eventstore.Event) {
	t.Helper()
	cps, err := l.Checkpoints(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := integrity.NewVerifier(testKey.Public(), l.LogID(), p, cps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := v.Add(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := v.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("partition %d: %d events verified, %d checkpoints, %d not yet covered", p, sum.Events, sum.Checkpoints, sum.Uncovered)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
