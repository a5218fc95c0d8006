package kafkalog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// mirrored reads every record of a mirror topic as "seq:value".
func mirrored(t *testing.T, ctx context.Context, l *Log, topic string) []string {
	t.Helper()
	res, err := l.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	if err != nil || res.Error != nil {
		return nil
	}
	var out []string
	for {
		r, err := res.Records.ReadRecord()
		if err != nil {
			return out
		}
		v, _ := readBytes(r.Value, 1<<20)
		seq := ""
		for _, h := range r.Headers {
			if h.Key == seqHeader {
				seq = string(h.Value)
			}
		}
		out = append(out, seq+":"+string(v))
	}
}

// TestMirrorCopiesEachOnceInOrder checks that Mirror copies a stream's
// events to its own topic in stream order, and that an owner restarting
// from an older saved position (a crash between copy and save) copies
// nothing twice.
func TestMirrorCopiesEachOnceInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "mirror-" + time.Now().Format("150405.000000")
	l, err := Open(ctx, testConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	add := func(from, to int) {
		for i := from; i < to; i++ {
			for _, ev := range []eventstore.Event{
				{ID: fmt.Sprintf("m%d", i), Tenant: "t", Stream: fmt.Sprintf("msg-%d", i), Type: "Note", Version: 1, Data: []byte("x")},
				{ID: fmt.Sprintf("q%d", i), Tenant: "t", Stream: "office/a", Type: "Queued", Version: 1, Data: []byte(fmt.Sprintf("msg-%d", i))},
			} {
				if _, err := l.Append(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cfg := MirrorConfig{Name: "queues", Prefix: "office/",
		Topic:  func(s string) string { return topic + "." + strings.ReplaceAll(s, "/", ".") },
		Record: func(e *eventstore.Event) ([]byte, []byte, error) { return []byte(e.Stream), e.Data, nil }}
	out := topic + ".office.a"
	want := func(n int) []string {
		var w []string
		for i := range n {
			w = append(w, fmt.Sprintf("%d:msg-%d", i+1, i))
		}
		return w
	}
	run := func(n int) {
		t.Helper()
		mctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- l.Mirror(mctx, cfg) }()
		waitFor(t, fmt.Sprintf("%d mirrored records", n), func() bool { return len(mirrored(t, ctx, l, out)) >= n })
		time.Sleep(300 * time.Millisecond) // room for a wrong extra copy
		stop()
		<-done
		if got := mirrored(t, ctx, l, out); strings.Join(got, " ") != strings.Join(want(n), " ") {
			t.Fatalf("mirror topic holds %q, want %q", got, want(n))
		}
	}
	add(0, 3)
	run(3)
	p := partitionFor(recordKey("t", "office/a"), 4)
	if err := l.Offsets().Save(ctx, "mirror.queues", p, 0); err != nil {
		t.Fatal(err)
	}
	add(3, 5)
	run(5)
}
