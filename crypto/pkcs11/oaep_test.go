package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"
)

// testKey is small for speed; OAEP decoding does not depend on the size.
func testKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawDecrypt is textbook RSA, what CKM_RSA_X_509 returns.
func rawDecrypt(k *rsa.PrivateKey, c []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(c), k.D, k.N)
	return m.FillBytes(make([]byte, k.Size()))
}

func TestOAEPDecode(t *testing.T) {
	k := testKey(t)
	for _, o := range []*rsa.OAEPOptions{
		{Hash: crypto.SHA1}, {Hash: crypto.SHA256}, {Hash: crypto.SHA256, MGFHash: crypto.SHA1},
		{Hash: crypto.SHA512, Label: []byte("label")},
	} {
		for _, msg := range [][]byte{nil, []byte("k"), bytes.Repeat([]byte{0}, 32)} {
			c, err := rsa.EncryptOAEPWithOptions(rand.Reader, &k.PublicKey, msg, o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := oaepDecode(rawDecrypt(k, c), o)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%v/%v %q: got %q, %v", o.Hash, o.MGFHash, msg, got, err)
			}
			wrong := *o
			wrong.Label = []byte("other")
			if _, err := oaepDecode(rawDecrypt(k, c), &wrong); err != errDecryption {
				t.Fatalf("wrong label: %v", err)
			}
			em := rawDecrypt(k, c)
			em[0] = 1
			if _, err := oaepDecode(em, o); err != errDecryption {
				t.Fatalf("nonzero first octet: %v", err)
			}
		}
	}
	if _, err := oaepDecode(make([]byte, 10), &rsa.OAEPOptions{Hash: crypto.SHA256}); err != errDecryption {
		t.Fatalf("short: %v", err)
	}
}

func FuzzOAEPDecode(f *testing.F) {
	f.Add(make([]byte, 256))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, em []byte) {
		if pt, err := oaepDecode(em, &rsa.OAEPOptions{Hash: crypto.SHA256}); err == nil && len(pt) > len(em) {
			t.Fatal("plaintext longer than the block")
		}
	})
}
