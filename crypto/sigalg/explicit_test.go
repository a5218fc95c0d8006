package sigalg

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExplicitCurveParameters: keys whose curve is spelled out as SEC 1
// explicit parameters (openssl -param_enc explicit; the OSCI library's ECDSA
// test certificates) are used on the named curve they describe; parameters
// that describe no known curve are refused.
func TestExplicitCurveParameters(t *testing.T) {
	for _, c := range []struct{ name, openssl string }{
		{"P-256", "prime256v1"}, {"P-384", "secp384r1"},
		{"brainpoolP256r1", "brainpoolP256r1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			der := explicitSPKI(t, c.openssl)
			info, err := ParsePublicKeyInfo(der)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := info.Key.(*ecdsa.PublicKey)
			if !ok || k.Curve.Params().Name != c.name {
				t.Fatalf("key %T on %v, want %s", info.Key, k, c.name)
			}
		})
	}
	t.Run("altered b", func(t *testing.T) {
		der := explicitSPKI(t, "prime256v1")
		// b of P-256 starts 5a c6 35 d8; change one byte of it.
		i := bytes.Index(der, []byte{0x5a, 0xc6, 0x35, 0xd8})
		if i < 0 {
			t.Fatal("b of P-256 not found in the explicit parameters")
		}
		der[i+4] ^= 1
		var u *UnsupportedError
		if _, err := ParsePublicKeyInfo(der); !errors.As(err, &u) {
			t.Fatalf("altered curve: err %v, want UnsupportedError", err)
		}
	})
}

func explicitSPKI(t *testing.T, curve string) []byte {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	pub := filepath.Join(dir, "pub.der")
	for _, args := range [][]string{
		{"ecparam", "-name", curve, "-param_enc", "explicit", "-genkey", "-noout", "-out", key},
		{"pkey", "-in", key, "-pubout", "-outform", "DER", "-out", pub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	der, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
