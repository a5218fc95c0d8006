package cms

import (
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func loadKeyCert(t testing.TB, dir string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	kb, err := os.ReadFile(filepath.Join(dir, "key.der"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "cert.der"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(cb)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer), c
}
