// Package keys manages the gateway's own signing key: the key that signs the
// event log's checkpoints (and, later, seals outgoing answers). The key is a
// crypto.Signer, so a key in a file and a key in a PKCS#11 token plug into the
// same place.
package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// maxPEM caps key files; a key file is a few hundred bytes.
const maxPEM = 64 << 10

// ErrExists means a key file is already there; keys are never overwritten.
var ErrExists = errors.New("keys: key file exists")

// Generate creates a new Ed25519 key pair and writes the private key (PKCS#8
// PEM, mode 0600) to keyPath and the public key (PKIX PEM) to pubPath. It
// refuses to overwrite an existing key.
func Generate(keyPath, pubPath string) (crypto.Signer, error) {
	if _, err := os.Stat(keyPath); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, keyPath)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: encode private key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("keys: create key directory: %w", err)
	}
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keys: create %s: %w", keyPath, err)
	}
	if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("keys: write %s: %w", keyPath, err)
	}
	if err := WritePublic(pubPath, priv.Public()); err != nil {
		return nil, err
	}
	return priv, nil
}

// WritePublic writes a public key as PKIX PEM.
func WritePublic(path string, pub crypto.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("keys: encode public key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return nil
}

// LoadSigner reads a PKCS#8 PEM private key file.
func LoadSigner(path string) (crypto.Signer, error) {
	block, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: parse %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: %s holds a %T, which cannot sign", path, k)
	}
	return s, nil
}

// LoadPublic reads a PKIX PEM public key, or the public half of a private key file.
func LoadPublic(path string) (crypto.PublicKey, error) {
	raw, err := readFile(path)
	if err != nil {
		return nil, err
	}
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("keys: %s holds no PUBLIC KEY or PRIVATE KEY block", path)
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("keys: parse %s: %w", path, err)
			}
			return pub, nil
		case "PRIVATE KEY":
			s, err := LoadSigner(path)
			if err != nil {
				return nil, err
			}
			return s.Public(), nil
		}
	}
}

// LoadOrGenerate loads the signer at keyPath, generating a key pair first
// when none exists. It reports whether it generated one.
func LoadOrGenerate(keyPath, pubPath string) (crypto.Signer, bool, error) {
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		s, err := Generate(keyPath, pubPath)
		return s, true, err
	}
	s, err := LoadSigner(keyPath)
	return s, false, err
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxPEM+1)
	n, err := f.Read(b)
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	if n > maxPEM {
		return nil, fmt.Errorf("keys: %s is larger than %d bytes", path, maxPEM)
	}
	return b[:n], nil
}

func readPEM(path, typ string) (*pem.Block, error) {
	raw, err := readFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("keys: %s holds no %s block", path, typ)
	}
	return block, nil
}
