package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

func openTest(t testing.TB, topic string) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatalf("open %s: %v", topic, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func topicName(t *testing.T) string {
	return fmt.Sprintf("unit-%s-%d", t.Name(), time.Now().UnixNano())
}

func tev(id, stream, data string) eventstore.Event {
	return eventstore.Event{ID: id, Tenant: "t1", Stream: stream, Type: "T", Version: 1, Data: []byte(data)}
}

// rawProduce writes records around the log, as a retrying or hostile
// producer would.
func rawProduce(t *testing.T, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers()...), Topic: topic, Balancer: streamBalancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func readPartition(t *testing.T, l *Log, p int32) []eventstore.Event {
	t.Helper()
	evs, err := l.Read(context.Background(), p, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// verifyAll checks every partition against its checkpoints and returns how
// many checkpoints there were.
func verifyAll(t *testing.T, l *Log) int {
	t.Helper()
	n := 0
	for p := range l.cfg.Partitions {
		cps, err := l.Checkpoints(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		n += len(cps)
		v, err := integrity.NewVerifier(testKey.Public(), l.LogID(), p, cps)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range readPartition(t, l, p) {
			if err := v.Add(&e); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := v.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestFoldSkipsDuplicatesAndJunk injects what kafka-go's retries and a
// hostile producer can leave in the topic: the same record twice, a record
// reusing an id with other content, a stolen message key, garbage, and a
// record on the wrong partition. The log must show each event once, with
// dense offsets, and verify.
func TestFoldSkipsDuplicatesAndJunk(t *testing.T) {
	topic := topicName(t)
	l := openTest(t, topic)
	a := tev("a", "s", "1")
	a.MessageKey = "k1"
	res, err := l.Append(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	p := res[0].Position.Partition
	key := recordKey("t1", "s")
	b := tev("b", "s", "2")
	b.MessageKey = "k1"
	other := tev("a", "s", "changed")
	rawProduce(t, topic,
		kafka.Message{Key: key, Value: encodeEvent(&a)},                   // producer retry: same record again
		kafka.Message{Key: key, Value: encodeEvent(&other)},               // same id, other content
		kafka.Message{Key: key, Value: encodeEvent(&b)},                   // stolen message key
		kafka.Message{Key: key, Value: []byte("not an event")},            // garbage
		kafka.Message{Key: []byte("t1\x00other"), Value: encodeEvent(&a)}, // key does not match the value
	)
	c := tev("c", "s", "3")
	res, err = l.Append(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Position != (eventstore.Position{Partition: p, Offset: 1}) {
		t.Fatalf("c at %+v, want dense offset 1 of partition %d", res[0].Position, p)
	}
	evs := readPartition(t, l, p)
	if len(evs) != 2 || evs[0].ID != "a" || evs[1].ID != "c" || evs[1].StreamSeq != 2 || evs[1].PrevHash != integrity.LeafHash(&evs[0]) {
		t.Fatalf("partition holds %+v", evs)
	}
	// A second process folds the same topic to the same log.
	l2 := openTest(t, topic)
	evs2 := readPartition(t, l2, p)
	if len(evs2) != 2 || integrity.LeafHash(&evs2[1]) != integrity.LeafHash(&evs[1]) {
		t.Fatalf("second process folded %d events / other leaves", len(evs2))
	}
	waitCheckpoints(t, l, p, 2)
	verifyAll(t, l)
	verifyAll(t, l2)
}

func waitCheckpoints(t *testing.T, l *Log, p int32, size int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cps, err := l.Checkpoints(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) > 0 && cps[len(cps)-1].Size >= size {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of partition %d reached size %d", p, size)
}

// TestCrossProcessIdempotency appends from two log instances (two gateway
// processes) on one topic: retries of one id and races for one message key
// within a stream are decided once, by Kafka's order.
func TestCrossProcessIdempotency(t *testing.T) {
	topic := topicName(t)
	l1, l2 := openTest(t, topic), openTest(t, topic)
	const rounds = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	dups := map[string]int{}
	for i := range rounds {
		for w, l := range []*Log{l1, l2} {
			wg.Go(func() {
				e := tev(fmt.Sprintf("m%d-w%d", i, w), "msg-"+strconv.Itoa(i), "x")
				e.MessageKey = "imap:" + strconv.Itoa(i)
				_, err := l.Append(context.Background(), e)
				mu.Lock()
				defer mu.Unlock()
				var dup *eventstore.DuplicateError
				switch {
				case err == nil:
					wins[e.MessageKey]++
				case errors.As(err, &dup) && dup.Existing.MessageKey == e.MessageKey:
					dups[e.MessageKey]++
				default:
					t.Errorf("append %s: %v", e.ID, err)
				}
			})
		}
	}
	wg.Wait()
	for i := range rounds {
		k := "imap:" + strconv.Itoa(i)
		if wins[k] != 1 || dups[k] != 1 {
			t.Fatalf("key %s: %d successes and %d duplicates, want 1 and 1", k, wins[k], dups[k])
		}
	}
	// A retry of a known id from the other process is existing.
	if err := l1.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range rounds {
		got, err := l1.ReadStream(context.Background(), "t1", "msg-"+strconv.Itoa(i))
		if err != nil || len(got) != 1 {
			t.Fatalf("stream %d: %d events, %v", i, len(got), err)
		}
		e := got[0]
		e.Position, e.StreamSeq, e.RecordedAt, e.PrevHash = eventstore.Position{}, 0, time.Time{}, [32]byte{}
		res, err := l2.Append(context.Background(), e)
		if err != nil || !res[0].Existing || res[0].Position != got[0].Position {
			t.Fatalf("retry of %s from the other process: %+v, %v", e.ID, res, err)
		}
	}
}

func TestNotaryCheckpointsVerify(t *testing.T) {
	l := openTest(t, topicName(t))
	for i := range 40 {
		if _, err := l.Append(context.Background(), tev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%9), "x")); err != nil {
			t.Fatal(err)
		}
	}
	for p := range l.cfg.Partitions {
		end, _ := l.End(context.Background(), p)
		if end > 0 {
			waitCheckpoints(t, l, p, end)
		}
	}
	if n := verifyAll(t, l); n == 0 {
		t.Fatal("no checkpoints written")
	}
}

func TestOpenRefusesOtherPartitionCount(t *testing.T) {
	topic := topicName(t)
	openTest(t, topic)
	cfg := testConfig(topic)
	cfg.Partitions = 3
	if _, err := Open(context.Background(), cfg); err == nil {
		t.Fatal("opened a 4-partition topic as 3 partitions")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Topic: "x", Signer: testKey},
		{Brokers: []string{"127.0.0.1:1"}, Signer: testKey},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "x"},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "x", Signer: testKey, Partitions: -1},
	} {
		if _, err := Open(context.Background(), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// TestOpenReader audits a log without a signer: it learns the partition
// count from the topic, verifies every partition, and refuses appends.
func TestOpenReader(t *testing.T) {
	topic := topicName(t)
	l := openTest(t, topic)
	for i := range 20 {
		if _, err := l.Append(context.Background(), tev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%5), "x")); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenReader(context.Background(), Config{Brokers: brokers(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, _ := r.Partitions(context.Background()); n != l.cfg.Partitions {
		t.Fatalf("reader sees %d partitions, want %d", n, l.cfg.Partitions)
	}
	sum, err := integrity.VerifyLog(context.Background(), r, testKey.Public(), nil)
	if err != nil || sum.Events != 20 {
		t.Fatalf("verify through the reader: %d events, %v", sum.Events, err)
	}
	if _, err := r.Append(context.Background(), tev("x", "s", "x")); !errors.Is(err, errReadOnly) {
		t.Fatalf("append on a reader: %v", err)
	}
	if _, err := OpenReader(context.Background(), Config{Brokers: brokers(), Topic: topic + "-missing"}); err == nil {
		t.Fatal("opened a missing topic")
	}
}
