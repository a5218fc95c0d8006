package cryptblob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// smallChunk keeps tampering tests small: chunks of 32 bytes, so that a
// few hundred bytes cross many chunk boundaries.
const smallChunk = 32

var fixedKey = bytes.Repeat([]byte{0x42}, keySize)

func sealed(t testing.TB, plain []byte, chunk int) []byte {
	t.Helper()
	var ct bytes.Buffer
	if _, err := encrypt(context.Background(), &ct, bytes.NewReader(plain), fixedKey, nil, chunk, 0); err != nil {
		t.Fatal(err)
	}
	return ct.Bytes()
}

// decryptAll reads ciphertext as the plaintext of want and returns what the
// reader handed out before it stopped.
func decryptAll(t testing.TB, ciphertext []byte, chunk int, want blob.Ref) ([]byte, error) {
	d, err := newDecrypter(io.NopCloser(bytes.NewReader(ciphertext)), fixedKey, chunk, want)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return io.ReadAll(d)
}

func chunkAt(i int) (int, int) {
	start := headerSize + i*(smallChunk+tagSize)
	return start, start + smallChunk + tagSize
}

func swap(ct []byte, i, j int) []byte {
	out := bytes.Clone(ct)
	ai, bi := chunkAt(i)
	aj, bj := chunkAt(j)
	copy(out[ai:bi], ct[aj:bj])
	copy(out[aj:bj], ct[ai:bi])
	return out
}

func cut(ct []byte, i int) []byte {
	a, b := chunkAt(i)
	return append(bytes.Clone(ct[:a]), ct[b:]...)
}

func flip(ct []byte, at int) []byte {
	out := bytes.Clone(ct)
	out[at] ^= 0x01
	return out
}

// TestTampering alters ciphertexts without the key: every alteration is
// caught by a chunk tag (errAuth), before the plaintext hash is consulted,
// and nothing but genuine plaintext is handed out before the error.
func TestTampering(t *testing.T) {
	plain := document(4)[:200] // 7 chunks: 6 full, the last of 8 bytes
	ct := sealed(t, plain, smallChunk)
	full := sealed(t, plain[:192], smallChunk) // 6 full chunks, the last full
	ref, fullRef := refOf(plain), refOf(plain[:192])
	last := len(ct) - 1
	cases := []struct {
		name    string
		ct      []byte
		ref     blob.Ref
		wantErr error
	}{
		{"byte of chunk 0 flipped", flip(ct, headerSize+3), ref, errAuth},
		{"tag of chunk 2 flipped", flip(ct, headerSize+3*(smallChunk+tagSize)-1), ref, errAuth},
		{"last byte flipped", flip(ct, last), ref, errAuth},
		{"chunks 1 and 2 swapped", swap(ct, 1, 2), ref, errAuth},
		{"chunk 3 dropped", cut(ct, 3), ref, errAuth},
		{"chunk 0 duplicated", append(append(bytes.Clone(ct[:headerSize]), chunkAt0(ct)...), ct[headerSize:]...), ref, errAuth},
		{"last chunk dropped at a chunk boundary", full[:len(full)-(smallChunk+tagSize)], fullRef, errAuth},
		{"cut in the last chunk", ct[:last-3], ref, errAuth},
		{"a chunk appended after the last", append(bytes.Clone(full), full[headerSize:headerSize+smallChunk+tagSize]...), fullRef, errAuth},
		{"header version changed", flip(ct, len(magic)), ref, blob.ErrCorrupt},
		{"header chunk size changed", flip(ct, headerSize-1), ref, blob.ErrCorrupt},
		{"only the header", ct[:headerSize], ref, blob.ErrCorrupt},
		{"empty", nil, ref, blob.ErrCorrupt},
		{"sealed under another key", sealedOtherKey(t, plain), ref, errAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decryptAll(t, tc.ct, smallChunk, tc.ref)
			if !errors.Is(err, tc.wantErr) || !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("decrypt: %v, want %v (and ErrCorrupt)", err, tc.wantErr)
			}
			orig := plain
			if tc.ref == fullRef {
				orig = plain[:192]
			}
			if !bytes.HasPrefix(orig, got) {
				t.Fatalf("handed out %d bytes that are not the plaintext's beginning", len(got))
			}
		})
	}
	if got, err := decryptAll(t, ct, smallChunk, ref); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("untouched ciphertext: %v", err)
	}
	if got, err := decryptAll(t, full, smallChunk, fullRef); err != nil || !bytes.Equal(got, plain[:192]) {
		t.Fatalf("untouched ciphertext with a full last chunk: %v", err)
	}
}

func chunkAt0(ct []byte) []byte {
	a, b := chunkAt(0)
	return ct[a:b]
}

func sealedOtherKey(t *testing.T, plain []byte) []byte {
	var ct bytes.Buffer
	if _, err := encrypt(context.Background(), &ct, bytes.NewReader(plain), bytes.Repeat([]byte{7}, keySize), nil, smallChunk, 0); err != nil {
		t.Fatal(err)
	}
	return ct.Bytes()
}

// TestLastChunkWithheld: a ciphertext whose chunks all verify but whose
// plaintext is not the reference's (an attacker with the data key) hands
// out the chunks before the last and then fails, never the last chunk.
func TestLastChunkWithheld(t *testing.T) {
	plain := document(4)[:200]
	other := bytes.Clone(plain)
	other[199] ^= 1
	got, err := decryptAll(t, sealed(t, other, smallChunk), smallChunk, refOf(plain))
	if !errors.Is(err, blob.ErrCorrupt) || errors.Is(err, errAuth) {
		t.Fatalf("decrypt: %v, want a hash mismatch", err)
	}
	if len(got) != 192 || !bytes.Equal(got, plain[:192]) {
		t.Fatalf("handed out %d bytes, want the 192 before the last chunk", len(got))
	}
}

// TestStoreTampering runs alterations through the whole store: the altered
// ciphertext is a valid object of the inner store that the key entry
// points at, so only cryptblob can notice.
func TestStoreTampering(t *testing.T) {
	f, mem := memFixture(t)
	s := f.open(t)
	ctx := context.Background()
	doc := document(3000)
	ref, err := s.PutBytes(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.keys.Get(ctx, ref)
	ct, _ := mem.m.Bytes(e.Cipher)
	big := ChunkSize + tagSize
	swapped := bytes.Clone(ct)
	copy(swapped[headerSize:headerSize+big], ct[headerSize+big:headerSize+2*big])
	copy(swapped[headerSize+big:headerSize+2*big], ct[headerSize:headerSize+big])
	for name, bad := range map[string][]byte{
		"flipped":   flip(ct, len(ct)/2),
		"truncated": ct[:len(ct)-1],
		"swapped":   swapped,
		"emptied":   {},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.repoint(ref, e, bad); err != nil {
				t.Fatal(err)
			}
			for path, read := range readPaths {
				if path == "Stat" {
					continue
				}
				if err := read(s, ref); !errors.Is(err, blob.ErrCorrupt) {
					t.Errorf("%s: %v, want ErrCorrupt", path, err)
				}
			}
		})
	}
	if err := s.repoint(ref, e, ct); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadAll(ctx, ref, 0); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("restored ciphertext: %v", err)
	}
}

func TestSizes(t *testing.T) {
	for _, chunk := range []int{smallChunk, ChunkSize} {
		for _, n := range []int64{0, 1, int64(chunk) - 1, int64(chunk), int64(chunk) + 1, 3 * int64(chunk), 1 << 30} {
			c := cipherSize(n, chunk)
			if p, ok := plainSize(c, chunk); !ok || p != n {
				t.Errorf("chunk %d: plainSize(cipherSize(%d)) = %d %v", chunk, n, p, ok)
			}
			if n < 100 {
				if got := int64(len(sealed(t, make([]byte, n), chunk))); got != c {
					t.Errorf("chunk %d: %d bytes encrypt to %d, cipherSize says %d", chunk, n, got, c)
				}
			}
		}
		for _, c := range []int64{0, int64(headerSize), int64(headerSize + tagSize - 1), cipherSize(int64(chunk), chunk) + 1} {
			if _, ok := plainSize(c, chunk); ok {
				t.Errorf("chunk %d: plainSize(%d) accepted", chunk, c)
			}
		}
	}
}
