//go:build integration

package kafka_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

func brokerScript(t *testing.T, cmd string) {
	t.Helper()
	c := exec.Command("bash", "broker.sh", cmd)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		t.Fatalf("broker.sh %s: %v", cmd, err)
	}
}

// TestBrokerRestart stops and starts the broker while eight SMTP senders
// deliver to `poststelle serve` on Kafka. A sender sends a message again
// after any failure until it gets a 250, as a sending MTA does. Every
// acknowledged message must be in the log afterwards exactly once, under
// the id its 250 named, no message twice, every message routed once after
// the restart, and `poststelle log verify` must find the log intact once
// the notary has signed again.
func TestBrokerRestart(t *testing.T) {
	topic := uniqueTopic("restart")
	dir := t.TempDir()
	n := kafkaConfig(t, dir, filepath.Join(dir, "data"), topic, 4)
	p := servetest.Start(t, bin, n.config, n.api)

	var mu sync.Mutex
	acked := map[string]string{} // Message-ID → event id
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				tag := fmt.Sprintf("%s-w%d", topic, w)
				for {
					select {
					case <-stop:
						return // never acknowledged: may or may not be stored
					default:
					}
					r, err := servetest.SendSMTP(n.smtp, "buerger@example.org", "poststelle@kreis.example", streamMessage(tag, i))
					if err == nil && r.EventID != "" {
						mu.Lock()
						acked[fmt.Sprintf("<%s-%d@example.org>", tag, i)] = r.EventID
						mu.Unlock()
						break
					}
					failures.Add(1)
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "deliveries before the restart", func() bool { return ackedCount() >= 150 })
	brokerScript(t, "stop")
	before := ackedCount()
	brokerScript(t, "start")
	waitFor(t, "deliveries after the restart", func() bool { return ackedCount() >= before+150 })
	close(stop)
	wg.Wait()
	t.Logf("%d messages acknowledged, %d failed attempts during the restart", ackedCount(), failures.Load())

	stored := map[string]int{}
	ids := map[string]string{}
	for _, r := range servetest.Replay(t, bin, n.config, "MessageReceived") {
		id := r.Payload.(*gateway.MessageReceived).SenderMessageID
		stored[id]++
		ids[id] = r.ID
	}
	for id, ev := range acked {
		if stored[id] != 1 || ids[id] != ev {
			t.Fatalf("acknowledged message %s (as %s) stored %d times", id, ev, stored[id])
		}
	}
	for id, k := range stored {
		if k != 1 {
			t.Fatalf("message %s stored %d times", id, k)
		}
	}
	// The pipeline's consumer groups recover too: every message is routed,
	// once.
	streams := perStream(t, n.config, "MessageReceived")
	var routed map[string]int
	waitFor(t, "every message routed", func() bool { routed = perStream(t, n.config, "MessageRouted"); return len(routed) >= len(streams) })
	for s, k := range routed {
		if k != 1 || streams[s] != 1 {
			t.Fatalf("stream %s routed %d times, recorded %d times", s, k, streams[s])
		}
	}
	// The notary recovers from the restart: once it signed every head,
	// log verify finds every partition intact.
	var out, errs string
	waitFor(t, "log verify to pass", func() bool {
		var code int
		code, out, errs = servetest.CLI(t, bin, n.config, "log", "verify")
		return code == 0
	})
	t.Logf("log verify:\n%s%s", out, errs)
	p.Stop(t)
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
