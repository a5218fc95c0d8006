package kafkalog

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

func recentEvent(off int64, data int) eventstore.Event {
	return eventstore.Event{ID: "e", Position: eventstore.Position{Offset: off}, Metadata: map[string]string{"k": "v"},
		Data: []byte(strings.Repeat("x", data))}
}

// TestRecentWindow: the window answers a range only when it holds all of
// it, keeps at most recentEvents events and about recentBytes, and starts
// afresh when an event does not follow the newest one.
func TestRecentWindow(t *testing.T) {
	var r recent
	if _, ok := r.get(0, 1); ok {
		t.Fatal("empty window answered")
	}
	for off := range int64(3 * recentEvents) {
		r.add(recentEvent(off, 10))
	}
	first, end := int64(2*recentEvents), int64(3*recentEvents)
	for _, tc := range []struct {
		from, end int64
		ok        bool
	}{
		{first, end, true}, {end - 1, end, true}, {first - 1, end, false}, {first, end + 1, false}, {end, end, false}, {first + 5, first + 10, true},
	} {
		got, ok := r.get(tc.from, tc.end)
		if ok != tc.ok {
			t.Errorf("get(%d, %d): ok %v, want %v", tc.from, tc.end, ok, tc.ok)
			continue
		}
		for i, e := range got {
			if e.Position.Offset != tc.from+int64(i) {
				t.Fatalf("get(%d, %d)[%d] at offset %d", tc.from, tc.end, i, e.Position.Offset)
			}
		}
	}
	if len(r.events) > 2*recentEvents {
		t.Errorf("window array grew to %d events", len(r.events))
	}
	// A gap (a snapshot restored, a partition state replaced) restarts it.
	r.add(recentEvent(end+7, 10))
	if _, ok := r.get(end-1, end); ok {
		t.Error("window kept events from before a gap")
	}
	if got, ok := r.get(end+7, end+8); !ok || got[0].Position.Offset != end+7 {
		t.Errorf("after a gap: %v %v", got, ok)
	}
	// The byte bound: large payloads keep fewer events, but always the newest.
	var big recent
	for off := range int64(20) {
		big.add(recentEvent(off, 1<<20))
	}
	kept := int64(len(big.events) - big.head)
	if kept < 1 || kept > recentBytes/(1<<20) {
		t.Errorf("kept %d events of 1 MiB, want 1 to %d", kept, recentBytes/(1<<20))
	}
	if _, ok := big.get(19, 20); !ok {
		t.Error("newest large event not kept")
	}
	huge := recent{}
	huge.add(recentEvent(0, recentBytes+1))
	if _, ok := huge.get(0, 1); !ok {
		t.Error("an event above the byte bound is not kept as the newest")
	}
}

// TestRecentCopies: what get returns shares nothing with the window.
func TestRecentCopies(t *testing.T) {
	var r recent
	r.add(recentEvent(0, 4))
	got, _ := r.get(0, 1)
	got[0].Data[0] = 'y'
	got[0].Metadata["k"] = "changed"
	again, _ := r.get(0, 1)
	if string(again[0].Data) != "xxxx" || again[0].Metadata["k"] != "v" {
		t.Errorf("a reader's change reached the window: %q %v", again[0].Data, again[0].Metadata)
	}
}

// TestRecentWindowMatchesTheBrokers: every range the window answers is what
// Read returns from the brokers for it (positions, stream numbers, links,
// times, contents), with repeated and rejected records among the accepted
// ones, past the window's bound, and after a fold resumed from a snapshot
// (the window then starts with the first event folded after it).
func TestRecentWindowMatchesTheBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := testConfig(fmt.Sprintf("recent-%d", time.Now().UnixNano()))
	cfg.SnapshotPath = filepath.Join(t.TempDir(), "fold.snapshot")
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendN := func(l *Log, prefix string, n int) {
		t.Helper()
		var evs []eventstore.Event
		for i := range n {
			evs = append(evs, eventstore.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Tenant: "t", Stream: fmt.Sprintf("s%d", i%5),
				Type: "Note", Version: 1, Data: []byte(fmt.Sprintf("%s %d", prefix, i)), Metadata: map[string]string{"i": fmt.Sprint(i)}})
			if len(evs) == 50 || i == n-1 {
				if _, err := l.Append(ctx, evs...); err != nil {
					t.Fatal(err)
				}
				evs = nil
			}
		}
	}
	// A record stored twice (a producer retry) and one that is no event,
	// on the partition of stream s0: the fold skips both.
	raw := func(l *Log, value []byte) {
		t.Helper()
		key := recordKey("t", "s0")
		if err := l.write(ctx, []produceRecord{{partition: partitionFor(key, cfg.Partitions), key: key, value: value, time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	compare := func(l *Log, wantServed bool) {
		t.Helper()
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		served := 0
		for p := range cfg.Partitions {
			end, _ := l.End(ctx, p)
			// Every offset of a short partition; of a long one the ends and
			// both sides of the window's first event.
			l.mu.Lock()
			wf := l.parts[p].recent.from
			l.mu.Unlock()
			var froms []int64
			for from := int64(0); from < end; from++ {
				if end <= 60 || from < 3 || from > end-8 || (from >= wf-2 && from <= wf+2) || from == end/2 {
					froms = append(froms, from)
				}
			}
			for _, from := range froms {
				for _, limit := range []int{1, 7, 500} {
					got, err := l.Read(ctx, p, from, limit)
					if err != nil {
						t.Fatal(err)
					}
					want, err := l.readFetched(ctx, p, from, limit)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("partition %d from %d limit %d: the window gave\n%+v\nthe brokers\n%+v", p, from, limit, got, want)
					}
					l.mu.Lock()
					_, ok := l.parts[p].recent.get(from, min(end, from+int64(limit)))
					l.mu.Unlock()
					if ok {
						served++
					}
				}
			}
		}
		if wantServed && served == 0 {
			t.Fatal("the window answered no range")
		}
	}
	appendN(l, "a", 100)
	first, err := l.ReadStream(ctx, "t", "s0")
	if err != nil {
		t.Fatal(err)
	}
	raw(l, encodeEvent(&first[0]))
	raw(l, []byte("not an event"))
	appendN(l, "b", 1200) // more than the window keeps of a partition
	compare(l, true)
	l.Close()

	l, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.resumed == 0 {
		t.Fatal("the fold did not resume from its snapshot")
	}
	compare(l, false) // nothing folded since: every range from the brokers
	appendN(l, "c", 40)
	compare(l, true)
}
