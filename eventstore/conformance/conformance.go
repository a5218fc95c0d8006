// Package conformance is the test suite that every eventstore.Log backend
// must pass, so that the gateway behaves the same on the embedded default and
// on Kafka. A backend's test calls Run with a Backend that opens logs by name.
package conformance

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// Backend opens logs for the suite.
type Backend struct {
	// Name is shown in test names.
	Name string
	// Open opens the log called name, keeping its files (if any) in dir.
	// Opening the same dir and name again after Close must show the same
	// events. It is also called in a child process for the kill test.
	Open func(ctx context.Context, dir, name string) (eventstore.Log, error)
	// PublicKey verifies the log's checkpoints.
	PublicKey crypto.PublicKey
}

// Run runs the whole suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"InvalidEvents", testInvalidEvents},
		{"OrderingPerStream", testOrderingPerStream},
		{"IdempotentReappend", testIdempotentReappend},
		{"MessageKeyDedupe", testMessageKeyDedupe},
		{"ConcurrentAppenders", testConcurrentAppenders},
		{"CatchUpAfterRestart", testCatchUpAfterRestart},
		{"SubscriptionExactlyOnceInOrder", testSubscriptionExactlyOnce},
		{"SubscriptionResumesFromStart", testSubscriptionResumes},
		{"IntegrityChain", testIntegrityChain},
		{"AppendAfterClose", testAppendAfterClose},
		{"DurableAcrossKill", testDurableAcrossKill},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fixture{b: b, dir: t.TempDir(), name: fmt.Sprintf("conf-%s-%d", strings.ToLower(tc.name), rand.Uint32())}
			tc.fn(t, f)
		})
	}
}

type fixture struct {
	b    Backend
	dir  string
	name string
}

func (f *fixture) open(t *testing.T) eventstore.Log {
	t.Helper()
	l, err := f.b.Open(context.Background(), f.dir, f.name)
	if err != nil {
		t.Fatalf("open %s: %v", f.name, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// ev builds a valid event.
func ev(id, stream string, data string) eventstore.Event {
	return eventstore.Event{ID: id, Tenant: "t1", Stream: stream, Type: "TestEvent", Version: 1,
		CorrelationID: "corr-" + stream, Data: []byte(data)}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, l eventstore.Log, evs ...eventstore.Event) []eventstore.Result {
	t.Helper()
	res, err := l.Append(ctxT(t), evs...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if len(res) != len(evs) {
		t.Fatalf("append returned %d results for %d events", len(res), len(evs))
	}
	return res
}

// readAll reads every event of every partition.
func readAll(t *testing.T, l eventstore.Log) []eventstore.Event {
	t.Helper()
	ctx := ctxT(t)
	parts, err := l.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Event
	for p := range parts {
		for off := int64(0); ; {
			evs, err := l.Read(ctx, p, off, 1000)
			if err != nil {
				t.Fatalf("read partition %d at %d: %v", p, off, err)
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if e.Position.Offset < off {
					t.Fatalf("partition %d: offset %d after %d", p, e.Position.Offset, off)
				}
				off = e.Position.Offset + 1
			}
			out = append(out, evs...)
		}
	}
	return out
}

func testAppendAndRead(t *testing.T, f *fixture) {
	l := f.open(t)
	e := ev("e1", "s1", `{"hello":"world"}`)
	e.MessageKey = "smtp:<abc@example.org>"
	e.CausationID = "cause-1"
	e.Metadata = map[string]string{"actor": "test", "x": "y"}
	before := time.Now().Add(-time.Minute)
	res := mustAppend(t, l, e)
	if res[0].Existing {
		t.Fatal("new event reported as existing")
	}
	got, err := l.ReadStream(ctxT(t), "t1", "s1")
	if err != nil || len(got) != 1 {
		t.Fatalf("read stream: %v, %d events", err, len(got))
	}
	g := got[0]
	if g.ID != e.ID || g.Tenant != e.Tenant || g.Stream != e.Stream || g.Type != e.Type || g.Version != e.Version ||
		g.MessageKey != e.MessageKey || g.CorrelationID != e.CorrelationID || g.CausationID != e.CausationID ||
		string(g.Data) != string(e.Data) || g.Metadata["actor"] != "test" || g.Metadata["x"] != "y" || len(g.Metadata) != 2 {
		t.Fatalf("event did not round-trip:\n got %+v\nwant %+v", g, e)
	}
	if g.Position != res[0].Position || g.StreamSeq != 1 {
		t.Fatalf("position %+v seq %d, append said %+v", g.Position, g.StreamSeq, res[0].Position)
	}
	if g.RecordedAt.Before(before) || g.RecordedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("recorded at %v is not now", g.RecordedAt)
	}
	end, err := l.End(ctxT(t), g.Position.Partition)
	if err != nil || end != g.Position.Offset+1 {
		t.Fatalf("end = %d, %v; want %d", end, err, g.Position.Offset+1)
	}
	if all := readAll(t, l); len(all) != 1 {
		t.Fatalf("log holds %d events, want 1", len(all))
	}
}

func testInvalidEvents(t *testing.T, f *fixture) {
	l := f.open(t)
	bad := []eventstore.Event{
		{Tenant: "t", Stream: "s", Type: "T", Version: 1},
		{ID: "x", Stream: "s", Type: "T", Version: 1},
		{ID: "x", Tenant: "t", Type: "T", Version: 1},
		{ID: "x", Tenant: "t", Stream: "s", Version: 1},
		{ID: "x", Tenant: "t", Stream: "s", Type: "T"},
		{ID: "x", Tenant: "t", Stream: "s", Type: "T", Version: 1, Data: make([]byte, eventstore.MaxDataSize+1)},
	}
	for i, e := range bad {
		if _, err := l.Append(ctxT(t), e); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("case %d: err = %v, want ErrInvalidEvent", i, err)
		}
	}
	if all := readAll(t, l); len(all) != 0 {
		t.Fatalf("invalid events were stored: %d", len(all))
	}
}

func testOrderingPerStream(t *testing.T, f *fixture) {
	l := f.open(t)
	var evs []eventstore.Event
	for i := range 30 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%3), strconv.Itoa(i)))
	}
	mustAppend(t, l, evs...)
	for s := range 3 {
		got, err := l.ReadStream(ctxT(t), "t1", fmt.Sprintf("s%d", s))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 {
			t.Fatalf("stream s%d has %d events, want 10", s, len(got))
		}
		for i, e := range got {
			if want := strconv.Itoa(s + 3*i); string(e.Data) != want || e.StreamSeq != int64(i+1) {
				t.Fatalf("stream s%d item %d: data %s seq %d, want %s seq %d", s, i, e.Data, e.StreamSeq, want, i+1)
			}
			if e.Position.Partition != got[0].Position.Partition {
				t.Fatalf("stream s%d spans partitions %d and %d", s, got[0].Position.Partition, e.Position.Partition)
			}
			if i > 0 && e.Position.Offset <= got[i-1].Position.Offset {
				t.Fatalf("stream s%d offsets not increasing", s)
			}
		}
	}
	if got, err := l.ReadStream(ctxT(t), "other-tenant", "s0"); err != nil || len(got) != 0 {
		t.Fatalf("another tenant's stream: %d events, %v", len(got), err)
	}
}

func testIdempotentReappend(t *testing.T, f *fixture) {
	l := f.open(t)
	first := mustAppend(t, l, ev("a", "s", "1"), ev("b", "s", "2"))
	again := mustAppend(t, l, ev("a", "s", "1"), ev("b", "s", "2"), ev("c", "s", "3"))
	for i := range 2 {
		if !again[i].Existing || again[i].Position != first[i].Position {
			t.Fatalf("re-append %d: %+v, want existing at %+v", i, again[i], first[i].Position)
		}
	}
	if again[2].Existing {
		t.Fatal("new event c reported existing")
	}
	if _, err := l.Append(ctxT(t), ev("a", "s", "changed")); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("same id, other content: err = %v, want ErrConflict", err)
	}
	got, _ := l.ReadStream(ctxT(t), "t1", "s")
	if len(got) != 3 {
		t.Fatalf("stream has %d events after retries, want 3", len(got))
	}
}

func testMessageKeyDedupe(t *testing.T, f *fixture) {
	l := f.open(t)
	a := ev("a", "s1", "x")
	a.MessageKey = "imap:inbox:7:42"
	mustAppend(t, l, a)
	b := ev("b", "s2", "x")
	b.MessageKey = a.MessageKey
	_, err := l.Append(ctxT(t), b)
	var dup *eventstore.DuplicateError
	if !errors.Is(err, eventstore.ErrDuplicateMessage) || !errors.As(err, &dup) || dup.Existing.ID != "a" || dup.Existing.Stream != "s1" {
		t.Fatalf("second message with key: err = %v, want DuplicateError naming a", err)
	}
	c := b
	c.ID, c.Tenant = "c", "t2"
	mustAppend(t, l, c) // keys are per tenant
	if all := readAll(t, l); len(all) != 2 {
		t.Fatalf("log holds %d events, want 2", len(all))
	}
}

func testConcurrentAppenders(t *testing.T, f *fixture) {
	l := f.open(t)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(context.Background(), ev(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("w%d", w), strconv.Itoa(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := readAll(t, l)
	if len(all) != writers*each {
		t.Fatalf("log holds %d events, want %d", len(all), writers*each)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	for w := range writers {
		got, _ := l.ReadStream(ctxT(t), "t1", fmt.Sprintf("w%d", w))
		for i, e := range got {
			if string(e.Data) != strconv.Itoa(i) {
				t.Fatalf("writer %d: event %d holds %s: order lost", w, i, e.Data)
			}
		}
	}
}

func testCatchUpAfterRestart(t *testing.T, f *fixture) {
	l := f.open(t)
	for i := range 20 {
		mustAppend(t, l, ev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%4), strconv.Itoa(i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = f.open(t)
	if got := readAll(t, l); len(got) != 20 {
		t.Fatalf("after restart the log holds %d events, want 20", len(got))
	}
	mustAppend(t, l, ev("late", "s0", "late"))
	got, _ := l.ReadStream(ctxT(t), "t1", "s0")
	if len(got) != 6 || got[5].ID != "late" || got[5].StreamSeq != 6 {
		t.Fatalf("stream s0 after restart: %d events, last %+v", len(got), got[len(got)-1])
	}
	collected := subscribeUntil(t, l, "g", nil, 21)
	if len(collected) != 21 {
		t.Fatalf("subscription caught up on %d events, want 21", len(collected))
	}
	verifyIntegrity(t, f, l)
}

// subscribeUntil subscribes from the given offsets (nil: from 0) and returns
// once n events arrived.
func subscribeUntil(t *testing.T, l eventstore.Log, group string, from map[int32]int64, n int) []eventstore.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []eventstore.Event
	err := l.Subscribe(ctx, group, func(_ context.Context, p int32) (int64, error) { return from[p], nil },
		func(_ context.Context, e eventstore.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e)
			if len(got) >= n {
				cancel()
			}
			return nil
		})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

func testSubscriptionExactlyOnce(t *testing.T, f *fixture) {
	l := f.open(t)
	const total = 300
	go func() {
		for i := range total {
			if _, err := l.Append(context.Background(), ev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%7), strconv.Itoa(i))); err != nil {
				return
			}
		}
	}()
	got := subscribeUntil(t, l, "exactly-once", nil, total)
	if len(got) != total {
		t.Fatalf("subscription delivered %d events, want %d", len(got), total)
	}
	seen := map[string]bool{}
	lastInStream := map[string]int{}
	lastOff := map[int32]int64{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
		n, _ := strconv.Atoi(string(e.Data))
		if prev, ok := lastInStream[e.Stream]; ok && n <= prev {
			t.Fatalf("stream %s: %d delivered after %d", e.Stream, n, prev)
		}
		lastInStream[e.Stream] = n
		if prev, ok := lastOff[e.Position.Partition]; ok && e.Position.Offset <= prev {
			t.Fatalf("partition %d: offset %d after %d", e.Position.Partition, e.Position.Offset, prev)
		}
		lastOff[e.Position.Partition] = e.Position.Offset
	}
}

func testSubscriptionResumes(t *testing.T, f *fixture) {
	l := f.open(t)
	for i := range 40 {
		mustAppend(t, l, ev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%5), strconv.Itoa(i)))
	}
	first := subscribeUntil(t, l, "resume", nil, 40)
	// Record, per partition, the position after the first half of deliveries.
	from := map[int32]int64{}
	for _, e := range first[:20] {
		from[e.Position.Partition] = e.Position.Offset + 1
	}
	want := map[string]bool{}
	for _, e := range first[20:] {
		if e.Position.Offset >= from[e.Position.Partition] {
			want[e.ID] = true
		}
	}
	rest := subscribeUntil(t, l, "resume", from, len(want))
	for _, e := range rest {
		if e.Position.Offset < from[e.Position.Partition] {
			t.Fatalf("resumed subscription redelivered %s at %+v before start %d", e.ID, e.Position, from[e.Position.Partition])
		}
		delete(want, e.ID)
	}
	if len(want) != 0 {
		t.Fatalf("resumed subscription missed %d events", len(want))
	}
}

func verifyIntegrity(t *testing.T, f *fixture, l eventstore.Log) {
	t.Helper()
	h, ok := l.(eventstore.Heads)
	if !ok {
		t.Fatalf("%T does not implement eventstore.Heads", l)
	}
	all := readAll(t, l)
	parts, _ := l.Partitions(ctxT(t))
	var total int64
	for p := range parts {
		cps, err := h.Checkpoints(ctxT(t), p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := integrity.NewVerifier(f.b.PublicKey, h.LogID(), p, cps)
		if err != nil {
			t.Fatal(err)
		}
		for i := range all {
			if all[i].Position.Partition == p {
				if err := v.Add(&all[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		sum, err := v.Finish()
		if err != nil {
			t.Fatal(err)
		}
		total += sum.Events
	}
	if total != int64(len(all)) {
		t.Fatalf("verified %d of %d events", total, len(all))
	}
}

func testIntegrityChain(t *testing.T, f *fixture) {
	l := f.open(t)
	for i := range 50 {
		mustAppend(t, l, ev(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i%6), strconv.Itoa(i)))
	}
	verifyIntegrity(t, f, l)
	// An altered event must not verify.
	all := readAll(t, l)
	h := l.(eventstore.Heads)
	cps, _ := h.Checkpoints(ctxT(t), all[10].Position.Partition)
	v, err := integrity.NewVerifier(f.b.PublicKey, h.LogID(), all[10].Position.Partition, cps)
	if err != nil {
		t.Fatal(err)
	}
	all[10].Data = []byte("tampered")
	var broken error
	for i := range all {
		if all[i].Position.Partition == all[10].Position.Partition && broken == nil {
			broken = v.Add(&all[i])
		}
	}
	if broken == nil {
		_, broken = v.Finish()
	}
	if broken == nil {
		t.Fatal("a tampered event passed verification")
	}
}

func testAppendAfterClose(t *testing.T, f *fixture) {
	l := f.open(t)
	mustAppend(t, l, ev("a", "s", "1"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), ev("b", "s", "2")); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
}

// Environment variables that switch a test binary into the kill test's child.
const (
	envChildDir  = "POSTSTELLE_CONFORMANCE_CHILD_DIR"
	envChildName = "POSTSTELLE_CONFORMANCE_CHILD_NAME"
)

// MainChild must be called first in the backend test's TestMain: in the kill
// test's child process it appends events forever, printing "ack <id>" after
// each acknowledged append, and never returns.
func MainChild(b Backend) {
	dir, name := os.Getenv(envChildDir), os.Getenv(envChildName)
	if dir == "" || name == "" {
		return
	}
	ctx := context.Background()
	l, err := b.Open(ctx, dir, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("kill-%d-%d", w, i)
				if _, err := l.Append(ctx, ev(id, fmt.Sprintf("k%d", w), strconv.Itoa(i))); err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s\n", id)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func testDurableAcrossKill(t *testing.T, f *fixture) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildDir+"="+f.dir, envChildName+"="+f.name)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
		if len(acked) >= 400 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acks printed before the kill landed count too
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
	}
	cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child acknowledged only %d appends before it ended", len(acked))
	}
	l := f.open(t)
	all := readAll(t, l)
	stored := map[string]bool{}
	for _, e := range all {
		if stored[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		stored[e.ID] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged event %s lost after kill (%d acked, %d stored)", id, len(acked), len(stored))
		}
	}
	verifyIntegrity(t, f, l)
	mustAppend(t, l, ev("after-kill", "k0", "x"))
}
