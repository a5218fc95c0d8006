//go:build integration

package kafka_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

const scaleoutPartitions = 6

// serveNode is one `poststelle serve` process of an installation on Kafka.
type serveNode struct {
	config string
	api    string
	smtp   string
	proc   *servetest.Process
}

// kafkaConfig writes the configuration file of one node: the log on the
// broker (topic and consumer-group prefix shared by every node), the data
// directory (state database, blobs, key) shared, its own loopback ports.
func kafkaConfig(t *testing.T, dir, dataDir, topic string, partitions int) *serveNode {
	t.Helper()
	n := &serveNode{config: filepath.Join(dir, "poststelle.yaml"), api: servetest.FreeAddr(t), smtp: servetest.FreeAddr(t)}
	conf := fmt.Sprintf(`data_dir: %s
eventstore:
  backend: kafka
  kafka: {brokers: [%s], topic: %s, partitions: %d, group: %s, checkpoint_interval: 200ms}
smtp: {listen: %q, hostname: gw.kreis.example, accept_all: true}
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
`, dataDir, strings.Join(brokers(t), ", "), topic, partitions, topic, n.smtp, n.api, servetest.FreeAddr(t), servetest.FreeAddr(t))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// streamMessage is the i-th message a test sends, tagged so that tests
// sharing a broker never see each other's.
func streamMessage(tag string, i int) []byte {
	return fmt.Appendf(nil, "From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: %s %d\r\n"+
		"Message-ID: <%s-%d@example.org>\r\n\r\nAntrag %d.\r\n", tag, i, tag, i, i)
}

// perStream counts a type's events per stream, read with log replay.
func perStream(t *testing.T, config, typ string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range servetest.Replay(t, bin, config, typ) {
		n[r.Stream]++
	}
	return n
}

// demoInbox lists the demo office's queue over the API of the node at api.
func demoInbox(t *testing.T, dataDir, api string) []string {
	t.Helper()
	login := servetest.DemoLogin(t, dataDir)
	user, pw := login.User, login.Password
	req, _ := http.NewRequest("GET", "http://"+api+"/offices/demo/messages?limit=1000", nil)
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Messages []struct {
			Stream string `json:"stream"`
		} `json:"messages"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /offices/demo/messages: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	var streams []string
	for _, m := range list.Messages {
		streams = append(streams, m.Stream)
	}
	return streams
}

// TestScaleOut runs one installation as three `poststelle serve` processes
// on the broker, one consumer group for each handler and projection, one
// shared state database. Messages arrive over SMTP at all three while one
// process is SIGKILLed mid-stream; its senders go to the others. Exactly
// once: every message is recorded once, routed once and verified once (the
// handlers' effects in the log), and the office inbox, a projection that
// keeps its partition positions in the same transaction as its rows, lists
// each exactly once. The inbox can only fill completely if the dead
// process's partitions moved to the survivors, which resume from the
// positions stored with the read model.
func TestScaleOut(t *testing.T) {
	topic := uniqueTopic("scaleout")
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	var nodes []*serveNode
	for i := range 3 {
		n := kafkaConfig(t, filepath.Join(root, fmt.Sprintf("node%d", i)), dataDir, topic, scaleoutPartitions)
		// One after the other: the first start makes the key, the demo
		// login and the office IMAP certificate the others then read.
		n.proc = servetest.Start(t, bin, n.config, n.api)
		nodes = append(nodes, n)
	}

	const total = 600
	var dead atomic.Bool // node 0 was killed
	var acked atomic.Int64
	next := make(chan int, total)
	for i := range total {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := range 6 {
		wg.Go(func() {
			for i := range next {
				for attempt := 0; ; attempt++ {
					n := nodes[(i+attempt)%3]
					if n == nodes[0] && dead.Load() {
						continue
					}
					if _, err := servetest.SendSMTP(n.smtp, "buerger@example.org", "poststelle@kreis.example", streamMessage(topic, i)); err == nil {
						acked.Add(1)
						break
					}
					if attempt > 20 {
						errs <- fmt.Errorf("sender %d: message %d not acknowledged after %d attempts", w, i, attempt)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	servetest.WaitFor(t, "a third of the messages acknowledged", func() bool { return acked.Load() >= total/3 })
	dead.Store(true)
	nodes[0].proc.Kill(t)
	killedAt := acked.Load()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	survivor := nodes[1]
	received := perStream(t, survivor.config, "MessageReceived")
	ids := map[string]int{}
	for _, r := range servetest.Replay(t, bin, survivor.config, "MessageReceived") {
		ids[r.Payload.(*gateway.MessageReceived).SenderMessageID]++
	}
	if len(ids) != total || len(received) != total {
		t.Fatalf("%d distinct messages in %d streams recorded, want %d", len(ids), len(received), total)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s recorded %d times", id, n)
		}
	}
	for _, typ := range []string{"MessageRouted", "SignaturesVerified"} {
		var got map[string]int
		servetest.WaitFor(t, "every message "+typ, func() bool { got = perStream(t, survivor.config, typ); return len(got) >= total })
		for s, n := range got {
			if n != 1 || received[s] != 1 {
				t.Fatalf("%s: stream %s has %d, of a message recorded %d times", typ, s, n, received[s])
			}
		}
	}
	for _, n := range nodes[1:] {
		var inbox []string
		servetest.WaitFor(t, "every message in the inbox at "+n.api, func() bool { inbox = demoInbox(t, dataDir, n.api); return len(inbox) >= total })
		seen := map[string]bool{}
		for _, s := range inbox {
			if seen[s] || received[s] != 1 {
				t.Fatalf("inbox lists %s twice or without a record", s)
			}
			seen[s] = true
		}
		if len(inbox) != total {
			t.Fatalf("inbox lists %d messages, want %d", len(inbox), total)
		}
	}
	// The survivors' notaries sign the dead node's partitions too.
	var verified string
	servetest.WaitFor(t, "log verify to pass", func() bool {
		code, out, errs := servetest.CLI(t, bin, survivor.config, "log", "verify")
		verified = out + errs
		return code == 0
	})
	t.Logf("log verify:\n%s", verified)
	t.Logf("node 0 killed after %d of %d acknowledged; every message recorded, routed, verified and listed once", killedAt, total)
	for _, n := range nodes[1:] {
		n.proc.Stop(t)
	}
}
