package osci

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"os"
	"sync"
	"testing"

	"golang.org/x/crypto/pkcs12"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/internal/corpus"
)

// testKey is a key pair of the library's sample PKIs (testdata/osci/zertifikate, PIN
// 123456).
type testKey struct {
	Key  crypto.Signer
	Cert *cert.Certificate
	X509 *x509.Certificate
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]*testKey{}
)

// loadKey reads a PKCS#12 file of the corpus; its legacy PBE needs ToPEM, which takes
// the several bags the files hold. The cache spares the 4096-bit key's parsing per test.
func loadKey(t testing.TB, name string) *testKey {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k := testKeys[name]; k != nil {
		return k
	}
	data, err := os.ReadFile(corpus.Path(t, "osci", "zertifikate", name+".p12"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := pkcs12.ToPEM(data, "123456")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	k := &testKey{}
	var certs []*x509.Certificate
	for _, b := range blocks {
		switch b.Type {
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				any, err2 := x509.ParsePKCS8PrivateKey(b.Bytes)
				if err2 != nil {
					t.Fatalf("%s: key: %v", name, err)
				}
				k.Key = any.(crypto.Signer)
			} else {
				k.Key = key
			}
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
		}
	}
	for _, c := range certs {
		pub, _ := x509.MarshalPKIXPublicKey(c.PublicKey)
		mine, _ := x509.MarshalPKIXPublicKey(k.Key.Public())
		if bytes.Equal(pub, mine) {
			k.X509 = c
		}
	}
	if k.Key == nil || k.X509 == nil {
		t.Fatalf("%s: no key with its certificate", name)
	}
	if k.Cert, err = cert.Parse(k.X509.Raw); err != nil {
		t.Fatal(err)
	}
	testKeys[name] = k
	return k
}
