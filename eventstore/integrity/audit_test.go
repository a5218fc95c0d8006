package integrity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// memLog is a one-partition log in memory, built as a writer would: linked
// events, a checkpoint (with its frontier) at each chosen size.
type memLog struct {
	eventstore.Log // only the methods below are used
	events         []eventstore.Event
	leaves         [][]byte
	cps            []eventstore.Checkpoint
	frontiers      map[int64][]byte
	lag            time.Duration // zero: does not implement CheckpointLag
	maxRead        int           // when set, Read returns at most this many events
	failFrom       int64         // when set, Read fails for offsets from here on
}

func newMemLog(t *testing.T, n int, checkpointAt []int64, start time.Time) *memLog {
	t.Helper()
	l := &memLog{frontiers: map[int64][]byte{}}
	var f Frontier
	var prev [32]byte
	next := 0
	for i := range n {
		e := eventstore.Event{ID: fmt.Sprintf("e%d", i), Tenant: "t", Stream: "s", Type: "T", Version: 1,
			StreamSeq: int64(i + 1), Data: []byte(fmt.Sprint(i)), PrevHash: prev,
			Position: eventstore.Position{Offset: int64(i)}, RecordedAt: start.Add(time.Duration(i) * time.Second)}
		leaf := LeafHash(&e)
		f.Append(leaf)
		prev = leaf
		l.events = append(l.events, e)
		l.leaves = append(l.leaves, leaf[:])
		if next < len(checkpointAt) && checkpointAt[next] == f.Size() {
			c := eventstore.Checkpoint{Size: f.Size(), Root: f.Root(), Time: e.RecordedAt}
			if err := Sign(testKey, "mem", &c); err != nil {
				t.Fatal(err)
			}
			l.cps = append(l.cps, c)
			var nodes []byte
			for _, n := range f.Nodes() {
				nodes = append(nodes, n[:]...)
			}
			l.frontiers[f.Size()] = nodes
			next++
		}
	}
	return l
}

func (l *memLog) LogID() string                             { return "mem" }
func (l *memLog) Partitions(context.Context) (int32, error) { return 1, nil }
func (l *memLog) Close() error                              { return nil }
func (l *memLog) Checkpoints(context.Context, int32) ([]eventstore.Checkpoint, error) {
	return l.cps, nil
}

func (l *memLog) Read(_ context.Context, _ int32, from int64, limit int) ([]eventstore.Event, error) {
	if l.failFrom > 0 && from+int64(limit) > l.failFrom {
		return nil, errors.New("disk on fire")
	}
	if l.maxRead > 0 {
		limit = min(limit, l.maxRead)
	}
	var out []eventstore.Event
	for _, e := range l.events {
		if e.Position.Offset >= from && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *memLog) StoredHashes(_ context.Context, _ int32, from, to int64) (Stored, error) {
	s := Stored{Leaves: map[int64][]byte{}, Frontiers: map[int64][]byte{}}
	for i := from; i < to && i < int64(len(l.leaves)); i++ {
		s.Leaves[i] = l.leaves[i]
	}
	for size, f := range l.frontiers {
		if size > from && size <= to {
			s.Frontiers[size] = f
		}
	}
	return s, nil
}

// laggingLog is a memLog whose checkpoints trail its events.
type laggingLog struct{ *memLog }

func (l laggingLog) CheckpointLag() time.Duration { return l.lag }

func TestVerifyLogWith(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	every := func(n int64) []int64 {
		var s []int64
		for i := int64(1); i <= n; i++ {
			s = append(s, i)
		}
		return s
	}
	cases := []struct {
		name   string
		build  func(t *testing.T) AuditedLog
		now    time.Time
		offset int64  // -1: no problem expected
		reason string // part of the problem's reason
	}{
		{"intact", func(t *testing.T) AuditedLog { return newMemLog(t, 10, every(10), start) }, start, -1, ""},
		{"tail uncovered on a log that signs every commit", func(t *testing.T) AuditedLog {
			return newMemLog(t, 10, []int64{4, 7}, start)
		}, start, 7, "covered by no signed checkpoint"},
		{"no checkpoint at all", func(t *testing.T) AuditedLog {
			return newMemLog(t, 3, nil, start)
		}, start, 0, "3 events (offsets 0 to 2)"},
		{"young tail on a lagging log", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, []int64{7}, start)
			l.lag = 10 * time.Second
			return laggingLog{l}
		}, start.Add(12 * time.Second), -1, ""}, // oldest uncovered recorded at +7 s
		{"old tail on a lagging log", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, []int64{7}, start)
			l.lag = 10 * time.Second
			return laggingLog{l}
		}, start.Add(17 * time.Second), 7, "longer than the 10s"},
		{"tail older than the newest checkpoint allows", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, []int64{7}, start)
			l.lag = 10 * time.Second
			l.cps[0].Time = start.Add(time.Hour) // re-signed below
			if err := Sign(testKey, "mem", &l.cps[0]); err != nil {
				t.Fatal(err)
			}
			return laggingLog{l}
		}, start, 7, "longer than"},
		{"stored leaf hash altered", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, every(10), start)
			l.leaves[9] = make([]byte, 32)
			return l
		}, start, 9, "stored leaf hash"},
		{"stored leaf hash missing", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, every(10), start)
			l.leaves[3] = nil
			return l
		}, start, 3, "stored leaf hash"},
		{"stored frontier altered", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, every(10), start)
			l.frontiers[6][0] ^= 1
			return l
		}, start, 5, "frontier stored with the checkpoint at size 6"},
		{"stored frontier truncated", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, every(10), start)
			l.frontiers[10] = l.frontiers[10][:32]
			return l
		}, start, 9, "frontier"},
		{"checkpoint key id altered", func(t *testing.T) AuditedLog {
			l := newMemLog(t, 10, every(10), start)
			l.cps[4].KeyID = "0000000000000000"
			return l
		}, start, 4, "names key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := VerifyLogWith(context.Background(), tc.build(t), testKey.Public(), VerifyOptions{Now: func() time.Time { return tc.now }})
			var p *Problem
			if tc.offset < 0 {
				if err != nil {
					t.Fatalf("unexpected problem: %v", err)
				}
				if sum.Events != 10 {
					t.Fatalf("%d events verified", sum.Events)
				}
				return
			}
			if !errors.As(err, &p) || p.Offset != tc.offset || !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("got %v, want a problem at offset %d naming %q", err, tc.offset, tc.reason)
			}
		})
	}
}

func TestSummaryReportsUncoveredTail(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	l := newMemLog(t, 10, []int64{7}, start)
	l.lag = time.Minute
	sum, err := VerifyLogWith(context.Background(), laggingLog{l}, testKey.Public(), VerifyOptions{Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	p := sum.Partitions[0]
	if p.Uncovered != 3 || !p.OldestUncovered.Equal(start.Add(7*time.Second)) || !p.NewestCheckpoint.Equal(start.Add(6*time.Second)) {
		t.Fatalf("summary %+v", p)
	}
}

// TestVerifyLogAcrossChunks covers the read-ahead: logs longer than one read,
// read by several workers, whose reads may come back shorter than asked.
func TestVerifyLogAcrossChunks(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const n = 2*readChunk + 700
	var every100 []int64
	for i := int64(100); i <= n; i += 100 {
		every100 = append(every100, i)
	}
	remove := func(l *memLog, off int64) {
		l.events = append(l.events[:off], l.events[off+1:]...)
	}
	cases := []struct {
		name   string
		edit   func(l *memLog)
		offset int64 // -1: no problem expected
		reason string
	}{
		{"intact", func(*memLog) {}, -1, ""},
		{"intact, short reads", func(l *memLog) { l.maxRead = 7 }, -1, ""},
		{"intact, reads a little short", func(l *memLog) { l.maxRead = readChunk - 1 }, -1, ""},
		{"event removed at a chunk's start", func(l *memLog) { remove(l, 2*readChunk) }, 2 * readChunk, "was removed, inserted or moved"},
		{"event removed inside a chunk, short reads", func(l *memLog) { l.maxRead = 7; remove(l, readChunk+500) }, readChunk + 500, "was removed"},
		{"event altered in the second chunk", func(l *memLog) { l.events[readChunk+1].Data = []byte("x") }, readChunk + 1, "stored leaf hash"},
		{"last event removed", func(l *memLog) { remove(l, n-1) }, n - 1, "events were removed"},
		{"read fails in the third chunk", func(l *memLog) { l.failFrom = 2*readChunk + 10 }, 2 * readChunk, "events unreadable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLog(t, n, every100, start)
			tc.edit(l)
			sum, err := VerifyLogWith(context.Background(), l, testKey.Public(), VerifyOptions{Now: func() time.Time { return start }})
			if tc.offset < 0 {
				if err != nil || sum.Events != n || sum.Partitions[0].Checkpoints != len(every100) {
					t.Fatalf("got %+v, %v; want %d events and %d checkpoints", sum, err, n, len(every100))
				}
				return
			}
			var p *Problem
			if !errors.As(err, &p) || p.Offset != tc.offset || !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("got %v, want a problem at offset %d naming %q", err, tc.offset, tc.reason)
			}
		})
	}
}
