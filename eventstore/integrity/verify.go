package integrity

import (
	"crypto"
	"fmt"

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
}

// NewVerifier starts verifying a partition. Checkpoints must be sorted by size.
func NewVerifier(pub crypto.PublicKey, logID string, partition int32, cps []eventstore.Checkpoint) (*Verifier, error) {
	for i := range cps {
		if err := VerifyCheckpoint(pub, logID, &cps[i]); err != nil {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: err.Error()}
		}
		if cps[i].Partition != partition {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: "checkpoint belongs to another partition"}
		}
		if i > 0 && cps[i].Size <= cps[i-1].Size {
			return nil, &Problem{Partition: partition, Offset: cps[i].Size - 1, Reason: "checkpoints out of order"}
		}
	}
	v := &Verifier{pub: pub, logID: logID, partition: partition, checkpoints: cps}
	return v, v.checkHeads()
}

// Add verifies the next event of the partition.
func (v *Verifier) Add(e *eventstore.Event) error {
	switch {
	case e.Position.Partition != v.partition:
		return v.fail(fmt.Sprintf("event %s is from partition %d", e.ID, e.Position.Partition))
	case e.Position.Offset != v.offset:
		return v.fail(fmt.Sprintf("expected offset %d, found %d (event %s): an event was removed, inserted or moved", v.offset, e.Position.Offset, e.ID))
	case e.PrevHash != v.prev:
		return v.fail(fmt.Sprintf("event %s does not link to its predecessor: the predecessor was altered, removed or reordered", e.ID))
	}
	leaf := LeafHash(e)
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

func (v *Verifier) fail(reason string) error {
	return &Problem{Partition: v.partition, Offset: v.offset, Reason: reason}
}

// Summary is the outcome of a completed verification.
type Summary struct {
	Events      int64
	Checkpoints int
	// Uncovered counts the newest events that no checkpoint covers yet.
	Uncovered int64
	Root      [32]byte
}

// Finish ends verification: every checkpoint must have been reached.
func (v *Verifier) Finish() (Summary, error) {
	if v.next < len(v.checkpoints) {
		c := v.checkpoints[v.next]
		return Summary{}, &Problem{Partition: v.partition, Offset: v.offset,
			Reason: fmt.Sprintf("log ends at %d events but a signed checkpoint covers %d: events were removed", v.offset, c.Size)}
	}
	var covered int64
	if n := len(v.checkpoints); n > 0 {
		covered = v.checkpoints[n-1].Size
	}
	return Summary{Events: v.offset, Checkpoints: len(v.checkpoints), Uncovered: v.offset - covered, Root: v.frontier.Root()}, nil
}
