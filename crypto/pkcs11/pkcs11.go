// Package pkcs11 opens a private key held on a PKCS#11 token (a hardware security
// module, a smart card, SoftHSM2 in tests) as a crypto.Signer and crypto.Decrypter
// with its certificate, so that xmldsig, xmlenc and the channels use it like a key
// read from a PKCS#12 file without the key ever leaving the token.
package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Config names a key on a token. The PIN is read from a file of its own (such as a
// systemd credential) so that it is never part of the configuration or a log line.
type Config struct {
	// Module is the path of the token's PKCS#11 library (for SoftHSM2
	// /usr/lib/softhsm/libsofthsm2.so).
	Module string `yaml:"module"`
	// Token is the token's label; Slot selects by slot number instead.
	Token string `yaml:"token"`
	Slot  *int   `yaml:"slot"`
	// PINFile holds the user PIN; trailing line breaks are not part of it.
	PINFile string `yaml:"pin_file"`
	// Label and ID (hex) select the key pair; at least one is required.
	Label string `yaml:"label"`
	ID    string `yaml:"id"`
	// CertFile (PEM or DER), when set, is the key's certificate; otherwise the
	// certificate is the one on the token with the key's id or label.
	CertFile string `yaml:"cert_file"`
}

// Key is a private key on a token with its certificate. Close it when done: it holds
// the token's sessions.
type Key struct {
	crypto.Signer
	Certificate *x509.Certificate
	raw         oaepFallback
	close       func() error
}

// oaepFallback decrypts OAEP by raw RSA on the token and decoding here, for the
// parameters a token refuses.
type oaepFallback interface {
	decryptOAEP(ciphertext []byte, opts *rsa.OAEPOptions) ([]byte, error)
	refused(err error) bool
	close() error
}

// Decrypt decrypts with the token's key: RSA PKCS#1 v1.5 or OAEP (any hash, the MGF1
// hash apart from it or not).
func (k *Key) Decrypt(rand io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	d, ok := k.Signer.(crypto.Decrypter)
	if !ok {
		return nil, errors.New("pkcs11: the key does not decrypt")
	}
	o, isOAEP := opts.(*rsa.OAEPOptions)
	if !isOAEP || k.raw == nil {
		return d.Decrypt(rand, ciphertext, opts)
	}
	// crypto11 asks the token for MGF1 with the OAEP hash, so another MGF hash
	// goes the raw way straight away.
	if o.MGFHash == 0 || o.MGFHash == o.Hash {
		pt, err := d.Decrypt(rand, ciphertext, opts)
		if err == nil || !k.raw.refused(err) {
			return pt, err
		}
	}
	return k.raw.decryptOAEP(ciphertext, o)
}

// Close releases the token.
func (k *Key) Close() error {
	var err error
	if k.raw != nil {
		err = k.raw.close()
	}
	if k.close != nil {
		err = errors.Join(err, k.close())
	}
	return err
}

// Validate checks the configuration without touching the token.
func (c *Config) Validate() error {
	switch {
	case c.Module == "":
		return errors.New("pkcs11.module: required")
	case (c.Token == "") == (c.Slot == nil):
		return errors.New("pkcs11: exactly one of token and slot")
	case c.PINFile == "":
		return errors.New("pkcs11.pin_file: required")
	case c.Label == "" && c.ID == "":
		return errors.New("pkcs11: label or id required")
	}
	if _, err := hex.DecodeString(c.ID); err != nil {
		return fmt.Errorf("pkcs11.id: not hex: %w", err)
	}
	return nil
}

// maxFileBytes caps the PIN and certificate files, read whole.
const maxFileBytes = 1 << 20

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxFileBytes)
	}
	return b.Bytes(), nil
}

func readPIN(path string) (string, error) {
	b, err := readCapped(path)
	if err != nil {
		return "", fmt.Errorf("pkcs11: reading the PIN: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: reading certificate: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: %s: %w", path, err)
	}
	return c, nil
}

// matches reports whether c certifies the key pub.
func matches(c *x509.Certificate, pub crypto.PublicKey) bool {
	a, err1 := x509.MarshalPKIXPublicKey(c.PublicKey)
	b, err2 := x509.MarshalPKIXPublicKey(pub)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
