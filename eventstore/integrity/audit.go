package integrity

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// AuditedLog is what an auditor needs of a log: its events and signed heads.
type AuditedLog interface {
	eventstore.Log
	eventstore.Heads
}

// LogSummary is the outcome of verifying a whole log.
type LogSummary struct {
	Partitions []Summary
	Events     int64
}

// VerifyOptions tunes VerifyLogWith.
type VerifyOptions struct {
	// Each, when set, sees every verified event (the CLI reports progress
	// and checks blobs with it).
	Each func(*eventstore.Event) error
	// Now is the time an uncovered tail's age is measured at (default
	// time.Now).
	Now func() time.Time
}

// CheckpointLag is implemented by logs whose checkpoints trail their
// events, as the Kafka log's notary signs each partition's head
// periodically: it is how long an event may honestly wait for a checkpoint.
// A log without it signs a checkpoint in every commit, so on such a log an
// event no checkpoint covers was written outside the gateway.
type CheckpointLag interface {
	CheckpointLag() time.Duration
}

// Stored is what a log keeps beside its events and trusts when it reopens
// instead of recomputing it: per offset the event's leaf hash, per
// checkpoint size the Merkle frontier (Frontier.Nodes concatenated), both as
// the stored bytes.
type Stored struct {
	Leaves    map[int64][]byte
	Frontiers map[int64][]byte
}

// StoredHashes is implemented by logs that keep derived hashes (the
// embedded log's leaf_hash column and checkpoint frontiers). VerifyLog
// compares them with what it recomputes, since a writer that reopened the
// log would otherwise extend it from an altered state.
type StoredHashes interface {
	// StoredHashes returns the leaf hashes of offsets [from, to) and the
	// frontiers of checkpoints with sizes in (from, to].
	StoredHashes(ctx context.Context, partition int32, from, to int64) (Stored, error)
}

// StoredReader is implemented by logs that read the stored hashes together
// with the events: the embedded log reads its leaf_hash column in the same
// scan, which a separate StoredHashes query would make twice.
type StoredReader interface {
	StoredHashes
	// ReadStored is Read with StoredHashes for the events it returns.
	ReadStored(ctx context.Context, partition int32, from int64, limit int) ([]eventstore.Event, Stored, error)
}

// VerifyLog checks every partition of the log against its signed checkpoints.
// It returns a *Problem naming the first broken position, or an error when the
// log cannot be read at all. each, when set, sees every verified event (the
// CLI reports progress and checks blobs with it).
func VerifyLog(ctx context.Context, l AuditedLog, pub crypto.PublicKey, each func(*eventstore.Event) error) (LogSummary, error) {
	return VerifyLogWith(ctx, l, pub, VerifyOptions{Each: each})
}

// VerifyLogWith is VerifyLog with options. Besides every event and
// checkpoint it checks the hashes the log stores (StoredHashes) and the
// events no checkpoint covers: on a log that signs every commit they fail;
// on one with a CheckpointLag they pass while the oldest of them is younger
// than the lag (measured at the later of now and the newest checkpoint's
// time) and are reported in the Summary either way.
func VerifyLogWith(ctx context.Context, l AuditedLog, pub crypto.PublicKey, opts VerifyOptions) (LogSummary, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var out LogSummary
	parts, err := l.Partitions(ctx)
	if err != nil {
		return out, fmt.Errorf("integrity: count partitions: %w", err)
	}
	for p := range parts {
		s, err := verifyPartition(ctx, l, pub, p, opts.Each)
		if err == nil {
			err = checkTail(l, p, s, opts.Now())
		}
		if err != nil {
			return out, err
		}
		out.Partitions = append(out.Partitions, s)
		out.Events += s.Events
	}
	return out, nil
}

// checkTail applies the uncovered-tail rule of VerifyLogWith.
func checkTail(l AuditedLog, p int32, s Summary, now time.Time) error {
	if s.Uncovered == 0 {
		return nil
	}
	first := s.Events - s.Uncovered
	lagging, ok := l.(CheckpointLag)
	if !ok {
		return &Problem{Partition: p, Offset: first, Reason: fmt.Sprintf(
			"%d events (offsets %d to %d) are covered by no signed checkpoint; this log signs every commit, so they were written outside the gateway",
			s.Uncovered, first, s.Events-1)}
	}
	ref := now
	if s.NewestCheckpoint.After(ref) {
		ref = s.NewestCheckpoint
	}
	lag := lagging.CheckpointLag()
	if age := ref.Sub(s.OldestUncovered); age >= lag {
		return &Problem{Partition: p, Offset: first, Reason: fmt.Sprintf(
			"%d events after the newest checkpoint; the oldest was recorded at %s, %s before %s, longer than the %s the notary may take: they were added outside the gateway, or the notary stopped",
			s.Uncovered, s.OldestUncovered.Format(time.RFC3339Nano), age.Round(time.Millisecond), ref.Format(time.RFC3339), lag)}
	}
	return nil
}

func verifyPartition(ctx context.Context, l AuditedLog, pub crypto.PublicKey, p int32, each func(*eventstore.Event) error) (Summary, error) {
	cps, err := l.Checkpoints(ctx, p)
	if err != nil {
		return Summary{}, &Problem{Partition: p, Offset: 0, Reason: "checkpoints unreadable: " + err.Error()}
	}
	workers := runtime.GOMAXPROCS(0)
	v, err := newVerifier(pub, l.LogID(), p, cps, workers)
	if err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for next := int64(0); ; {
		// Chunks are read and hashed ahead by several workers at the offsets
		// a dense partition has; the chain, the heads and the stored hashes
		// are checked here, in order. A chunk that does not start where the
		// previous one ended (a short read) stops the read-ahead, which then
		// starts again where the checked events end.
		chunks, stop := readAhead(ctx, l, p, next, workers)
		done, err := v.checkChunks(ctx, chunks, each)
		stop()
		if err != nil || done {
			if err == nil {
				return v.Finish()
			}
			return Summary{}, err
		}
		next = v.Size()
	}
}

// readChunk is how many events one read fetches; with 1 KiB events a chunk
// is about 2.5 MB. A chunk is queued in order before a worker reads it, so
// at most workers+1 chunks are in memory: the queued ones and the one
// being checked.
const readChunk = 2000

// checkChunks consumes the read-ahead in order. It reports done at the end of
// the partition, or not done when the read-ahead went off the offsets that
// the partition really has and must start again at v.Size().
func (v *Verifier) checkChunks(ctx context.Context, chunks <-chan *chunk, each func(*eventstore.Event) error) (bool, error) {
	for c := range chunks {
		<-c.ready
		if c.err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, &Problem{Partition: v.partition, Offset: c.from, Reason: "events unreadable: " + c.err.Error()}
		}
		if c.from != v.Size() {
			return false, nil
		}
		if len(c.evs) == 0 {
			return true, nil
		}
		if err := v.checkChunk(c, each); err != nil {
			return false, err
		}
		if len(c.evs) < readChunk {
			return false, nil // maybe the end; the next read says
		}
	}
	return false, ctx.Err()
}

func (v *Verifier) checkChunk(c *chunk, each func(*eventstore.Event) error) error {
	for i := range c.evs {
		e := &c.evs[i]
		if err := v.addLeaf(e, c.leaves[i]); err != nil {
			return err
		}
		if c.stored != nil {
			if err := checkStored(v, c.stored); err != nil {
				return err
			}
		}
		if each != nil {
			if err := each(e); err != nil {
				return &Problem{Partition: v.partition, Offset: e.Position.Offset, Reason: err.Error()}
			}
		}
	}
	return nil
}

// chunk is one read of the read-ahead: the events of a partition from an
// offset, their leaf hashes and what the log stores beside them.
type chunk struct {
	from   int64
	evs    []eventstore.Event
	leaves [][32]byte
	stored *Stored
	err    error
	ready  chan struct{}
}

// readAhead reads and hashes chunks of readChunk events from offset from on,
// in workers goroutines, and sends them in offset order; the receiver waits
// for each chunk's ready. It stops after a short or failed chunk, and when
// ctx ends or stop is called; stop returns once every worker has finished.
func readAhead(ctx context.Context, l AuditedLog, p int32, from int64, workers int) (chunks <-chan *chunk, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ordered := make(chan *chunk, workers)
	work := make(chan *chunk)
	var wg sync.WaitGroup
	var short atomic.Bool // a chunk came back short or failed: issue no more
	for range workers {
		wg.Go(func() {
			for c := range work {
				c.read(ctx, l, p)
				if c.err != nil || len(c.evs) < readChunk {
					short.Store(true)
				}
				close(c.ready)
			}
		})
	}
	go func() {
		defer func() {
			close(work)
			wg.Wait()
			cancel()
			close(ordered)
		}()
		for off := from; !short.Load(); off += readChunk {
			c := &chunk{from: off, ready: make(chan struct{})}
			select {
			case ordered <- c:
			case <-ctx.Done():
				return
			}
			select {
			case work <- c:
			case <-ctx.Done():
				c.err = ctx.Err()
				close(c.ready)
				return
			}
		}
	}()
	return ordered, func() {
		cancel()
		for c := range ordered {
			<-c.ready
		}
	}
}

// read fetches the chunk's events and stored hashes and hashes the events.
func (c *chunk) read(ctx context.Context, l AuditedLog, p int32) {
	if sr, ok := l.(StoredReader); ok {
		var s Stored
		c.evs, s, c.err = sr.ReadStored(ctx, p, c.from, readChunk)
		c.stored = &s
	} else {
		c.evs, c.err = l.Read(ctx, p, c.from, readChunk)
		if sh, ok := l.(StoredHashes); ok && c.err == nil && len(c.evs) > 0 {
			s, err := sh.StoredHashes(ctx, p, c.from, c.evs[len(c.evs)-1].Position.Offset+1)
			c.stored, c.err = &s, err
		}
	}
	if c.err != nil || len(c.evs) == 0 {
		return
	}
	c.leaves = make([][32]byte, len(c.evs))
	var buf []byte
	for i := range c.evs {
		buf = appendLeaf(buf[:0], &c.evs[i])
		c.leaves[i] = recordHash(buf)
	}
}

// checkStored compares what the log stores for the event just verified.
func checkStored(v *Verifier, s *Stored) error {
	off := v.Size() - 1
	leaf := v.LastLeaf()
	if !bytes.Equal(s.Leaves[off], leaf[:]) {
		return &Problem{Partition: v.partition, Offset: off, Reason: fmt.Sprintf(
			"the stored leaf hash %x is not the event's hash %x: it was altered, and a writer reopening the log would link the next event to it",
			s.Leaves[off], leaf)}
	}
	stored, ok := s.Frontiers[v.Size()]
	if !ok {
		return nil
	}
	var want []byte
	for _, n := range v.FrontierNodes() {
		want = append(want, n[:]...)
	}
	if !bytes.Equal(stored, want) {
		return &Problem{Partition: v.partition, Offset: off, Reason: fmt.Sprintf(
			"the Merkle frontier stored with the checkpoint at size %d is not the recomputed one: it was altered, and a writer reopening the log would refuse it",
			v.Size())}
	}
	return nil
}

// StreamProof lets a third party check that one message's events are in the
// log without seeing any other event: the events themselves, each with an
// inclusion proof against one signed checkpoint of its partition.
type StreamProof struct {
	LogID  string        `json:"logId"`
	Events []ProvenEvent `json:"events"`
	// Checkpoints are the signed heads the proofs refer to, in the text
	// form of FormatCheckpoint, one per partition involved.
	Checkpoints []string `json:"checkpoints"`
}

// ProvenEvent is one event with its proof.
type ProvenEvent struct {
	// Leaf is the event's canonical encoding (EncodeLeaf), base64.
	Leaf      string   `json:"leaf"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TreeSize  int64    `json:"treeSize"`
	Proof     []string `json:"proof"`
}

// ProveStream builds the proof for one stream against the newest checkpoint
// of its partition; events newer than that checkpoint are not yet provable.
func ProveStream(ctx context.Context, l AuditedLog, tenant, stream string) (*StreamProof, error) {
	evs, err := l.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("integrity: read stream %s: %w", stream, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("integrity: stream %s has no events", stream)
	}
	out := &StreamProof{LogID: l.LogID()}
	trees := map[int32]*Tree{}
	heads := map[int32]eventstore.Checkpoint{}
	for i := range evs {
		p := evs[i].Position.Partition
		if _, ok := trees[p]; !ok {
			t, head, err := buildTree(ctx, l, p)
			if err != nil {
				return nil, err
			}
			trees[p], heads[p] = t, head
			out.Checkpoints = append(out.Checkpoints, string(FormatCheckpoint(l.LogID(), &head)))
		}
		head := heads[p]
		if evs[i].Position.Offset >= head.Size {
			continue
		}
		proof, err := trees[p].InclusionProof(evs[i].Position.Offset, head.Size)
		if err != nil {
			return nil, err
		}
		pe := ProvenEvent{Leaf: base64.StdEncoding.EncodeToString(EncodeLeaf(&evs[i])), Partition: p,
			Offset: evs[i].Position.Offset, TreeSize: head.Size}
		for _, h := range proof {
			pe.Proof = append(pe.Proof, base64.StdEncoding.EncodeToString(h[:]))
		}
		out.Events = append(out.Events, pe)
	}
	if len(out.Events) == 0 {
		return nil, fmt.Errorf("integrity: no checkpoint covers stream %s yet", stream)
	}
	return out, nil
}

// buildTree reads a partition's leaves up to its newest checkpoint.
func buildTree(ctx context.Context, l AuditedLog, p int32) (*Tree, eventstore.Checkpoint, error) {
	cps, err := l.Checkpoints(ctx, p)
	if err != nil || len(cps) == 0 {
		return nil, eventstore.Checkpoint{}, fmt.Errorf("integrity: partition %d has no checkpoint: %v", p, err)
	}
	head := cps[len(cps)-1]
	t := &Tree{}
	for from := int64(0); from < head.Size; {
		evs, err := l.Read(ctx, p, from, 2000)
		if err != nil {
			return nil, head, err
		}
		if len(evs) == 0 {
			return nil, head, fmt.Errorf("integrity: partition %d ends before its checkpoint", p)
		}
		for i := range evs {
			if evs[i].Position.Offset < head.Size {
				if err := t.Append(LeafHash(&evs[i])); err != nil {
					return nil, head, err
				}
			}
		}
		from = evs[len(evs)-1].Position.Offset + 1
	}
	if root, _ := t.Root(head.Size); root != head.Root {
		return nil, head, fmt.Errorf("integrity: partition %d does not match its newest checkpoint; run log verify", p)
	}
	return t, head, nil
}

// CheckStreamProof verifies a StreamProof with the gateway's public key and
// returns the proven leaf encodings.
func CheckStreamProof(pub crypto.PublicKey, sp *StreamProof) ([][]byte, error) {
	heads := map[int32]eventstore.Checkpoint{}
	for _, text := range sp.Checkpoints {
		logID, c, err := ParseCheckpoint([]byte(text))
		if err != nil {
			return nil, err
		}
		if logID != sp.LogID {
			return nil, errors.New("integrity: checkpoint of another log")
		}
		if err := VerifyCheckpoint(pub, logID, &c); err != nil {
			return nil, err
		}
		heads[c.Partition] = c
	}
	var leaves [][]byte
	for i, pe := range sp.Events {
		head, ok := heads[pe.Partition]
		if !ok || head.Size != pe.TreeSize {
			return nil, fmt.Errorf("integrity: event %d refers to no supplied checkpoint", i)
		}
		leaf, err := base64.StdEncoding.DecodeString(pe.Leaf)
		if err != nil {
			return nil, fmt.Errorf("integrity: event %d: %w", i, err)
		}
		proof := make([][32]byte, len(pe.Proof))
		for j, s := range pe.Proof {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("integrity: event %d: malformed proof hash %d", i, j)
			}
			copy(proof[j][:], b)
		}
		if err := CheckInclusion(proof, head.Size, head.Root, pe.Offset, recordHash(leaf)); err != nil {
			return nil, err
		}
		leaves = append(leaves, leaf)
	}
	return leaves, nil
}
