package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The eight leaves and the tree heads of the RFC 6962 test data that the
// Certificate Transparency reference implementations share.
var ctLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

var ctRoots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

// Consistency proofs of the same test data.
var ctConsistency = []struct {
	m, n  int64
	proof []string
}{
	{1, 1, nil},
	{1, 8, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{6, 8, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 5, []string{
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hash32(t *testing.T, s string) [32]byte {
	var h [32]byte
	copy(h[:], unhex(t, s))
	return h
}

func ctTree(t *testing.T) *Tree {
	tr := &Tree{}
	for _, l := range ctLeaves {
		if err := tr.Append(recordHash(unhex(t, l))); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func TestConsistencyFixedVectors(t *testing.T) {
	tr := ctTree(t)
	for n := range int64(9) {
		root, err := tr.Root(n)
		if err != nil || hex.EncodeToString(root[:]) != ctRoots[n] {
			t.Fatalf("root of %d leaves %x (%v), want %s", n, root, err, ctRoots[n])
		}
	}
	for _, v := range ctConsistency {
		proof, err := tr.ConsistencyProof(v.m, v.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range proof {
			got = append(got, hex.EncodeToString(h[:]))
		}
		if !slices.Equal(got, v.proof) {
			t.Errorf("proof %d→%d:\n got %q\nwant %q", v.m, v.n, got, v.proof)
		}
		if err := CheckConsistency(proof, v.n, hash32(t, ctRoots[v.n]), v.m, hash32(t, ctRoots[v.m])); err != nil {
			t.Errorf("proof %d→%d does not verify: %v", v.m, v.n, err)
		}
		if !refVerify(v.m, v.n, proof, hash32(t, ctRoots[v.m]), hash32(t, ctRoots[v.n])) {
			t.Errorf("reference verifier refuses %d→%d", v.m, v.n)
		}
	}
}

// refMTH is the Merkle tree hash of RFC 9162 §2.1.1 over leaf hashes,
// written from the definition.
func refMTH(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := largestPow2Below(len(leaves))
	l, r := refMTH(leaves[:k]), refMTH(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func largestPow2Below(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// refSubproof is SUBPROOF of RFC 9162 §2.1.4.1.
func refSubproof(m int, leaves [][32]byte, b bool) [][32]byte {
	n := len(leaves)
	if m == n {
		if b {
			return nil
		}
		return [][32]byte{refMTH(leaves)}
	}
	k := largestPow2Below(n)
	if m <= k {
		return append(refSubproof(m, leaves[:k], b), refMTH(leaves[k:]))
	}
	return append(refSubproof(m-k, leaves[k:], false), refMTH(leaves[:k]))
}

// refVerify is the verification algorithm of RFC 9162 §2.1.4.2.
func refVerify(first, second int64, proof [][32]byte, firstHash, secondHash [32]byte) bool {
	node := func(l, r [32]byte) [32]byte { return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...)) }
	if first == second {
		return len(proof) == 0 && firstHash == secondHash
	}
	if first == 0 || first > second || len(proof) == 0 {
		return false
	}
	if first&(first-1) == 0 { // a power of two: the first tree is a node itself
		proof = append([][32]byte{firstHash}, proof...)
	}
	fn, sn := uint64(first-1), uint64(second-1)
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			fr, sr = node(c, fr), node(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = node(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && fr == firstHash && sr == secondHash
}

// TestConsistencyBruteForce compares our proofs with the RFC's definitions
// for every pair of sizes up to 64, and checks that a proof fails for a
// wrong root or a changed hash.
func TestConsistencyBruteForce(t *testing.T) {
	const max = 64
	leaves := make([][32]byte, max)
	tr := &Tree{}
	for i := range leaves {
		leaves[i] = recordHash([]byte(fmt.Sprintf("event %d", i)))
		if err := tr.Append(leaves[i]); err != nil {
			t.Fatal(err)
		}
	}
	for n := int64(1); n <= max; n++ {
		rootN := refMTH(leaves[:n])
		if got, _ := tr.Root(n); got != rootN {
			t.Fatalf("root of %d differs from the reference", n)
		}
		for m := int64(1); m <= n; m++ {
			rootM := refMTH(leaves[:m])
			proof, err := tr.ConsistencyProof(m, n)
			if err != nil {
				t.Fatal(err)
			}
			if want := refSubproof(int(m), leaves[:n], true); !slices.Equal(proof, want) {
				t.Fatalf("proof %d→%d differs from RFC 9162 SUBPROOF", m, n)
			}
			if err := CheckConsistency(proof, n, rootN, m, rootM); err != nil {
				t.Fatalf("proof %d→%d: %v", m, n, err)
			}
			if !refVerify(m, n, proof, rootM, rootN) {
				t.Fatalf("reference verifier refuses %d→%d", m, n)
			}
			other := rootM
			other[0] ^= 1
			if CheckConsistency(proof, n, rootN, m, other) == nil || CheckConsistency(proof, n, other, m, rootM) == nil {
				t.Fatalf("proof %d→%d accepted a wrong root", m, n)
			}
			for i := range proof {
				bad := slices.Clone(proof)
				bad[i][31] ^= 0x80
				if CheckConsistency(bad, n, rootN, m, rootM) == nil {
					t.Fatalf("proof %d→%d accepted with hash %d changed", m, n, i)
				}
			}
		}
	}
}

// TestExtendsHead covers the verdicts the CLI prints.
func TestExtendsHead(t *testing.T) {
	tr := ctTree(t)
	fork := &Tree{}
	for i, l := range ctLeaves {
		if i == 3 {
			l = "ff"
		}
		fork.Append(recordHash(unhex(t, l)))
	}
	head := func(n int64) Head { return Head{LogID: "x", Size: n, Root: hash32(t, ctRoots[n])} }
	cases := []struct {
		name string
		tree *Tree
		head Head
		want string
	}{
		{"same size", tr, head(8), ""},
		{"extension", tr, head(5), ""},
		{"empty head", tr, head(0), ""},
		{"truncated", ctTreeOf(t, 6), head(7), "truncated"},
		{"forked after the head", fork, head(3), ""},
		{"forked before the head", fork, head(5), "rewritten or forked"},
		{"wrong root, same size", tr, Head{LogID: "x", Size: 8, Root: hash32(t, ctRoots[7])}, "rewritten or forked"},
		{"empty head with a root", tr, Head{LogID: "x", Root: hash32(t, ctRoots[1])}, "empty tree"},
	}
	for _, tc := range cases {
		err := ExtendsHead(tc.tree, tc.head)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func ctTreeOf(t *testing.T, n int) *Tree {
	tr := &Tree{}
	for _, l := range ctLeaves[:n] {
		tr.Append(recordHash(unhex(t, l)))
	}
	return tr
}
