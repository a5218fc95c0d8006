package kafkalog

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/poststelle/poststelle/eventstore/integrity"
)

// A fold snapshot is this process's fold of every partition written to
// Config.SnapshotPath with the Kafka offset it reached, so that a gateway
// with a long log behind it folds only what came after at its next start
// instead of the whole topic. It is a cache: it is checked against the topic
// when loaded (the newest event it covers must still hash to its leaf) and
// dropped when it does not match; readers that audit (OpenReader, log
// verify) never use one.

// snapshotVersion changes whenever the format or the fold's rules do.
const snapshotVersion = 1

// maxSnapshotSize caps the file a start reads (about 200 bytes per event).
const maxSnapshotSize = 4 << 30

type foldSnapshot struct {
	Version    int
	Topic      string
	Partitions int32
	Parts      []snapPart
}

type snapPart struct {
	Next    int64
	Koffs   []int64
	Leaves  [][32]byte
	Seqs    []int64
	IDs     map[string]snapID
	Keys    map[string]int64
	Streams map[string][]int64
}

type snapID struct {
	Off    int64
	Digest [32]byte
}

// takeSnapshot copies the fold under the lock: the slices only grow, so
// their prefixes are shared; the maps are copied.
func (l *Log) takeSnapshot() *foldSnapshot {
	snap := &foldSnapshot{Version: snapshotVersion, Topic: l.cfg.Topic, Partitions: l.cfg.Partitions}
	for _, s := range l.parts {
		l.mu.Lock()
		n := len(s.koffs)
		sp := snapPart{Next: s.next, Koffs: s.koffs[:n:n], Leaves: s.leaves[:n:n], Seqs: s.seqs[:n:n],
			IDs: make(map[string]snapID, len(s.ids)), Keys: make(map[string]int64, len(s.keys)),
			Streams: make(map[string][]int64, len(s.streams))}
		for k, v := range s.ids {
			sp.IDs[k] = snapID{Off: v.off, Digest: v.digest}
		}
		for k, v := range s.keys {
			sp.Keys[k] = v
		}
		for k, v := range s.streams {
			sp.Streams[k] = v[:len(v):len(v)]
		}
		l.mu.Unlock()
		snap.Parts = append(snap.Parts, sp)
	}
	return snap
}

// saveSnapshot writes the fold to Config.SnapshotPath atomically.
func (l *Log) saveSnapshot() error {
	path := l.cfg.SnapshotPath
	snap := l.takeSnapshot()
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("kafkalog: write fold snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	if err := gob.NewEncoder(f).Encode(snap); err != nil {
		f.Close()
		return fmt.Errorf("kafkalog: write fold snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("kafkalog: write fold snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kafkalog: write fold snapshot: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("kafkalog: write fold snapshot: %w", err)
	}
	return nil
}

// loadSnapshot installs the snapshot at Config.SnapshotPath, if there is one
// of this topic, and returns how many events it covered. It runs before the
// tail starts folding.
func (l *Log) loadSnapshot() (int64, error) {
	f, err := os.Open(l.cfg.SnapshotPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kafkalog: read fold snapshot: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() > maxSnapshotSize {
		return 0, fmt.Errorf("kafkalog: fold snapshot %s is unreadable or over %d bytes", l.cfg.SnapshotPath, int64(maxSnapshotSize))
	}
	var snap foldSnapshot
	if err := gob.NewDecoder(f).Decode(&snap); err != nil {
		return 0, fmt.Errorf("kafkalog: decode fold snapshot: %w", err)
	}
	if snap.Version != snapshotVersion || snap.Topic != l.cfg.Topic || snap.Partitions != l.cfg.Partitions || len(snap.Parts) != int(l.cfg.Partitions) {
		return 0, fmt.Errorf("kafkalog: fold snapshot %s is of another topic or format", l.cfg.SnapshotPath)
	}
	var events int64
	for p, sp := range snap.Parts {
		n := len(sp.Koffs)
		if len(sp.Leaves) != n || len(sp.Seqs) != n || (n > 0 && sp.Next <= sp.Koffs[n-1]) {
			return 0, fmt.Errorf("kafkalog: fold snapshot partition %d is inconsistent", p)
		}
		s := &partitionState{next: sp.Next, koffs: sp.Koffs, leaves: sp.Leaves, seqs: sp.Seqs,
			ids: make(map[string]idEntry, len(sp.IDs)), keys: sp.Keys, streams: sp.Streams}
		for k, v := range sp.IDs {
			s.ids[k] = idEntry{off: v.Off, digest: v.Digest}
		}
		if s.keys == nil {
			s.keys = map[string]int64{}
		}
		if s.streams == nil {
			s.streams = map[string][]int64{}
		}
		for _, leaf := range s.leaves {
			s.frontier.Append(leaf)
		}
		l.parts[p] = s
		events += int64(n)
	}
	return events, nil
}

// checkSnapshot reads the newest event the snapshot covers in every
// partition back from the topic and compares its leaf: a topic that was
// recreated or truncated does not match.
func (l *Log) checkSnapshot(ctx context.Context) error {
	for p := range l.cfg.Partitions {
		l.mu.Lock()
		n := int64(len(l.parts[p].koffs))
		var want [32]byte
		if n > 0 {
			want = l.parts[p].leaves[n-1]
		}
		l.mu.Unlock()
		if n == 0 {
			continue
		}
		evs, err := l.Read(ctx, p, n-1, 1)
		if err != nil {
			return err
		}
		if len(evs) != 1 || integrity.LeafHash(&evs[0]) != want {
			return fmt.Errorf("kafkalog: fold snapshot does not match partition %d of %s at %d", p, l.cfg.Topic, n-1)
		}
	}
	return nil
}

// snapshots writes the fold every SnapshotInterval until ctx ends, and once
// more then.
func (l *Log) snapshots(ctx context.Context) {
	t := time.NewTicker(l.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := l.saveSnapshot(); err != nil {
				l.log.Warn("kafkalog: fold snapshot", "err", err)
			}
			return
		case <-t.C:
			if err := l.saveSnapshot(); err != nil {
				l.log.Warn("kafkalog: fold snapshot", "err", err)
			}
		}
	}
}
