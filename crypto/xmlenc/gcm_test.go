package xmlenc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// sealStream encrypts with our streaming GCM, feeding the plaintext in
// pieces of the sizes given (cycled), and returns ciphertext||tag.
func sealStream(t testing.TB, key, iv, plain []byte, pieces []int) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newGCMStream(block, iv, false)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(plain))
	for off, i := 0, 0; off < len(plain); i++ {
		n := min(pieces[i%len(pieces)], len(plain)-off)
		if err := s.xorKeyStream(out[off:off+n], plain[off:off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	tag := s.tag()
	return append(out, tag[:]...)
}

func openStream(t testing.TB, key, iv, sealed []byte, pieces []int) ([]byte, bool) {
	t.Helper()
	block, _ := aes.NewCipher(key)
	s, err := newGCMStream(block, iv, true)
	if err != nil {
		t.Fatal(err)
	}
	ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	out := bytes.Clone(ct)
	for off, i := 0, 0; off < len(ct); i++ {
		n := min(pieces[i%len(pieces)], len(ct)-off)
		if err := s.xorKeyStream(out[off:off+n], out[off:off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	return out, s.verify(tag)
}

func stdGCM(t testing.TB, key, iv []byte) cipher.AEAD {
	t.Helper()
	block, _ := aes.NewCipher(key)
	g, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGCMStreamMatchesStdlib wants our streaming GCM to produce exactly
// crypto/cipher's ciphertext and tag, for 12 and 16 byte IVs, every key
// size, lengths around block edges and pieces of odd sizes, and to open
// what crypto/cipher sealed.
func TestGCMStreamMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 4095, 4096, 70000}
	piecesSets := [][]int{{1 << 20}, {1}, {7, 16, 3}, {16}, {100, 4096}}
	for _, keyLen := range []int{16, 24, 32} {
		for _, ivLen := range []int{12, 16, 8, 60} {
			for _, n := range lengths {
				key, iv, plain := randBytes(r, keyLen), randBytes(r, ivLen), randBytes(r, n)
				want := stdGCM(t, key, iv).Seal(nil, iv, plain, nil)
				for _, pieces := range piecesSets {
					got := sealStream(t, key, iv, plain, pieces)
					if !bytes.Equal(got, want) {
						t.Fatalf("key %d iv %d len %d pieces %v: ciphertext differs", keyLen, ivLen, n, pieces)
					}
					back, ok := openStream(t, key, iv, want, pieces)
					if !ok || !bytes.Equal(back, plain) {
						t.Fatalf("key %d iv %d len %d pieces %v: open failed (tag ok %v)", keyLen, ivLen, n, pieces, ok)
					}
				}
				if n > 0 {
					bad := bytes.Clone(want)
					bad[r.IntN(len(bad))] ^= 1 << r.IntN(8)
					if _, ok := openStream(t, key, iv, bad, []int{13}); ok {
						t.Fatalf("key %d iv %d len %d: tampered ciphertext opened", keyLen, ivLen, n)
					}
				}
			}
		}
	}
}

// TestGCMCounterWrap covers a 16 byte IV whose counter's low 32 bits wrap
// inside the message: GCM wraps them, a plain CTR would carry.
func TestGCMCounterWrap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	key := randBytes(r, 32)
	for try := 0; try < 200000; try++ {
		iv := randBytes(r, 16)
		block, _ := aes.NewCipher(key)
		s, _ := newGCMStream(block, iv, false)
		low := binary.BigEndian.Uint32(s.ctr[12:])
		if low < 1<<32-1<<16 {
			continue
		}
		plain := randBytes(r, int(1<<32-uint64(low)+3)*16+5)
		want := stdGCM(t, key, iv).Seal(nil, iv, plain, nil)
		if got := sealStream(t, key, iv, plain, []int{4096, 17}); !bytes.Equal(got, want) {
			t.Fatal("ciphertext differs across the counter wrap")
		}
		return
	}
	t.Fatal("found no IV whose counter wraps; widen the search")
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
