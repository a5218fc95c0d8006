package kafkalog

import (
	"strings"
	"testing"

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
