package intermediary

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/pkcs12"
)

// KeyPair is a private key with its certificate and the other certificates its
// PKCS#12 file holds (the sample files carry their issuing CA).
type KeyPair struct {
	Key         crypto.Signer
	Certificate *x509.Certificate
	Chain       []*x509.Certificate
}

// LoadPKCS12 reads a key file of the library's sample PKI. Those files use legacy
// PBE and several bags, which pkcs12.ToPEM reads where pkcs12.Decode refuses.
func LoadPKCS12(path, password string) (*KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("intermediary: reading key file: %w", err)
	}
	blocks, err := pkcs12.ToPEM(data, password)
	if err != nil {
		return nil, fmt.Errorf("intermediary: opening %s: %w", filepath.Base(path), err)
	}
	kp := &KeyPair{}
	var certs []*x509.Certificate
	for _, b := range blocks {
		switch b.Type {
		case "PRIVATE KEY":
			if kp.Key, err = parseKey(b); err != nil {
				return nil, fmt.Errorf("intermediary: %s: %w", filepath.Base(path), err)
			}
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("intermediary: %s: %w", filepath.Base(path), err)
			}
			certs = append(certs, c)
		}
	}
	if kp.Key == nil {
		return nil, fmt.Errorf("intermediary: %s holds no private key", filepath.Base(path))
	}
	mine, _ := x509.MarshalPKIXPublicKey(kp.Key.Public())
	for _, c := range certs {
		if pub, _ := x509.MarshalPKIXPublicKey(c.PublicKey); bytes.Equal(pub, mine) && kp.Certificate == nil {
			kp.Certificate = c
			continue
		}
		kp.Chain = append(kp.Chain, c)
	}
	if kp.Certificate == nil {
		return nil, fmt.Errorf("intermediary: %s holds no certificate for its key", filepath.Base(path))
	}
	return kp, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key cannot sign")
	}
	return s, nil
}

// LoadCertificate reads a DER or PEM certificate file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("intermediary: reading certificate: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("intermediary: %s: %w", filepath.Base(path), err)
	}
	return c, nil
}

// SampleKeys loads the intermediary's keys of the library's sample PKI from dir
// (testdata/osci/zertifikate): osci_manager_cipher_4096.p12 and
// osci_manager_signature_4096.p12, PIN 123456, and takes their issuers as the roots
// the inspection report checks certificates against.
func SampleKeys(dir string) (Keys, error) {
	cipher, err := LoadPKCS12(filepath.Join(dir, "osci_manager_cipher_4096.p12"), "123456")
	if err != nil {
		return Keys{}, err
	}
	sig, err := LoadPKCS12(filepath.Join(dir, "osci_manager_signature_4096.p12"), "123456")
	if err != nil {
		return Keys{}, err
	}
	dec, ok := cipher.Key.(crypto.Decrypter)
	if !ok {
		return Keys{}, errors.New("intermediary: the cipher key cannot decrypt")
	}
	return Keys{
		Cipher: dec, CipherCertificate: cipher.Certificate,
		Signature: sig.Key, SignatureCertificate: sig.Certificate,
		Roots: append(append([]*x509.Certificate(nil), cipher.Chain...), sig.Chain...),
	}, nil
}
