package keys

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// fingerprintPrefix names the hash of a fingerprint.
const fingerprintPrefix = "sha256:"

// Fingerprint names a public key for people: "sha256:" followed by the
// lowercase hex SHA-256 of its DER SubjectPublicKeyInfo, the same bytes
// `openssl pkey -pubin -outform DER | sha256sum` hashes. Administrators
// record it when the key is made, and auditors pin it, so that a public key
// file beside a log cannot be swapped unnoticed.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("keys: fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:]), nil
}

// ParseFingerprint checks a fingerprint as a person typed it and returns it
// in the form Fingerprint writes: the prefix is required, hex digits may be
// upper case and grouped with colons.
func ParseFingerprint(s string) (string, error) {
	h, ok := strings.CutPrefix(strings.TrimSpace(s), fingerprintPrefix)
	if !ok {
		return "", fmt.Errorf("keys: fingerprint %q does not start with %q", s, fingerprintPrefix)
	}
	h = strings.ToLower(strings.ReplaceAll(h, ":", ""))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("keys: fingerprint %q is not %q and 64 hex digits", s, fingerprintPrefix)
	}
	return fingerprintPrefix + h, nil
}
