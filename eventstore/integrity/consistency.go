package integrity

import (
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
)

// Consistency of a log with heads kept outside it.
//
// A head (size m, root r) saved earlier is consistent with the log now
// (size n) when the tree of the log's first m events hashes to r: the log is
// then an append-only extension of what the head saw. This is proven the RFC
// 9162 §2.1.4 way, with a consistency proof from m to n checked against both
// roots (Tree.ConsistencyProof and CheckConsistency use the hashing of
// golang.org/x/mod/sumdb/tlog, which is RFC 6962/9162's: leaves
// SHA-256(0x00‖leaf), nodes SHA-256(0x01‖left‖right)). What it catches:
//
//   - truncation: the log is shorter than the head (m > n), even when the
//     checkpoints of the removed events were deleted with them;
//   - rewrite and fork: an event among the first m differs, so no proof
//     links the head's root to the log's.

// HeadProblem says why the log is not a consistent extension of a head.
type HeadProblem struct {
	Head   Head
	Reason string
}

func (p *HeadProblem) Error() string {
	return fmt.Sprintf("head %s at size %d: %s", p.Head.Origin(), p.Head.Size, p.Reason)
}

// HeadCheck checks a log against saved heads while the log is verified: Add
// sees every verified event, Finish compares. It keeps the Merkle tree of
// each partition that has a head, 64 bytes per event.
type HeadCheck struct {
	logID string
	heads []Head
	trees map[int32]*Tree
}

// NewHeadCheck prepares the check of heads of the log logID. A head of
// another log fails here.
func NewHeadCheck(logID string, heads []Head) (*HeadCheck, error) {
	c := &HeadCheck{logID: logID, heads: heads, trees: map[int32]*Tree{}}
	for _, h := range heads {
		if h.LogID != logID {
			return nil, &HeadProblem{Head: h, Reason: fmt.Sprintf("the head is of log %q, this log is %q", h.LogID, logID)}
		}
		c.trees[h.Partition] = &Tree{}
	}
	return c, nil
}

// Add takes the next verified event of its partition.
func (c *HeadCheck) Add(e *eventstore.Event) error {
	t, ok := c.trees[e.Position.Partition]
	if !ok {
		return nil
	}
	if e.Position.Offset != t.Size() {
		return fmt.Errorf("integrity: head check: event at offset %d, expected %d", e.Position.Offset, t.Size())
	}
	return t.Append(LeafHash(e))
}

// Finish checks every head against the events added; partitions is the
// log's partition count. It returns one *HeadProblem per inconsistent head,
// in the heads' order; none means the log extends every head.
func (c *HeadCheck) Finish(partitions int32) []*HeadProblem {
	var out []*HeadProblem
	for _, h := range c.heads {
		if err := c.check(h, partitions); err != nil {
			out = append(out, &HeadProblem{Head: h, Reason: err.Error()})
		}
	}
	return out
}

// Size reports the size the log has now in the head's partition.
func (c *HeadCheck) Size(partition int32) int64 {
	if t, ok := c.trees[partition]; ok {
		return t.Size()
	}
	return 0
}

func (c *HeadCheck) check(h Head, partitions int32) error {
	if h.Partition >= partitions {
		return fmt.Errorf("the log has no partition %d (it has %d): partitions were removed", h.Partition, partitions)
	}
	return ExtendsHead(c.trees[h.Partition], h)
}

// ExtendsHead proves with a consistency proof that the tree t (the whole
// partition now) extends the head h.
func ExtendsHead(t *Tree, h Head) error {
	n := t.Size()
	switch {
	case h.Size > n:
		return fmt.Errorf("the log was truncated: the head covers %d events, the partition now has %d", h.Size, n)
	case h.Size == 0:
		if h.Root != emptyRoot {
			return fmt.Errorf("a head of 0 events must have the empty tree's root")
		}
		return nil
	}
	root, err := t.Root(n)
	if err != nil {
		return err
	}
	proof, err := t.ConsistencyProof(h.Size, n)
	if err != nil {
		return err
	}
	if err := CheckConsistency(proof, n, root, h.Size, h.Root); err != nil {
		return fmt.Errorf("the log was rewritten or forked: its first %d events do not hash to the head's root (no consistency proof from %d to %d events)", h.Size, h.Size, n)
	}
	return nil
}
