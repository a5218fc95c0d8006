package portal

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// verifySET checks a compact JWS's PS512 signature and header.
func verifySET(set string, pub *rsa.PublicKey) error {
	parts := strings.Split(set, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var h struct{ Typ, Alg, Kid string }
	if err := json.Unmarshal(hdr, &h); err != nil {
		return err
	}
	if h.Typ != "secevent+jwt" || h.Alg != "PS512" || h.Kid == "" {
		return errors.New("header " + string(hdr))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha512.Sum512([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPSS(pub, crypto.SHA512, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// flipTag changes the last character of the tag segment.
func flipTag(jwe string) string {
	b := []byte(jwe)
	i := len(b) - 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// flipCiphertext changes a character of the ciphertext segment.
func flipCiphertext(jwe string) string {
	p := strings.Split(jwe, ".")
	c := []byte(p[3])
	if c[0] == 'A' {
		c[0] = 'B'
	} else {
		c[0] = 'A'
	}
	p[3] = string(c)
	return strings.Join(p, ".")
}

// withHeader replaces the protected header.
func withHeader(jwe, header string) string {
	p := strings.Split(jwe, ".")
	p[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(p, ".")
}
