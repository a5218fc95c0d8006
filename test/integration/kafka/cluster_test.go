//go:build integration

package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// clusterBlobs is the blob store section every node of the cluster test
// shares: the S3 server run.sh started (SeaweedFS), one prefix per test,
// encrypted at rest under the cluster's one KEK (root/keys/blob-kek, which
// clusterKeys writes: serve never makes one for S3).
func clusterBlobs(t *testing.T, root string) string {
	t.Helper()
	need := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set: run test/integration/kafka/run.sh, which starts the S3 server", k)
		}
		return v
	}
	return fmt.Sprintf("blobs:\n  backend: s3\n  kek_file: %s\n  s3: {endpoint: %q, bucket: %q, prefix: %q, access_key_file: %s, secret_key_file: %s}\n",
		clusterKEK(root), need("S3_ENDPOINT"), need("S3_BUCKET"), filepath.Base(root)+"/", need("S3_ACCESS_KEY_FILE"), need("S3_SECRET_KEY_FILE"))
}

func clusterKEK(root string) string { return filepath.Join(root, "keys", "blob-kek") }

// clusterKeys makes what every node of the cluster shares besides the log
// and the bucket: the KEK and the offices file (the office "demo" with one
// member, and an admin).
func clusterKeys(t *testing.T, root string) servetest.Staff {
	t.Helper()
	servetest.WriteKEK(t, clusterKEK(root))
	return servetest.WriteStaff(t, filepath.Join(root, "staff"))
}

// clusterNode is one gateway of the cluster test, with its own data
// directory (state database, IMAP certificate) and ports; the office
// member's login is the cluster's one offices file's.
type clusterNode struct {
	*serveNode
	dataDir, imap string
	user, pw      string
}

func clusterConfig(t *testing.T, root string, i int, brokers []string, topic string, staff servetest.Staff) *clusterNode {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprintf("node%d", i))
	n := &clusterNode{serveNode: &serveNode{config: filepath.Join(dir, "poststelle.yaml"), api: servetest.FreeAddr(t), smtp: servetest.FreeAddr(t)},
		dataDir: filepath.Join(dir, "data"), imap: servetest.FreeAddr(t), user: staff.Member.User, pw: staff.Member.Password}
	conf := fmt.Sprintf(`data_dir: %s
keys: {signing_key: %s}
offices: %s
routing: {rules: %s}
eventstore:
  backend: kafka
  kafka: {brokers: [%s], topic: %s, partitions: %d, replication_factor: 3, group: %s, checkpoint_interval: 300ms}
%ssmtp: {listen: %q, hostname: gw%d.kreis.example, accept_all: true}
office_api: {listen: %q}
office_imap: {listen: %q, tls: none}
smtp_submission: {listen: %q}
`, n.dataDir, filepath.Join(root, "keys", "gateway.key"), staff.OfficesFile, staff.RulesFile, strings.Join(brokers, ", "), topic, scaleoutPartitions, topic,
		clusterBlobs(t, root), n.smtp, i, n.api, n.imap, servetest.FreeAddr(t))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *clusterNode) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.api+path, nil)
	req.SetBasicAuth(n.user, n.pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// queue is the demo office's queue at n as "seq stream" lines.
func (n *clusterNode) queue(t *testing.T) []string {
	t.Helper()
	code, body := n.get(t, "/offices/demo/messages?limit=1000")
	if code != http.StatusOK {
		return nil
	}
	var list struct {
		Messages []struct {
			Seq    int64  `json:"seq"`
			Stream string `json:"stream"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list.Messages {
		out = append(out, fmt.Sprintf("%d %s", m.Seq, m.Stream))
	}
	return out
}

// uids is the demo mailbox at n over IMAP as "uid message-id" lines.
func (n *clusterNode) uids(t *testing.T) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(n.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(n.user, n.pw).Wait(); err != nil {
		t.Fatalf("imap login at %s: %v", n.imap, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("imap fetch at %s: %v", n.imap, err)
	}
	var out []string
	for _, m := range msgs {
		subject := ""
		if m.Envelope != nil {
			subject = m.Envelope.Subject
		}
		out = append(out, fmt.Sprintf("%d %s", m.UID, subject))
	}
	return out
}

func clusterCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"cluster.sh"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// consoleQueue reads the office's queue topic with Kafka's own
// kafka-console-consumer, as a department would, until it has want records.
func consoleQueue(t *testing.T, brokers []string, topic string, want int) []queueRec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cp := strings.TrimSpace(clusterCmd(t, "classpath"))
	cmd := exec.CommandContext(ctx, "java", "-Xmx256m", "-cp", cp, "-Dlog4j2.configurationFile=log4j2.properties", "-Dlog4j2.level=WARN",
		"org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", strings.Join(brokers, ","),
		"--topic", topic, "--from-beginning", "--max-messages", fmt.Sprint(want), "--timeout-ms", "60000",
		"--group", "department-"+topic)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka-console-consumer on %s: %v\n%s", topic, err, stderr.String())
	}
	var recs []queueRec
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue // the tool's own log lines
		}
		var r struct {
			Seq    int64  `json:"seq"`
			Stream string `json:"stream"`
			Links  struct {
				Raw string `json:"raw"`
			} `json:"links"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("queue record %q: %v", sc.Text(), err)
		}
		recs = append(recs, queueRec{seq: r.Seq, stream: r.Stream, raw: r.Links.Raw})
	}
	return recs
}

// erasedBlobs finds log verify --blobs's count of erased blobs.
var erasedBlobs = regexp.MustCompile(`(\d+) blobs erased as ContentErased events record`)

// queueRec is what the test reads of a queue topic's record.
type queueRec struct {
	seq         int64
	stream, raw string
}

// TestCluster runs one installation as three `poststelle serve` processes,
// each with its own state database, on three KRaft brokers (replication
// factor 3, min.insync.replicas 2) started by cluster.sh. Messages arrive
// over SMTP at all three; one gateway and one broker are SIGKILLed during
// intake. Then: every acknowledged message is recorded, routed, verified and
// queued once; every node lists the same queue with the same seq and IMAP
// UIDs, including the killed one once restarted with its stale state;
// a department's kafka-console-consumer reads each message once in queue
// order; every node serves every message's bytes, encrypted at rest under
// the cluster's one KEK; a message erased through one node's admin API is
// gone (410) at every node; log verify --blobs passes from every node's
// configuration, counting the erased blobs.
func TestCluster(t *testing.T) {
	v := os.Getenv("KAFKA_CLUSTER")
	if v == "" {
		t.Fatal("KAFKA_CLUSTER is not set: run test/integration/kafka/run.sh (it starts cluster.sh)")
	}
	brokers := strings.Split(v, ",")
	topic := uniqueTopic("cluster")
	root := t.TempDir()
	staff := clusterKeys(t, root)
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = clusterConfig(t, root, i, brokers, topic, staff)
		// One after the other: the first start makes the shared key.
		nodes[i].proc = servetest.Start(t, bin, nodes[i].config, nodes[i].api)
	}
	start := time.Now()

	const total = 240
	var dead atomic.Bool
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
					if attempt > 60 {
						errs <- fmt.Errorf("sender %d: message %d not acknowledged after %d attempts", w, i, attempt)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
	}
	servetest.WaitFor(t, "a third of the messages acknowledged", func() bool { return acked.Load() >= total/3 })
	dead.Store(true)
	nodes[0].proc.Kill(t)
	clusterCmd(t, "kill", "2")
	killedAt := acked.Load()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	intake := time.Since(start)
	clusterCmd(t, "start-one", "2")

	survivor := nodes[1]
	received := perStream(t, survivor.config, "MessageReceived")
	ids := map[string]int{}
	for _, r := range servetest.Replay(t, bin, survivor.config, "MessageReceived") {
		ids[r.Payload.(*gateway.MessageReceived).SenderMessageID]++
	}
	if len(ids) != total || len(received) != total {
		t.Fatalf("%d distinct messages in %d streams recorded, want %d", len(ids), len(received), total)
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("%s recorded %d times", id, c)
		}
	}
	for _, typ := range []string{"MessageRouted", "SignaturesVerified"} {
		var got map[string]int
		servetest.WaitFor(t, "every message "+typ, func() bool { got = perStream(t, survivor.config, typ); return len(got) >= total })
		for s, c := range got {
			if c != 1 || received[s] != 1 {
				t.Fatalf("%s: stream %s has %d, of a message recorded %d times", typ, s, c, received[s])
			}
		}
	}
	queued := map[string]int{}
	servetest.WaitFor(t, "every message queued", func() bool {
		queued = map[string]int{}
		for _, r := range servetest.Replay(t, bin, survivor.config, "MessageQueued") {
			queued[r.Payload.(*gateway.MessageQueued).Stream]++
		}
		return len(queued) >= total
	})
	for s, c := range queued {
		if c != 1 || received[s] != 1 {
			t.Fatalf("MessageQueued: stream %s queued %d times", s, c)
		}
	}

	// The killed gateway comes back with its state database as it was.
	nodes[0].proc = servetest.Start(t, bin, nodes[0].config, nodes[0].api)
	var want []string
	servetest.WaitFor(t, "node 1 listing every message", func() bool { want = nodes[1].queue(t); return len(want) >= total })
	for i, line := range want {
		if !strings.HasPrefix(line, fmt.Sprintf("%d ", i+1)) {
			t.Fatalf("queue at node 1 is not dense from 1: line %d is %q", i, line)
		}
	}
	for _, n := range nodes {
		var got []string
		servetest.WaitFor(t, "the same queue at "+n.api, func() bool { got = n.queue(t); return len(got) >= total })
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("queue at %s differs from node 1's:\n%s\nwant:\n%s", n.api, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	var uids []string
	for i, n := range nodes {
		got := n.uids(t)
		if len(got) != total {
			t.Fatalf("imap at node %d: %d messages, want %d", i, len(got), total)
		}
		if i == 0 {
			uids = got
		} else if strings.Join(got, "\n") != strings.Join(uids, "\n") {
			t.Fatalf("imap UIDs at node %d differ from node 0's", i)
		}
	}

	// A department reads its queue with Kafka's own consumer.
	recs := consoleQueue(t, brokers, topic+".office.demo", total)
	if len(recs) != total {
		t.Fatalf("kafka-console-consumer read %d records, want %d", len(recs), total)
	}
	// A seq held twice says more than the first mismatch: whether one
	// message was copied twice or two messages got one seq.
	bySeq := map[int64][]string{}
	for i, r := range recs {
		bySeq[r.seq] = append(bySeq[r.seq], fmt.Sprintf("record %d: %s", i, r.stream))
	}
	for _, r := range recs {
		if at := bySeq[r.seq]; len(at) > 1 {
			api := "nothing"
			if r.seq >= 1 && r.seq <= int64(len(want)) {
				api = fmt.Sprintf("%q", want[r.seq-1])
			}
			t.Fatalf("queue topic holds seq %d %d times (%s); the API's queue has %s under it", r.seq, len(at), strings.Join(at, ", "), api)
		}
	}
	for i, r := range recs {
		if line := fmt.Sprintf("%d %s", r.seq, r.stream); line != want[i] {
			var seqs []int64
			for _, r := range recs[:min(len(recs), i+3)] {
				seqs = append(seqs, r.seq)
			}
			t.Fatalf("queue topic record %d is %q, the API's queue has %q (seqs %v)", i, line, want[i], seqs)
		}
	}

	// Every node serves every message's bytes.
	for _, r := range recs {
		for i, n := range nodes {
			if code, body := n.get(t, r.raw); code != http.StatusOK || !bytes.Contains(body, []byte(topic)) {
				t.Fatalf("node %d: GET %s: %d", i, r.raw, code)
			}
		}
	}
	// One erasure through node 1's admin API: the key is destroyed in the
	// bucket's key store, which every node shares, so every node answers
	// 410 for those bytes and goes on serving the others.
	erased := recs[0]
	staff.Erase(t, nodes[1].api, erased.stream, "Antrag nach Art. 17 DSGVO")
	for i, n := range nodes {
		if code, _ := n.get(t, erased.raw); code != http.StatusGone {
			t.Fatalf("node %d: GET %s after the erasure at node 1: %d, want 410", i, erased.raw, code)
		}
		if code, _ := n.get(t, recs[1].raw); code != http.StatusOK {
			t.Fatalf("node %d: GET %s (not erased): %d", i, recs[1].raw, code)
		}
	}
	for i, n := range nodes {
		var out string
		servetest.WaitFor(t, fmt.Sprintf("log verify --blobs at node %d", i), func() bool {
			code, o, e := servetest.CLI(t, bin, n.config, "log", "verify", "--blobs")
			out = o + e
			m := erasedBlobs.FindStringSubmatch(o)
			return code == 0 && m != nil && m[1] != "0"
		})
		if i == 0 {
			t.Logf("log verify --blobs:\n%s", out)
		}
	}
	t.Logf("%d messages over SMTP in %s at three gateways; gateway 0 and broker 2 SIGKILLed after %d acknowledged; "+
		"queues, seq, IMAP UIDs and queue topic identical on every node; one erasure seen by all", total, intake.Round(time.Millisecond), killedAt)
	for _, n := range nodes {
		n.proc.Stop(t)
	}
}
