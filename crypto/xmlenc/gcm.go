package xmlenc

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// crypto/cipher's GCM opens a whole message at once; an OSCI attachment
// of gigabytes must not be held in memory, so AES-GCM is also done here as
// a stream: CTR from crypto/cipher (hardware AES) and our own GHASH. The
// plaintext a stream has written is valid only once the tag has been
// checked (gcmStream.finish returns nil).

const (
	gcmBlock   = 16
	gcmTagSize = 16
	// gcmMaxBytes is GCM's plaintext limit, 2^39-256 bits.
	gcmMaxBytes = 1<<36 - 32
)

// ghashElem is an element of GF(2^128) in GCM's bit order: hi holds the
// first eight bytes of a block read big-endian, lo the last eight.
type ghashElem struct{ hi, lo uint64 }

// ghash is GHASH keyed by H with Shoup's 8-bit tables: tbl[b] is H times
// the byte b read as 8 coefficients in GCM's bit order (the top bit is
// x^0), so that one multiplication is 16 lookups and shifts.
type ghash struct {
	tbl *[256]ghashElem
	y   ghashElem
}

// ghashReduce8[b] is what the 8 bits b falling off the low end of an
// element in a shift by 8 bring back at the top, reduced by GCM's
// polynomial x^128 + x^7 + x^2 + x + 1.
var ghashReduce8 = func() (r [256]uint64) {
	for b := range r {
		e := ghashElem{lo: uint64(b)}
		for range 8 {
			e = mulX(e)
		}
		r[b] = e.hi
	}
	return r
}()

func newGHASH(h []byte) *ghash {
	g := &ghash{tbl: new([256]ghashElem)}
	x := ghashElem{binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:])}
	for bit := 0x80; bit > 0; bit >>= 1 {
		g.tbl[bit] = x
		x = mulX(x)
	}
	for b := 2; b < 256; b++ {
		if low := b & -b; low != b {
			t, u := g.tbl[low], g.tbl[b^low]
			g.tbl[b] = ghashElem{t.hi ^ u.hi, t.lo ^ u.lo}
		}
	}
	return g
}

// mulX multiplies by x: in GCM's order a right shift, reducing the bit
// that falls off.
func mulX(e ghashElem) ghashElem {
	carry := e.lo & 1
	out := ghashElem{hi: e.hi >> 1, lo: e.lo>>1 | e.hi<<63}
	if carry == 1 {
		out.hi ^= 0xe1 << 56
	}
	return out
}

// mul sets g.y to g.y·H by Horner's rule over its bytes, the last
// (highest powers of x) first.
func (g *ghash) mul() {
	var z ghashElem
	for _, w := range [2]uint64{g.y.lo, g.y.hi} {
		for range 8 {
			top := z.lo & 0xff
			z.lo = z.lo>>8 | z.hi<<56
			z.hi = z.hi>>8 ^ ghashReduce8[top]
			t := &g.tbl[w&0xff]
			z.hi ^= t.hi
			z.lo ^= t.lo
			w >>= 8
		}
	}
	g.y = z
}

// blocks absorbs whole blocks.
func (g *ghash) blocks(p []byte) {
	for len(p) >= gcmBlock {
		g.y.hi ^= binary.BigEndian.Uint64(p[:8])
		g.y.lo ^= binary.BigEndian.Uint64(p[8:16])
		g.mul()
		p = p[gcmBlock:]
	}
}

// padded absorbs p, zero-padding its last block.
func (g *ghash) padded(p []byte) {
	full := len(p) &^ (gcmBlock - 1)
	g.blocks(p[:full])
	if full < len(p) {
		var b [gcmBlock]byte
		copy(b[:], p[full:])
		g.blocks(b[:])
	}
}

func (g *ghash) sum() [gcmBlock]byte {
	var out [gcmBlock]byte
	binary.BigEndian.PutUint64(out[:8], g.y.hi)
	binary.BigEndian.PutUint64(out[8:], g.y.lo)
	return out
}

// gcmStream encrypts or decrypts one GCM message (no additional data, as
// in XML Encryption) in pieces of any size.
type gcmStream struct {
	block   cipher.Block
	g       *ghash
	j0      [gcmBlock]byte
	ctr     [gcmBlock]byte // next counter block
	ks      [gcmBlock]byte // keystream of the current block
	ksUsed  int            // bytes of ks consumed; gcmBlock when none left
	partial [gcmBlock]byte // ciphertext not yet a whole GHASH block
	npart   int
	n       uint64 // ciphertext bytes so far
	decrypt bool
}

func newGCMStream(block cipher.Block, iv []byte, decrypt bool) (*gcmStream, error) {
	if block.BlockSize() != gcmBlock {
		return nil, errors.New("xmlenc: GCM needs a 128-bit block cipher")
	}
	if len(iv) == 0 {
		return nil, errors.New("xmlenc: empty GCM IV")
	}
	s := &gcmStream{block: block, decrypt: decrypt, ksUsed: gcmBlock}
	var h [gcmBlock]byte
	block.Encrypt(h[:], h[:])
	s.g = newGHASH(h[:])
	if len(iv) == 12 {
		copy(s.j0[:], iv)
		s.j0[15] = 1
	} else {
		// J0 = GHASH(IV || 0-pad || [0]64 || [len(IV) bits]64).
		j := newGHASH(h[:])
		j.padded(iv)
		var l [gcmBlock]byte
		binary.BigEndian.PutUint64(l[8:], uint64(len(iv))*8)
		j.blocks(l[:])
		s.j0 = j.sum()
	}
	s.ctr = s.j0
	inc32(&s.ctr)
	return s, nil
}

// inc32 increments the low 32 bits of a counter block, as GCM does (a
// plain CTR mode would carry into the IV bytes).
func inc32(b *[gcmBlock]byte) {
	binary.BigEndian.PutUint32(b[12:], binary.BigEndian.Uint32(b[12:])+1)
}

// xorKeyStream processes src into dst (same length, may alias) and feeds
// the ciphertext to GHASH.
func (s *gcmStream) xorKeyStream(dst, src []byte) error {
	if s.n+uint64(len(src)) > gcmMaxBytes {
		return errors.New("xmlenc: GCM message over its size limit")
	}
	s.n += uint64(len(src))
	out := dst[:len(src)]
	if s.decrypt {
		s.hash(src)
	}
	// Finish the current keystream block, then run whole blocks.
	for len(src) > 0 && s.ksUsed < gcmBlock {
		dst[0] = src[0] ^ s.ks[s.ksUsed]
		s.ksUsed++
		dst, src = dst[1:], src[1:]
	}
	if full := len(src) &^ (gcmBlock - 1); full > 0 {
		s.ctrBlocks(dst[:full], src[:full])
		dst, src = dst[full:], src[full:]
	}
	if len(src) > 0 {
		s.block.Encrypt(s.ks[:], s.ctr[:])
		inc32(&s.ctr)
		for i := range src {
			dst[i] = src[i] ^ s.ks[i]
		}
		s.ksUsed = len(src)
	}
	if !s.decrypt {
		s.hash(out)
	}
	return nil
}

// ctrBlocks runs whole counter blocks through crypto/cipher's CTR, split
// where the low 32 bits of the counter wrap (crypto/cipher would carry).
func (s *gcmStream) ctrBlocks(dst, src []byte) {
	for len(src) > 0 {
		left := uint64(1<<32) - uint64(binary.BigEndian.Uint32(s.ctr[12:]))
		n := uint64(len(src) / gcmBlock)
		if n > left {
			n = left
		}
		cipher.NewCTR(s.block, s.ctr[:]).XORKeyStream(dst[:n*gcmBlock], src[:n*gcmBlock])
		binary.BigEndian.PutUint32(s.ctr[12:], binary.BigEndian.Uint32(s.ctr[12:])+uint32(n))
		dst, src = dst[n*gcmBlock:], src[n*gcmBlock:]
	}
}

// hash feeds ciphertext to GHASH, keeping a partial block for later.
func (s *gcmStream) hash(c []byte) {
	if s.npart > 0 {
		k := copy(s.partial[s.npart:], c)
		s.npart += k
		c = c[k:]
		if s.npart < gcmBlock {
			return
		}
		s.g.blocks(s.partial[:])
		s.npart = 0
	}
	full := len(c) &^ (gcmBlock - 1)
	s.g.blocks(c[:full])
	s.npart = copy(s.partial[:], c[full:])
}

// tag finishes GHASH with the lengths and returns the tag.
func (s *gcmStream) tag() [gcmTagSize]byte {
	if s.npart > 0 {
		s.g.padded(s.partial[:s.npart])
		s.npart = 0
	}
	var l [gcmBlock]byte
	binary.BigEndian.PutUint64(l[8:], s.n*8)
	s.g.blocks(l[:])
	t := s.g.sum()
	var ej0 [gcmBlock]byte
	s.block.Encrypt(ej0[:], s.j0[:])
	subtle.XORBytes(t[:], t[:], ej0[:])
	return t
}

// verify compares the computed tag with the received one in constant time.
func (s *gcmStream) verify(received []byte) bool {
	t := s.tag()
	return subtle.ConstantTimeCompare(t[:], received) == 1
}
