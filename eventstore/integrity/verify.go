package integrity

import (
	"crypto"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// Problem describes the first place where a partition fails verification.
type Problem struct {
	Partition int32
	Offset    int64 // the first offset whose history cannot be trusted
	Reason    string
}

func (p *Problem) Error() string {
	return fmt.Sprintf("log broken at partition %d offset %d: %s", p.Partition, p.Offset, p.Reason)
}

// Verifier checks one partition as its events stream past, in offset order,
// against the partition's signed checkpoints. It holds O(log n) state, so an
// auditor can verify a log of any length.
//
// It detects: an altered event (its leaf no longer matches the successor's
// link or the signed head), a removed or inserted event (offsets skip or
// repeat, links break, heads differ), reordered events (same), and a forged
// or altered checkpoint (signature). Removing the newest events together with
// every checkpoint that covers them is detectable only against a head the
// auditor kept or a timestamped head; Finish reports how much of the
// partition no checkpoint covers.
type Verifier struct {
	pub         crypto.PublicKey
	logID       string
	partition   int32
	checkpoints []eventstore.Checkpoint
	next        int // index into checkpoints
	frontier    Frontier
	prev        [32]byte
	offset      int64
	// covered is the size of the newest checkpoint; oldestUncovered the
	// recording time of the event at that offset, once seen.
	covered         int64
	oldestUncovered time.Time
}

// NewVerifier starts verifying a partition. Checkpoints must be sorted by size.
func NewVerifier(pub crypto.PublicKey, logID string, partition int32, cps []eventstore.Checkpoint) (*Verifier, error) {
	return newVerifier(pub, logID, partition, cps, 1)
}

// newVerifier is NewVerifier checking the signatures in workers goroutines:
// the embedded log signs a checkpoint per commit, so a log may hold nearly
// as many signatures as events.
func newVerifier(pub crypto.PublicKey, logID string, partition int32, cps []eventstore.Checkpoint, workers int) (*Verifier, error) {
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	sigErrs := verifySignatures(pub, logID, cps, workers)
	for i := range cps {
		if err := sigErrs[i]; err != nil {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: err.Error()}
		}
		// The key id is not signed; a wrong one is an edit all the same.
		if cps[i].KeyID != kid {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1,
				Reason: fmt.Sprintf("checkpoint at size %d names key %q, but key %s signed it", cps[i].Size, cps[i].KeyID, kid)}
		}
		if cps[i].Partition != partition {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: "checkpoint belongs to another partition"}
		}
		if i > 0 && cps[i].Size <= cps[i-1].Size {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: "checkpoints out of order"}
		}
	}
	v := &Verifier{pub: pub, logID: logID, partition: partition, checkpoints: cps}
	if n := len(cps); n > 0 {
		v.covered = cps[n-1].Size
	}
	return v, v.checkHeads()
}

// verifySignatures checks every checkpoint's signature and returns the
// outcome per checkpoint, so the caller still reports the first bad one.
func verifySignatures(pub crypto.PublicKey, logID string, cps []eventstore.Checkpoint, workers int) []error {
	errs := make([]error, len(cps))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, len(cps))) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(cps)); i = next.Add(1) - 1 {
				errs[i] = VerifyCheckpoint(pub, logID, &cps[i])
			}
		})
	}
	wg.Wait()
	return errs
}

// Add verifies the next event of the partition.
func (v *Verifier) Add(e *eventstore.Event) error {
	return v.addLeaf(e, LeafHash(e))
}

// addLeaf is Add with the event's leaf hash already computed, so that the
// hashing can run ahead in other goroutines.
func (v *Verifier) addLeaf(e *eventstore.Event, leaf [32]byte) error {
	switch {
	case e.Position.Partition != v.partition:
		return v.fail(fmt.Sprintf("event %s is from partition %d", e.ID, e.Position.Partition))
	case e.Position.Offset != v.offset:
		return v.fail(fmt.Sprintf("expected offset %d, found %d (event %s): an event was removed, inserted or moved", v.offset, e.Position.Offset, e.ID))
	case e.PrevHash != v.prev:
		return v.fail(fmt.Sprintf("event %s does not link to its predecessor: the predecessor was altered, removed or reordered", e.ID))
	}
	if v.offset == v.covered {
		v.oldestUncovered = e.RecordedAt
	}
	v.frontier.Append(leaf)
	v.prev = leaf
	v.offset++
	return v.checkHeads()
}

// checkHeads compares every checkpoint that ends at the current size.
func (v *Verifier) checkHeads() error {
	for v.next < len(v.checkpoints) && v.checkpoints[v.next].Size == v.frontier.Size() {
		c := &v.checkpoints[v.next]
		if c.Root != v.frontier.Root() {
			return &Problem{Partition: v.partition, Offset: v.firstOffsetSince(), Reason: fmt.Sprintf("tree head at size %d does not match the signed checkpoint: an event up to offset %d was altered", c.Size, c.Size-1)}
		}
		v.next++
	}
	return nil
}

// firstOffsetSince is the first offset after the last checkpoint that matched.
func (v *Verifier) firstOffsetSince() int64 {
	if v.next == 0 {
		return 0
	}
	return v.checkpoints[v.next-1].Size
}

// Size is the number of events verified so far.
func (v *Verifier) Size() int64 { return v.offset }

// LastLeaf is the leaf hash of the newest verified event.
func (v *Verifier) LastLeaf() [32]byte { return v.prev }

// FrontierNodes is the Merkle frontier after the events verified so far, in
// the form a writer stores beside a checkpoint (Frontier.Nodes).
func (v *Verifier) FrontierNodes() [][32]byte { return v.frontier.Nodes() }

func (v *Verifier) fail(reason string) error {
	return &Problem{Partition: v.partition, Offset: v.offset, Reason: reason}
}

// Summary is the outcome of a completed verification.
type Summary struct {
	Events      int64
	Checkpoints int
	// Uncovered counts the newest events that no checkpoint covers yet;
	// OldestUncovered is the recording time of the first of them.
	Uncovered       int64
	OldestUncovered time.Time
	// NewestCheckpoint is the signing time of the newest checkpoint.
	NewestCheckpoint time.Time
	Root             [32]byte
}

// Finish ends verification: every checkpoint must have been reached.
func (v *Verifier) Finish() (Summary, error) {
	if v.next < len(v.checkpoints) {
		c := v.checkpoints[v.next]
		return Summary{}, &Problem{Partition: v.partition, Offset: v.offset,
			Reason: fmt.Sprintf("log ends at %d events but a signed checkpoint covers %d: events were removed", v.offset, c.Size)}
	}
	s := Summary{Events: v.offset, Checkpoints: len(v.checkpoints), Uncovered: v.offset - v.covered, Root: v.frontier.Root()}
	if s.Uncovered > 0 {
		s.OldestUncovered = v.oldestUncovered
	}
	if n := len(v.checkpoints); n > 0 {
		s.NewestCheckpoint = v.checkpoints[n-1].Time
	}
	return s, nil
}
