package integrity

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// Frontier is the compact form of a growing Merkle tree: the roots of its
// perfect subtrees, largest first. It gives the tree head after every append
// in O(log n) memory, which is what a writer needs to sign checkpoints.
type Frontier struct {
	size  int64
	nodes []tlog.Hash // perfect subtree roots, left to right
}

// Size is the number of leaves appended.
func (f *Frontier) Size() int64 { return f.size }

// Append adds a leaf hash.
func (f *Frontier) Append(leaf [32]byte) {
	h := tlog.Hash(leaf)
	// Merge equal-sized perfect subtrees, as binary addition carries.
	for n := f.size; n&1 == 1; n >>= 1 {
		last := len(f.nodes) - 1
		h = tlog.NodeHash(f.nodes[last], h)
		f.nodes = f.nodes[:last]
	}
	f.nodes = append(f.nodes, h)
	f.size++
}

// Root returns the RFC 9162 Merkle tree head over all leaves appended; the
// empty tree's head is SHA-256 of nothing, as in RFC 9162.
func (f *Frontier) Root() [32]byte {
	if len(f.nodes) == 0 {
		return emptyRoot
	}
	h := f.nodes[len(f.nodes)-1]
	for i := len(f.nodes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.nodes[i], h)
	}
	return h
}

// Clone returns an independent copy, so a writer can compute a tentative head
// and roll back if its transaction fails.
func (f *Frontier) Clone() *Frontier {
	return &Frontier{size: f.size, nodes: append([]tlog.Hash(nil), f.nodes...)}
}

// emptyRoot is SHA-256 of the empty string.
var emptyRoot = [32]byte{0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}

// Tree holds every stored hash of a partition's Merkle tree in memory so that
// inclusion and consistency proofs can be produced. An auditor builds it from
// the leaves; 1 million events take about 64 MB.
type Tree struct {
	hashes []tlog.Hash
	size   int64
}

// Append adds a leaf hash.
func (t *Tree) Append(leaf [32]byte) error {
	add, err := tlog.StoredHashesForRecordHash(t.size, tlog.Hash(leaf), t)
	if err != nil {
		return fmt.Errorf("integrity: extend tree at %d: %w", t.size, err)
	}
	t.hashes = append(t.hashes, add...)
	t.size++
	return nil
}

// Size is the number of leaves.
func (t *Tree) Size() int64 { return t.size }

// ReadHashes implements tlog.HashReader.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, ix := range indexes {
		if ix < 0 || ix >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("integrity: stored hash %d not in tree of %d leaves", ix, t.size)
		}
		out[i] = t.hashes[ix]
	}
	return out, nil
}

// Root returns the head of the tree's first n leaves.
func (t *Tree) Root(n int64) ([32]byte, error) {
	if n == 0 {
		return emptyRoot, nil
	}
	h, err := tlog.TreeHash(n, t)
	return h, err
}

// InclusionProof proves that leaf index lies in the tree of the first size leaves.
func (t *Tree) InclusionProof(index, size int64) ([][32]byte, error) {
	p, err := tlog.ProveRecord(size, index, t)
	if err != nil {
		return nil, fmt.Errorf("integrity: prove leaf %d in %d: %w", index, size, err)
	}
	return hashesOut(p), nil
}

// ConsistencyProof proves that the tree of size old is a prefix of the tree of size new.
func (t *Tree) ConsistencyProof(old, newSize int64) ([][32]byte, error) {
	p, err := tlog.ProveTree(newSize, old, t)
	if err != nil {
		return nil, fmt.Errorf("integrity: prove tree %d in %d: %w", old, newSize, err)
	}
	return hashesOut(p), nil
}

// CheckInclusion verifies an inclusion proof of leaf at index in the tree of
// the given size and root.
func CheckInclusion(proof [][32]byte, size int64, root [32]byte, index int64, leaf [32]byte) error {
	if err := tlog.CheckRecord(hashesIn(proof), size, root, index, leaf); err != nil {
		return fmt.Errorf("integrity: leaf %d not proven in tree of %d: %w", index, size, err)
	}
	return nil
}

// CheckConsistency verifies that the tree (old, oldRoot) is a prefix of (newSize, newRoot).
func CheckConsistency(proof [][32]byte, newSize int64, newRoot [32]byte, old int64, oldRoot [32]byte) error {
	if err := tlog.CheckTree(hashesIn(proof), newSize, newRoot, old, oldRoot); err != nil {
		return fmt.Errorf("integrity: tree %d not a prefix of tree %d: %w", old, newSize, err)
	}
	return nil
}

func hashesOut[S ~[]tlog.Hash](p S) [][32]byte {
	out := make([][32]byte, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}

func hashesIn(p [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}

// Nodes returns the frontier's perfect subtree roots, left to right, for
// persisting alongside a checkpoint.
func (f *Frontier) Nodes() [][32]byte { return hashesOut(f.nodes) }

// RestoreFrontier rebuilds a frontier from Nodes; it checks that the node
// count fits the size (one node per set bit).
func RestoreFrontier(size int64, nodes [][32]byte) (*Frontier, error) {
	if size < 0 || bits.OnesCount64(uint64(size)) != len(nodes) {
		return nil, fmt.Errorf("integrity: %d frontier nodes do not fit tree size %d", len(nodes), size)
	}
	return &Frontier{size: size, nodes: hashesIn(nodes)}, nil
}
