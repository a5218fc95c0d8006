package ers

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"slices"
)

// groupHash hashes a group of hash values the RFC 4998 way (section 4.2
// steps 3 and 4): sorted binary ascending, concatenated, hashed. A group of
// one value stands for itself, not for its hash: RFC 6283 section 3.2.2
// says so for XMLERS and DSS applies the same rule to the ASN.1 syntax, so
// we never write such groups where the two readings would differ, and read
// them as DSS does.
func groupHash(h crypto.Hash, values [][]byte) []byte {
	if len(values) == 1 {
		return values[0]
	}
	sorted := slices.Clone(values)
	slices.SortFunc(sorted, bytes.Compare)
	d := h.New()
	for _, v := range sorted {
		d.Write(v)
	}
	return d.Sum(nil)
}

// hashOf is h over the concatenation of parts.
func hashOf(h crypto.Hash, parts ...[]byte) []byte {
	d := h.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// rootOf recomputes the root hash from a leaf hash through a reduced hash
// tree (RFC 4998 section 4.3 steps 2 and 3): the leaf must be in the first
// PartialHashtree; each computed value joins the next one.
func rootOf(h crypto.Hash, leaf []byte, tree [][][]byte) ([]byte, error) {
	if len(tree) == 0 {
		return leaf, nil
	}
	var cur []byte
	for i, group := range tree {
		for _, v := range group {
			if len(v) != h.Size() {
				return nil, fmt.Errorf("hash value of %d bytes in PartialHashtree %d, %v has %d", len(v), i, h, h.Size())
			}
		}
		values := group
		if i == 0 {
			if !slices.ContainsFunc(group, func(v []byte) bool { return bytes.Equal(v, leaf) }) {
				return nil, errors.New("the hash value is not in the first PartialHashtree")
			}
		} else {
			values = append(slices.Clone(group), cur)
		}
		cur = groupHash(h, values)
	}
	return cur, nil
}

// buildTree makes a binary hash tree over leaves (RFC 4998 section 4.2
// step 4): pairs of neighbours are hashed, an odd node at the end of a
// level moves up unchanged. It returns the root and, for each leaf, its
// reduced hash tree: the first PartialHashtree holds the leaf and its first
// sibling, each further one the next sibling on the way to the root. A
// single leaf is its own root and gets no reduced hash tree.
func buildTree(h crypto.Hash, leaves [][]byte) (root []byte, paths [][][][]byte) {
	type node struct {
		hash   []byte
		leaves []int
	}
	paths = make([][][][]byte, len(leaves))
	level := make([]node, len(leaves))
	for i, l := range leaves {
		level[i] = node{hash: l, leaves: []int{i}}
	}
	addSibling := func(leaf int, sibling []byte) {
		if paths[leaf] == nil {
			paths[leaf] = [][][]byte{{leaves[leaf], sibling}}
			return
		}
		paths[leaf] = append(paths[leaf], [][]byte{sibling})
	}
	for len(level) > 1 {
		var next []node
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			a, b := level[i], level[i+1]
			for _, l := range a.leaves {
				addSibling(l, b.hash)
			}
			for _, l := range b.leaves {
				addSibling(l, a.hash)
			}
			next = append(next, node{hash: groupHash(h, [][]byte{a.hash, b.hash}), leaves: append(slices.Clone(a.leaves), b.leaves...)})
		}
		level = next
	}
	return level[0].hash, paths
}
