package integrity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// TestVerifierDetects feeds a Verifier a correct partition with one edit
// each and checks that it names the first offset that cannot be trusted.
func TestVerifierDetects(t *testing.T) {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		edit       func(l *memLog)
		wantOffset int64
		wantReason string
	}{
		{name: "untouched", edit: func(*memLog) {}, wantOffset: -1},
		{name: "data altered", edit: func(l *memLog) { l.events[3].Data = []byte("x") }, wantOffset: 4, wantReason: "does not link"},
		// The last event before a checkpoint has no successor to break; the
		// head does, and the problem starts after the last matching head.
		{name: "event before first head altered", edit: func(l *memLog) { l.events[2].Data = []byte("x") }, wantOffset: 0, wantReason: "does not match the signed checkpoint"},
		{name: "newest event altered", edit: func(l *memLog) { l.events[5].Data = []byte("x") }, wantOffset: 3, wantReason: "does not match the signed checkpoint"},
		{name: "event removed", edit: func(l *memLog) { l.events = append(l.events[:3], l.events[4:]...) }, wantOffset: 3, wantReason: "expected offset 3"},
		{name: "events swapped", edit: func(l *memLog) {
			l.events[1], l.events[2] = l.events[2], l.events[1]
			l.events[1].Position.Offset, l.events[2].Position.Offset = 1, 2
		}, wantOffset: 1, wantReason: "does not link"},
		{name: "tail removed", edit: func(l *memLog) { l.events = l.events[:4] }, wantOffset: 4, wantReason: "events were removed"},
		{name: "checkpoint forged", edit: func(l *memLog) { l.cps[0].Root[0] ^= 1 }, wantOffset: 2, wantReason: "signature invalid"},
		{name: "key id swapped", edit: func(l *memLog) { l.cps[0].KeyID = "0000000000000000" }, wantOffset: 2, wantReason: "names key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newMemLog(t, 6, []int64{3, 6}, start)
			tt.edit(l)
			err := verifyEvents(l)
			if tt.wantOffset < 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("got %v, want a *Problem", err)
			}
			if p.Offset != tt.wantOffset || !strings.Contains(p.Reason, tt.wantReason) {
				t.Fatalf("problem at %d %q, want offset %d and %q", p.Offset, p.Reason, tt.wantOffset, tt.wantReason)
			}
		})
	}
}

func verifyEvents(l *memLog) error {
	v, err := NewVerifier(testKey.Public(), l.LogID(), 0, l.cps)
	if err != nil {
		return err
	}
	for i := range l.events {
		if err := v.Add(&l.events[i]); err != nil {
			return err
		}
	}
	_, err = v.Finish()
	return err
}

func TestVerifierSummary(t *testing.T) {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	l := newMemLog(t, 7, []int64{2, 5}, start)
	v, err := NewVerifier(testKey.Public(), "mem", 0, l.cps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.events {
		if err := v.Add(&l.events[i]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := v.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var f Frontier
	for i := range l.events {
		f.Append(LeafHash(&l.events[i]))
	}
	want := Summary{Events: 7, Checkpoints: 2, Uncovered: 2, OldestUncovered: start.Add(5 * time.Second),
		NewestCheckpoint: start.Add(4 * time.Second), Root: f.Root()}
	if s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
	if v.LastLeaf() != LeafHash(&l.events[6]) || v.Size() != 7 {
		t.Fatalf("last leaf or size wrong")
	}
	if _, err := NewVerifier(testKey.Public(), "mem", 1, l.cps); err == nil {
		t.Fatal("checkpoints of partition 0 accepted for partition 1")
	}
	out := []eventstore.Checkpoint{l.cps[1], l.cps[0]}
	if _, err := NewVerifier(testKey.Public(), "mem", 0, out); err == nil {
		t.Fatal("checkpoints out of order accepted")
	}
}
