package cms

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
)

// rawSign applies the private RSA operation to an encoded message built by
// hand, so that malformed DigestInfos can be signed.
func rawSign(t *testing.T, k *rsa.PrivateKey, digestInfo []byte) []byte {
	t.Helper()
	size := k.Size()
	em := make([]byte, size)
	em[1] = 1
	for i := 2; i < size-len(digestInfo)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(digestInfo):], digestInfo)
	m := new(big.Int).SetBytes(em)
	return m.Exp(m, k.D, k.N).FillBytes(make([]byte, size))
}

func TestDiagnosePKCS1(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	attrs := []byte("signed attributes")
	sum := sha256.Sum256(attrs)
	sha256OID := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	digestInfo := func(params []byte, digest []byte) []byte {
		ai := append(append([]byte{0x30, byte(len(sha256OID) + len(params))}, sha256OID...), params...)
		body := append(ai, append([]byte{0x04, byte(len(digest))}, digest...)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	candidates := map[string][]byte{EncodingTransmitted: attrs}
	withNull := rawSign(t, k, digestInfo([]byte{0x05, 0x00}, sum[:]))
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, sum[:], withNull); err != nil {
		t.Fatalf("hand-made encoding with NULL does not verify: %v", err)
	}
	tests := []struct {
		name string
		sig  []byte
		want string
	}{
		{"NULL omitted", rawSign(t, k, digestInfo(nil, sum[:])), "matches the signed attributes as transmitted"},
		{"NULL omitted, other digest", rawSign(t, k, digestInfo(nil, make([]byte, 32))), "matches none of the signed attribute encodings"},
		{"NULL present, other digest", rawSign(t, k, digestInfo([]byte{0x05, 0x00}, make([]byte, 32))), ""},
		{"garbage", make([]byte, k.Size()), ""},
		{"too short", []byte{1, 2, 3}, ""},
	}
	for _, tc := range tests {
		got := diagnosePKCS1(&k.PublicKey, crypto.SHA256, tc.sig, candidates)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
