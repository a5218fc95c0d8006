package portal

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// cryptoDecrypter is a crypto.Decrypter holding an RSA key: *rsa.PrivateKey
// or a PKCS#11 key.
type cryptoDecrypter = crypto.Decrypter

// jwkKeys are keys read from JWK files.
type jwkKeys struct {
	dec     crypto.Decrypter
	sign    *rsa.PrivateKey
	signKID string
}

func (k *jwkKeys) Decrypter() cryptoDecrypter { return k.dec }

// SignSET signs payload as a compact JWS with PS512 (RFC 7518 § 3.5: RSASSA-PSS
// with SHA-512 and a salt as long as the hash), typ secevent+jwt (RFC 8417
// § 2.3) and the key's kid.
func (k *jwkKeys) SignSET(payload []byte) (string, error) {
	hdr, err := json.Marshal(struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"secevent+jwt", "PS512", k.signKID})
	if err != nil {
		return "", err
	}
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha512.Sum512([]byte(in))
	sig, err := rsa.SignPSS(rand.Reader, k.sign, crypto.SHA512, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		return "", fmt.Errorf("portal: signing the SET: %w", err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parsePrivateJWK reads a private RSA JWK whose alg, when present, is want.
func parsePrivateJWK(raw []byte, want string) (*rsa.PrivateKey, string, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, "", fmt.Errorf("not a JWK: %w", err)
	}
	priv, ok := k.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("a %T, want a private RSA key", k.Key)
	}
	if k.Algorithm != "" && k.Algorithm != want {
		return nil, "", fmt.Errorf("alg %q, want %s", k.Algorithm, want)
	}
	if priv.N.BitLen() < 2048 {
		return nil, "", fmt.Errorf("a %d-bit key, want at least 2048 bits", priv.N.BitLen())
	}
	return priv, k.KeyID, nil
}

// loadKeys reads the decryption and signing keys of c. A PKCS#11 decryption
// key is handed in by the caller (dec), since opening a token is the
// assembly's.
func loadKeys(c *Config, dec crypto.Decrypter) (*jwkKeys, error) {
	k := &jwkKeys{dec: dec}
	if dec == nil {
		raw, err := readSecret("decryption_key_file", c.DecryptionKeyFile)
		if err != nil {
			return nil, err
		}
		priv, _, err := parsePrivateJWK(raw, jweAlg)
		if err != nil {
			return nil, fmt.Errorf("portal: decryption_key_file: %w", err)
		}
		k.dec = priv
	}
	raw, err := readSecret("signing_key_file", c.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	priv, kid, err := parsePrivateJWK(raw, "PS512")
	if err != nil {
		return nil, fmt.Errorf("portal: signing_key_file: %w", err)
	}
	if kid == "" {
		return nil, errors.New("portal: signing_key_file: the JWK has no kid (the platform finds the verification key by it)")
	}
	k.sign, k.signKID = priv, kid
	return k, nil
}
