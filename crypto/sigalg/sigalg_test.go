package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/ProtonMail/go-crypto/brainpool"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePSSParams(t *testing.T) {
	tests := []struct {
		name    string
		der     string
		want    PSSParams
		wantErr bool
	}{
		// openssl: -sigopt rsa_padding_mode:pss, SHA-256, MGF1 SHA-256, salt 32
		{"sha256", "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
			PSSParams{crypto.SHA256, crypto.SHA256, 32, 1}, false},
		{"defaults", "3000", PSSParams{crypto.SHA1, crypto.SHA1, 20, 1}, false},
		{"sha3-256 no NULL", "3030a00d300b0609608648016503040208a11a301806092a864886f70d010108300b0609608648016503040208a203020120",
			PSSParams{crypto.SHA3_256, crypto.SHA3_256, 32, 1}, false},
		{"trailer 2", "3005a303020102", PSSParams{}, true},
		{"garbage", "3003020101", PSSParams{}, true},
		{"trailing", "30000000", PSSParams{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePSSParams(mustHex(t, tt.der))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && *p != tt.want {
				t.Errorf("got %+v, want %+v", *p, tt.want)
			}
		})
	}
}

func TestUnsupportedNamesAlgorithm(t *testing.T) {
	_, err := ParseSignatureAlgorithm(AlgorithmIdentifier{OID: OIDMD5WithRSA})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnsupported) || ue.Name != "MD5withRSA" {
		t.Fatalf("err = %v", err)
	}
	_, err = DigestAlgorithm(AlgorithmIdentifier{OID: asn1.ObjectIdentifier{1, 2, 3}})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
	_, err = Curve(asn1.ObjectIdentifier{1, 3, 132, 0, 10}) // secp256k1
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
}

func roundTripKey(t *testing.T, pub crypto.PublicKey) crypto.PublicKey {
	t.Helper()
	der, err := MarshalPublicKeyInfo(pub)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParsePublicKeyInfo(der)
	if err != nil {
		t.Fatal(err)
	}
	return info.Key
}

func TestSignVerify(t *testing.T) {
	msg := []byte("Poststelle Eingangsbestätigung")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKeys := map[string]*ecdsa.PrivateKey{}
	for name, c := range map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521(),
		"bp256": brainpool.P256r1(), "bp384": brainpool.P384r1(), "bp512": brainpool.P512r1()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ecKeys[name] = k
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	pssAlg := func(h crypto.Hash, salt int) Algorithm {
		return Algorithm{Scheme: SchemeRSAPSS, Hash: h, PSS: &PSSParams{h, h, salt, 1}}
	}
	tests := []struct {
		name string
		alg  Algorithm
		key  crypto.Signer
		sign func(digest []byte) ([]byte, error)
	}{
		{"rsa-sha256", Algorithm{Scheme: SchemeRSAPKCS1v15, Hash: crypto.SHA256}, rsaKey, func(d []byte) ([]byte, error) {
			return rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d)
		}},
		{"rsa-sha3-512", Algorithm{Scheme: SchemeRSAPKCS1v15, Hash: crypto.SHA3_512}, rsaKey, func(d []byte) ([]byte, error) {
			return rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA3_512, d)
		}},
		{"pss-sha256", pssAlg(crypto.SHA256, 32), rsaKey, func(d []byte) ([]byte, error) {
			return rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: 32})
		}},
		{"pss-sha3-256", pssAlg(crypto.SHA3_256, 32), rsaKey, func(d []byte) ([]byte, error) {
			return rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA3_256, d, &rsa.PSSOptions{SaltLength: 32})
		}},
	}
	for name, k := range ecKeys {
		k := k
		tests = append(tests, struct {
			name string
			alg  Algorithm
			key  crypto.Signer
			sign func(digest []byte) ([]byte, error)
		}{"ecdsa-" + name, Algorithm{Scheme: SchemeECDSA, Hash: crypto.SHA256}, k, func(d []byte) ([]byte, error) {
			return ecdsa.SignASN1(rand.Reader, k, d)
		}}, struct {
			name string
			alg  Algorithm
			key  crypto.Signer
			sign func(digest []byte) ([]byte, error)
		}{"plain-" + name, Algorithm{Scheme: SchemePlainECDSA, Hash: crypto.SHA384}, k, func(d []byte) ([]byte, error) {
			r, s, err := ecdsa.Sign(rand.Reader, k, d)
			if err != nil {
				return nil, err
			}
			n := (k.Curve.Params().N.BitLen() + 7) / 8
			out := make([]byte, 2*n)
			r.FillBytes(out[:n])
			s.FillBytes(out[n:])
			return out, nil
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.alg.Hash.New()
			h.Write(msg)
			sig, err := tt.sign(h.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			pub := roundTripKey(t, tt.key.Public())
			if err := tt.alg.Verify(pub, msg, sig); err != nil {
				t.Fatalf("verify: %v", err)
			}
			bad := append([]byte(nil), msg...)
			bad[0] ^= 1
			if err := tt.alg.Verify(pub, bad, sig); !errors.Is(err, ErrSignature) {
				t.Fatalf("tampered message: err = %v, want ErrSignature", err)
			}
			if err := tt.alg.Verify(ed25519.PublicKey(make([]byte, 32)), msg, sig); err == nil || errors.Is(err, ErrSignature) {
				t.Fatalf("wrong key type: err = %v", err)
			}
		})
	}
	t.Run("ed25519", func(t *testing.T) {
		alg, err := ParseSignatureAlgorithm(AlgorithmIdentifier{OID: OIDEd25519})
		if err != nil {
			t.Fatal(err)
		}
		sig := ed25519.Sign(edKey, msg)
		pub := roundTripKey(t, edKey.Public())
		if err := alg.Verify(pub, msg, sig); err != nil {
			t.Fatal(err)
		}
		if err := alg.Verify(pub, msg[1:], sig); !errors.Is(err, ErrSignature) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParsePublicKeyInfoMatchesX509(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParsePublicKeyInfo(der)
	if err != nil {
		t.Fatal(err)
	}
	if !k.PublicKey.Equal(info.Key) {
		t.Fatal("key differs")
	}
	for i := range der {
		// Truncations must error, never panic.
		if _, err := ParsePublicKeyInfo(der[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
}
