package kafkalog

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"

	"github.com/poststelle/poststelle/eventstore"
)

// produceFault is what faultyTransport does with one produce request to a
// mirror topic.
type produceFault int

const (
	passThrough produceFault = iota
	// loseReply keeps the request and answers with a timeout at once; the
	// request reaches the broker only when the test calls release. It is a
	// write that the writer saw fail but that the broker stored after all
	// (a produce timed out while waiting for a replica, a reply lost with
	// its connection).
	loseReply
	// hold blocks the request until the test calls release; when its
	// context ends first, the caller gets the context's error and the
	// request still reaches the broker at release: a request already on
	// the wire when its owner's generation ended.
	hold
)

// faultyTransport carries the mirror's requests and injects faults into
// its produce requests; everything else passes through unchanged.
type faultyTransport struct {
	next   kafka.RoundTripper
	prefix string                   // mirror topics start with it
	fault  func(n int) produceFault // for the n-th produce request (from 1)

	mu       sync.Mutex
	n        int
	lost     []func() string
	released chan struct{}
	held     chan struct{} // receives once per held request
}

func newFaultyTransport(l *Log, prefix string, fault func(n int) produceFault) *faultyTransport {
	return &faultyTransport{next: l.client.Transport, prefix: prefix, fault: fault,
		released: make(chan struct{}), held: make(chan struct{}, 16)}
}

func (f *faultyTransport) isMirrorProduce(req kafka.Request) bool {
	switch r := req.(type) {
	case *produceAPI.Request:
		return len(r.Topics) > 0 && strings.HasPrefix(r.Topics[0].Topic, f.prefix)
	case *rawproduce.Request:
		return len(r.Topics) > 0 && strings.HasPrefix(r.Topics[0].Topic, f.prefix)
	}
	return false
}

func (f *faultyTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	if !f.isMirrorProduce(req) {
		return f.next.RoundTrip(ctx, addr, req)
	}
	f.mu.Lock()
	f.n++
	what := f.fault(f.n)
	f.mu.Unlock()
	switch what {
	case loseReply:
		f.mu.Lock()
		f.lost = append(f.lost, func() string { return produceOutcome(f.next.RoundTrip(context.Background(), addr, req)) })
		f.mu.Unlock()
		return nil, kafka.RequestTimedOut
	case hold:
		f.held <- struct{}{}
		select {
		case <-f.released:
			return f.next.RoundTrip(context.Background(), addr, req)
		case <-ctx.Done():
			f.mu.Lock()
			f.lost = append(f.lost, func() string { return produceOutcome(f.next.RoundTrip(context.Background(), addr, req)) })
			f.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	return f.next.RoundTrip(ctx, addr, req)
}

// release lets the held requests through and sends the lost ones; it
// returns once the lost ones have been answered, with the brokers' answers.
func (f *faultyTransport) release() []string {
	close(f.released)
	f.mu.Lock()
	lost := f.lost
	f.lost = nil
	f.mu.Unlock()
	var out []string
	for _, send := range lost {
		out = append(out, send())
	}
	return out
}

// produceOutcome describes the answer to a produce request of one
// partition: "stored at <offset>" or the error.
func produceOutcome(res kafka.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if pr, ok := res.(*produceAPI.Response); ok && len(pr.Topics) == 1 && len(pr.Topics[0].Partitions) == 1 {
		p := pr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			return kafka.Error(p.ErrorCode).Error()
		}
		return fmt.Sprintf("stored at %d", p.BaseOffset)
	}
	return fmt.Sprintf("unexpected response %T", res)
}

// mirrorFixture is a log with n queue entries of the stream "office/a"
// (and n messages beside them) and the mirror's configuration.
func mirrorFixture(t *testing.T, ctx context.Context, n int) (*Log, MirrorConfig, string) {
	t.Helper()
	topic := fmt.Sprintf("mfault-%d", time.Now().UnixNano())
	l, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range n {
		for _, ev := range []eventstore.Event{
			{ID: fmt.Sprintf("m%d", i), Tenant: "t", Stream: fmt.Sprintf("msg-%d", i), Type: "Note", Version: 1, Data: []byte("x")},
			{ID: fmt.Sprintf("q%d", i), Tenant: "t", Stream: "office/a", Type: "Queued", Version: 1, Data: []byte(fmt.Sprintf("msg-%d", i))},
		} {
			if _, err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := MirrorConfig{Name: "queues", Prefix: "office/",
		Topic:  func(s string) string { return topic + "." + strings.ReplaceAll(s, "/", ".") },
		Record: func(e *eventstore.Event) ([]byte, []byte, error) { return []byte(e.Stream), e.Data, nil }}
	return l, cfg, topic + ".office.a"
}

func wantMirrored(n int) string {
	var w []string
	for i := range n {
		w = append(w, fmt.Sprintf("%d:msg-%d", i+1, i))
	}
	return strings.Join(w, " ")
}

// runMirror runs Mirror until the returned stop is called; stop waits for
// it to return.
func runMirror(ctx context.Context, l *Log, cfg MirrorConfig) (stop func()) {
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Mirror(mctx, cfg) }()
	return func() {
		cancel()
		<-done
	}
}

// TestMirrorLostReplyCopiesOnce: a write whose reply the mirror never got
// (it saw a timeout) is stored by the broker only after the mirror has read
// the topic again and written the record once more. The topic must still
// hold each queue entry once, under its own seq.
func TestMirrorLostReplyCopiesOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 3
	l, cfg, out := mirrorFixture(t, ctx, n)
	ft := newFaultyTransport(l, out, func(i int) produceFault {
		if i == 1 {
			return loseReply
		}
		return passThrough
	})
	cfg.transport = ft
	stop := runMirror(ctx, l, cfg)
	waitFor(t, fmt.Sprintf("%d mirrored records", n), func() bool { return len(mirrored(t, ctx, l, out)) >= n })
	t.Logf("the first write reaches the broker now: %v", ft.release())
	stop()
	if got := strings.Join(mirrored(t, ctx, l, out), " "); got != wantMirrored(n) {
		t.Fatalf("mirror topic holds %q, want %q", got, wantMirrored(n))
	}
}

// TestMirrorZombieOwnerCopiesOnce: the owner whose generation ends while its
// write is on the wire (held) is replaced by a new owner, which reads the
// topic without that write and copies the entries itself; then the old
// write arrives. release comes after one record of the new owner (a repeat
// the broker still remembers) and after seven (one it has forgotten).
func TestMirrorZombieOwnerCopiesOnce(t *testing.T) {
	for _, n := range []int{1, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			l, cfg, out := mirrorFixture(t, ctx, n)
			ft := newFaultyTransport(l, out, func(i int) produceFault {
				if i == 1 {
					return hold
				}
				return passThrough
			})
			old := cfg
			old.transport = ft
			stopOld := runMirror(ctx, l, old)
			<-ft.held
			stopOld() // its write is still on the way
			cfg.transport = ft
			stopNew := runMirror(ctx, l, cfg)
			waitFor(t, fmt.Sprintf("%d records from the new owner", n), func() bool { return len(mirrored(t, ctx, l, out)) >= n })
			t.Logf("the old owner's write reaches the broker now: %v", ft.release())
			stopNew()
			if got := strings.Join(mirrored(t, ctx, l, out), " "); got != wantMirrored(n) {
				t.Fatalf("mirror topic holds %q, want %q", got, wantMirrored(n))
			}
		})
	}
}

// TestMirrorRefusesTwoStreamsInOneTopic: two tenants' streams of one name
// map to one topic; their records would compete for the topic's sequence,
// so the mirror stops instead of copying the second.
func TestMirrorRefusesTwoStreamsInOneTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, cfg, out := mirrorFixture(t, ctx, 1)
	if _, err := l.Append(ctx, eventstore.Event{ID: "other-q", Tenant: "u", Stream: "office/a", Type: "Queued", Version: 1, Data: []byte("msg-u")}); err != nil {
		t.Fatal(err)
	}
	err := l.Mirror(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "both map to topic") {
		t.Fatalf("Mirror returned %v, want the two streams named", err)
	}
	if got := mirrored(t, ctx, l, out); len(got) > 1 {
		t.Fatalf("mirror topic holds %q", got)
	}
}
