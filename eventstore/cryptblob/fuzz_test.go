package cryptblob

import (
	"bytes"
	"testing"
)

// fuzzPlain is the plaintext of FuzzOpen's selector n: n bytes of a
// pattern, so that seeds of several lengths and chunk counts exist.
func fuzzPlain(n uint16) []byte {
	b := make([]byte, int(n)%400)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// FuzzOpen feeds arbitrary bytes to the decryption as the inner store's
// ciphertext of a known plaintext. It must not panic; whatever it hands
// out, also before an error, must be the beginning of the plaintext; and
// it may end without error only with the whole plaintext.
func FuzzOpen(f *testing.F) {
	for _, n := range []uint16{0, 1, smallChunk - 1, smallChunk, smallChunk + 1, 3 * smallChunk, 399} {
		ct := sealed(f, fuzzPlain(n), smallChunk)
		f.Add(n, ct)
		f.Add(n, ct[:len(ct)-1])
		f.Add(n, append(bytes.Clone(ct), 0))
	}
	f.Add(uint16(5), []byte{})
	f.Add(uint16(5), []byte("PSCB\x01\x00\x00\x00\x20"))
	f.Add(uint16(5), []byte("PSCB\x01\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, n uint16, ct []byte) {
		plain := fuzzPlain(n)
		got, err := decryptAll(t, ct, smallChunk, refOf(plain))
		if !bytes.HasPrefix(plain, got) {
			t.Fatalf("handed out %d bytes that are not the plaintext's beginning (err %v)", len(got), err)
		}
		if err == nil && len(got) != len(plain) {
			t.Fatalf("ended without error after %d of %d bytes", len(got), len(plain))
		}
	})
}
