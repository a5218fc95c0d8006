package standin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is an RSA JSON Web Key (RFC 7517 §4, RFC 7518 §6.3) as FIT-Connect
// publishes a destination's keys: with kid, alg and key_ops. go-jose's key
// type has no key_ops, which the SDK checks ("wrapKey" for an encryption
// key), so the stand-in writes its own.
type JWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid,omitempty"`
	Alg    string   `json:"alg,omitempty"`
	Use    string   `json:"use,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	// The private members (RFC 7518 §6.3.2), only in the files handed to the
	// destination's own software.
	D  string `json:"d,omitempty"`
	P  string `json:"p,omitempty"`
	Q  string `json:"q,omitempty"`
	DP string `json:"dp,omitempty"`
	DQ string `json:"dq,omitempty"`
	QI string `json:"qi,omitempty"`
}

func b64(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }

// PublicJWK returns pub as a JWK with the given kid, alg and key_ops.
func PublicJWK(pub *rsa.PublicKey, kid, alg string, ops ...string) JWK {
	return JWK{Kty: "RSA", Kid: kid, Alg: alg, KeyOps: ops, N: b64(pub.N), E: b64(big.NewInt(int64(pub.E)))}
}

// PrivateJWK returns key as a private JWK with the given kid, alg and key_ops.
func PrivateJWK(key *rsa.PrivateKey, kid, alg string, ops ...string) JWK {
	j := PublicJWK(&key.PublicKey, kid, alg, ops...)
	key.Precompute()
	j.D = b64(key.D)
	j.P, j.Q = b64(key.Primes[0]), b64(key.Primes[1])
	j.DP, j.DQ, j.QI = b64(key.Precomputed.Dp), b64(key.Precomputed.Dq), b64(key.Precomputed.Qinv)
	return j
}

// RSAPublic decodes the public key of j.
func (j JWK) RSAPublic() (*rsa.PublicKey, error) {
	if j.Kty != "RSA" {
		return nil, fmt.Errorf("jwk: kty %q, want RSA", j.Kty)
	}
	n, err := base64.RawURLEncoding.DecodeString(j.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("jwk: bad n")
	}
	e, err := base64.RawURLEncoding.DecodeString(j.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("jwk: bad e")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.E < 3 || pub.E%2 == 0 {
		return nil, errors.New("jwk: bad e")
	}
	return pub, nil
}

// RSAPrivate decodes the private key of j (for tests that play the
// destination).
func (j JWK) RSAPrivate() (*rsa.PrivateKey, error) {
	pub, err := j.RSAPublic()
	if err != nil {
		return nil, err
	}
	dec := func(s string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, errors.New("jwk: bad private member")
		}
		return new(big.Int).SetBytes(b), nil
	}
	d, err := dec(j.D)
	if err != nil {
		return nil, err
	}
	p, err := dec(j.P)
	if err != nil {
		return nil, err
	}
	q, err := dec(j.Q)
	if err != nil {
		return nil, err
	}
	key := &rsa.PrivateKey{PublicKey: *pub, D: d, Primes: []*big.Int{p, q}}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("jwk: %w", err)
	}
	key.Precompute()
	return key, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of j's public key; the SDK
// puts it into its JWEs' kid.
func (j JWK) Thumbprint() string {
	// RFC 7638 §3.2: the required members in lexicographic order, no
	// whitespace; json.Marshal of a map sorts the keys.
	b, _ := json.Marshal(map[string]string{"e": j.E, "kty": j.Kty, "n": j.N})
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyPair is a generated RSA key with its public and private JWKs.
type KeyPair struct {
	Key     *rsa.PrivateKey
	Public  JWK
	Private JWK
}

// keyBits is what FIT-Connect requires of every key (RSA 4096, see the
// Submission API's README: minimum modulus length 683 base64url characters);
// the SDK refuses a shorter encryption key.
const keyBits = 4096

// NewKeyPair generates a 4096-bit RSA key for alg with the public and
// private key_ops.
func NewKeyPair(kid, alg string, publicOps, privateOps []string) (*KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("generating the %s key %s: %w", alg, kid, err)
	}
	return &KeyPair{Key: key, Public: PublicJWK(&key.PublicKey, kid, alg, publicOps...), Private: PrivateJWK(key, kid, alg, privateOps...)}, nil
}
