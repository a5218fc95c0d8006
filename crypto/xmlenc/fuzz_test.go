package xmlenc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// fuzzKey is the data key of the fuzz seeds, so that mutated ciphertext
// reaches the tag check and the padding check.
var fuzzKey = bytes.Repeat([]byte{0x42}, 32)

var (
	fuzzRSAOnce sync.Once
	fuzzRSA     *rsa.PrivateKey
)

func fuzzRecipient() Recipient {
	fuzzRSAOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // a fuzz target's throwaway key
		if err != nil {
			panic(err)
		}
		fuzzRSA = k
	})
	return Recipient{Key: fuzzRSA, TryAll: true}
}

// FuzzDecrypt parses hostile EncryptedData documents and decrypts them
// with a known data key and with a recipient key: no panic, typed errors,
// and whatever decrypts as GCM must be what crypto/cipher opens.
func FuzzDecrypt(f *testing.F) {
	ctx := context.Background()
	for _, alg := range []string{AES256GCM, AES128GCM} {
		enc, err := Encrypt(ctx, []byte("<a>Inhalt</a>"), EncryptOptions{Algorithm: alg, Key: fuzzKey[:map[string]int{AES256GCM: 32, AES128GCM: 16}[alg]], ID: "e1"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc.XML)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := xmldsig.Parse(data, xmldsig.Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		p := Policy{AllowCBC: true, AllowTripleDES: true, AllowRSA15: true, AllowGCM16ByteIV: true, MaxCipherValue: 1 << 16}
		ed, err := ParseEncryptedData(d.Root, p)
		if err != nil {
			if !typed(err) {
				t.Fatalf("untyped parse error %v", err)
			}
			return
		}
		alg, aerr := lookupData(ed.Method.Algorithm)
		key := fuzzKey
		if aerr == nil {
			key = fuzzKey[:alg.keyLen]
		}
		plain, res, err := Decrypt(ctx, ed, DecryptOptions{Policy: p, Key: key})
		if err == nil && alg.gcm && res.Algorithms.IVLength == 12 && ed.CipherReference == "" {
			block, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(block)
			want, oerr := g.Open(nil, ed.CipherValue[:12], ed.CipherValue[12:], nil)
			if oerr != nil || !bytes.Equal(want, plain) {
				t.Fatalf("we opened what crypto/cipher refuses (%v) or got other plaintext", oerr)
			}
		}
		if err != nil && !typed(err) {
			t.Fatalf("untyped decrypt error %v", err)
		}
		if _, _, err := Decrypt(ctx, ed, DecryptOptions{Policy: p, Recipient: fuzzRecipient()}); err != nil && !typed(err) {
			t.Fatalf("untyped decrypt error %v", err)
		}
	})
}

func typed(err error) bool {
	for _, e := range []error{ErrFormat, ErrUnsupported, ErrRefused, ErrNoKey, ErrDecrypt, ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// FuzzGCMStream checks our streaming GCM against crypto/cipher's for
// fuzzed keys, IVs, plaintexts and piece sizes, and that the stream
// decrypter accepts exactly what crypto/cipher opens.
func FuzzGCMStream(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 12), []byte("plaintext of some length"), uint16(7), false)
	f.Add(bytes.Repeat([]byte{3}, 16), bytes.Repeat([]byte{4}, 16), bytes.Repeat([]byte{5}, 100), uint16(16), true)
	f.Fuzz(func(t *testing.T, key, iv, plain []byte, piece uint16, tamper bool) {
		switch {
		case len(key) >= 32:
			key = key[:32]
		case len(key) >= 24:
			key = key[:24]
		case len(key) >= 16:
			key = key[:16]
		default:
			return
		}
		if len(iv) == 0 || len(iv) > 64 || len(plain) > 1<<16 {
			return
		}
		n := int(piece)%97 + 1
		block, _ := aes.NewCipher(key)
		g, _ := cipher.NewGCMWithNonceSize(block, len(iv))
		want := g.Seal(nil, iv, plain, nil)
		s, err := newGCMStream(block, iv, false)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 0, len(want))
		for off := 0; off < len(plain); off += n {
			chunk := bytes.Clone(plain[off:min(off+n, len(plain))])
			if err := s.xorKeyStream(chunk, chunk); err != nil {
				t.Fatal(err)
			}
			got = append(got, chunk...)
		}
		tag := s.tag()
		if got = append(got, tag[:]...); !bytes.Equal(got, want) {
			t.Fatal("ciphertext differs from crypto/cipher's")
		}
		if tamper {
			want[int(piece)%len(want)] ^= 0x80
		}
		sealed := append(bytes.Clone(iv), want...)
		var out bytes.Buffer
		alg := dataAlg{uri: AES256GCM, keyLen: len(key), gcm: true, blockSz: 16}
		_, derr := decryptStream(context.Background(), alg, key, len(iv), iotestReader(sealed, n), &out, 1<<20)
		_, oerr := g.Open(nil, iv, want, nil)
		if (derr == nil) != (oerr == nil) {
			t.Fatalf("stream %v, crypto/cipher %v", derr, oerr)
		}
		if derr == nil && !bytes.Equal(out.Bytes(), plain) {
			t.Fatal("stream plaintext differs")
		}
	})
}

// iotestReader returns data n bytes per Read, to exercise the hold-back.
func iotestReader(data []byte, n int) io.Reader {
	return &chunkReader{data: data, n: n}
}

type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}
