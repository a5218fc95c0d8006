package fitconnect

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Test keys are generated, never committed: 2048 bits where the size does not
// matter (fast), one 4096-bit key where a schema demands the real length.
var (
	keyOnce sync.Once
	keyA    *rsa.PrivateKey
	keyB    *rsa.PrivateKey
	key4096 *rsa.PrivateKey
)

func testKeys(t testing.TB) (a, b *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if keyA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keyB, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return keyA, keyB
}

var key4096Once sync.Once

func testKey4096(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key4096Once.Do(func() {
		var err error
		if key4096, err = rsa.GenerateKey(rand.Reader, 4096); err != nil {
			panic(err)
		}
	})
	return key4096
}

// jwkJSON marshals a key as a JWK with the given kid, alg and key_ops.
func jwkJSON(t testing.TB, key any, kid, alg string, ops ...string) []byte {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["key_ops"] = ops
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testDecrypter(t testing.TB, key *rsa.PrivateKey, kid string) *Decrypter {
	t.Helper()
	d, err := NewJWKDecrypter(jwkJSON(t, key, kid, KeyAlgorithm, "unwrapKey"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testPublic(t testing.TB, key *rsa.PrivateKey, kid string) *PublicKey {
	t.Helper()
	p, err := ParseEncryptionKey(jwkJSON(t, &key.PublicKey, kid, KeyAlgorithm, "wrapKey"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
