package xmlenc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"testing"
)

// BenchmarkGCM compares, side by side, opening 1 MiB with crypto/cipher's
// GCM (whole message in memory, hardware GHASH) and with our stream (CTR
// from crypto/cipher, our table GHASH, 64 KiB at a time); the ratio is
// what streaming with bounded memory costs.
func BenchmarkGCM(b *testing.B) {
	key := bytes.Repeat([]byte{7}, 32)
	iv := bytes.Repeat([]byte{9}, 12)
	plain := bytes.Repeat([]byte("Anlage zum Bescheid, "), 1<<20/21)
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(block)
	sealed := g.Seal(nil, iv, plain, nil)
	b.Run("stdlib-open", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		buf := make([]byte, 0, len(plain))
		for b.Loop() {
			if _, err := g.Open(buf[:0], iv, sealed, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream-open", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		in := append(bytes.Clone(iv), sealed...)
		alg := dataAlg{uri: AES256GCM, keyLen: 32, gcm: true, blockSz: 16}
		for b.Loop() {
			if _, err := decryptStream(context.Background(), alg, key, 12, bytes.NewReader(in), io.Discard, 1<<30); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib-seal", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		buf := make([]byte, 0, len(sealed))
		for b.Loop() {
			g.Seal(buf[:0], iv, plain, nil)
		}
	})
	b.Run("stream-seal", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		e := &encryption{alg: dataAlg{uri: AES256GCM, keyLen: 32, gcm: true}, key: key, iv: iv}
		for b.Loop() {
			if err := e.seal(bytes.NewReader(plain), io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
