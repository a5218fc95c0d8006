package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/poststelle/poststelle/eventstore"
)

func leafN(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint(i))) }

// TestFrontierMatchesTlog grows a Frontier and a Tree side by side and
// compares every head with tlog's own tree hash, which an auditor's tool
// would use.
func TestFrontierMatchesTlog(t *testing.T) {
	var f Frontier
	var tr Tree
	if f.Root() != sha256.Sum256(nil) {
		t.Fatalf("empty frontier root %x, want SHA-256 of nothing", f.Root())
	}
	for i := range 130 {
		f.Append(leafN(i))
		if err := tr.Append(leafN(i)); err != nil {
			t.Fatal(err)
		}
		want, err := tlog.TreeHash(int64(i+1), &tr)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(i+1) || f.Root() != [32]byte(want) {
			t.Fatalf("size %d: frontier root %x, tlog %x", i+1, f.Root(), want)
		}
		if r, _ := tr.Root(int64(i + 1)); r != [32]byte(want) {
			t.Fatalf("size %d: Tree.Root %x, tlog %x", i+1, r, want)
		}
		// The restored frontier continues exactly as the original.
		g, err := RestoreFrontier(f.Size(), f.Nodes())
		if err != nil || g.Root() != f.Root() {
			t.Fatalf("size %d: restore: %v", i+1, err)
		}
	}
}

// TestFrontierGoldenRoot checks the head over three leaf hashes against the
// value testdata/vectors.py computed from RFC 9162's definition.
func TestFrontierGoldenRoot(t *testing.T) {
	full, empty := vectorEvent(), eventstore.Event{RecordedAt: time.Unix(0, 0)}
	var f Frontier
	for _, e := range []*eventstore.Event{&full, &empty, &full} {
		f.Append(LeafHash(e))
	}
	const want = "1ec5fecba0b47f4e0df0dbe954aa39e752b39f1394c631c255d31cf14b39055c"
	if r := f.Root(); hex.EncodeToString(r[:]) != want {
		t.Fatalf("root %x, want %s", r, want)
	}
}

func TestFrontierClone(t *testing.T) {
	var f Frontier
	for i := range 5 {
		f.Append(leafN(i))
	}
	before := f.Root()
	c := f.Clone()
	c.Append(leafN(5))
	if f.Root() != before || f.Size() != 5 {
		t.Fatal("appending to a clone changed the original")
	}
	f.Append(leafN(5))
	if f.Root() != c.Root() {
		t.Fatal("clone and original differ after the same append")
	}
}

func TestRestoreFrontierRefuses(t *testing.T) {
	nodes := make([][32]byte, 2)
	for _, tt := range []struct {
		size  int64
		nodes int
	}{{-1, 0}, {3, 1}, {4, 2}, {0, 1}, {7, 2}} {
		if _, err := RestoreFrontier(tt.size, nodes[:tt.nodes]); err == nil {
			t.Errorf("RestoreFrontier(%d, %d nodes) accepted", tt.size, tt.nodes)
		}
	}
}

func TestProofs(t *testing.T) {
	var tr Tree
	for i := range 21 {
		if err := tr.Append(leafN(i)); err != nil {
			t.Fatal(err)
		}
	}
	for size := int64(1); size <= 21; size++ {
		root, _ := tr.Root(size)
		for i := range size {
			p, err := tr.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckInclusion(p, size, root, i, leafN(int(i))); err != nil {
				t.Fatalf("leaf %d in %d: %v", i, size, err)
			}
			if CheckInclusion(p, size, root, i, leafN(int(i)+1)) == nil {
				t.Fatalf("leaf %d in %d: proof accepts another leaf", i, size)
			}
		}
		for old := int64(1); old <= size; old++ {
			oldRoot, _ := tr.Root(old)
			p, err := tr.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConsistency(p, size, root, old, oldRoot); err != nil {
				t.Fatalf("%d in %d: %v", old, size, err)
			}
			if old < size && CheckConsistency(p, size, root, old, leafN(99)) == nil {
				t.Fatalf("%d in %d: proof accepts a wrong old root", old, size)
			}
		}
	}
	if _, err := tr.InclusionProof(21, 21); err == nil {
		t.Fatal("inclusion proof for a leaf beyond the tree")
	}
}
