package fitconnect

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// foreignJWE encrypts with go-jose directly, to build the tokens a careless or
// hostile sender might send.
func foreignJWE(t *testing.T, pub *rsa.PublicKey, alg jose.KeyAlgorithm, enc jose.ContentEncryption, opts *jose.EncrypterOptions) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replaceSegment swaps one segment of a compact serialization.
func replaceSegment(compact string, i int, seg string) string {
	p := strings.Split(compact, ".")
	p[i] = seg
	return strings.Join(p, ".")
}

func flipLastByte(seg string) string {
	b, _ := base64.RawURLEncoding.DecodeString(seg)
	b[len(b)-1] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	a, _ := testKeys(t)
	pub := testPublic(t, a, "enc-key-1")
	plain := []byte(`{"$schema":"x","contentStructure":{"attachments":[]}}`)
	compact, err := Encrypt(plain, pub, EncryptOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dec  *Decrypter
	}{
		{"JWK", testDecrypter(t, a, "enc-key-1")},
		{"crypto.Decrypter", mustCrypto(t, a)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decrypt([]byte(compact), tc.dec, DecryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Plaintext, plain) {
				t.Errorf("plaintext %q, want %q", got.Plaintext, plain)
			}
			if want := compact[strings.LastIndexByte(compact, '.')+1:]; got.AuthenticationTag != want {
				t.Errorf("tag %q, want the fifth segment %q", got.AuthenticationTag, want)
			}
			if got.KeyID != "enc-key-1" || got.ContentType != "application/json" || got.Compressed {
				t.Errorf("header kid %q cty %q zip %v", got.KeyID, got.ContentType, got.Compressed)
			}
		})
	}
	tag, err := AuthenticationTag(compact)
	if err != nil || tag != compact[strings.LastIndexByte(compact, '.')+1:] {
		t.Errorf("AuthenticationTag = %q, %v", tag, err)
	}
	// The header is exactly what the SDKs write: alg, enc, kid, cty and no zip.
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(compact, ".", 2)[0])
	for _, want := range []string{`"alg":"RSA-OAEP-256"`, `"enc":"A256GCM"`, `"kid":"enc-key-1"`, `"cty":"application/json"`} {
		if !strings.Contains(string(hdr), want) {
			t.Errorf("header %s lacks %s", hdr, want)
		}
	}
	if strings.Contains(string(hdr), "zip") {
		t.Errorf("header %s has zip", hdr)
	}
}

func mustCrypto(t *testing.T, k *rsa.PrivateKey) *Decrypter {
	t.Helper()
	d, err := NewCryptoDecrypter("enc-key-1", k)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecryptRefuses(t *testing.T) {
	a, b := testKeys(t)
	dec := testDecrypter(t, a, "k")
	good, err := Encrypt([]byte("data"), testPublic(t, a, "k"), EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	critHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["exp"],"exp":1}`))
	for _, tc := range []struct {
		name   string
		jwe    string
		opts   DecryptOptions
		want   error
		member string // for ErrUnsupportedJWE
	}{
		{"RSA-OAEP (SHA-1)", foreignJWE(t, &a.PublicKey, jose.RSA_OAEP, jose.A256GCM, nil), DecryptOptions{}, ErrUnsupportedJWE, "alg"},
		{"RSA1_5", foreignJWE(t, &a.PublicKey, jose.RSA1_5, jose.A256GCM, nil), DecryptOptions{}, ErrUnsupportedJWE, "alg"},
		{"A128GCM", foreignJWE(t, &a.PublicKey, jose.RSA_OAEP_256, jose.A128GCM, nil), DecryptOptions{}, ErrUnsupportedJWE, "enc"},
		{"A256CBC-HS512", foreignJWE(t, &a.PublicKey, jose.RSA_OAEP_256, jose.A256CBC_HS512, nil), DecryptOptions{}, ErrUnsupportedJWE, "enc"},
		{"zip DEF refused by default", foreignJWE(t, &a.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, &jose.EncrypterOptions{Compression: jose.DEFLATE}), DecryptOptions{}, ErrUnsupportedJWE, "zip"},
		{"crit", replaceSegment(good, 0, critHeader), DecryptOptions{}, ErrUnsupportedJWE, "crit"},
		{"too large", good, DecryptOptions{MaxSize: int64(len(good) - 1)}, ErrJWETooLarge, ""},
		{"four segments", good[:strings.LastIndexByte(good, '.')], DecryptOptions{}, ErrMalformedJWE, ""},
		{"six segments", good + ".x", DecryptOptions{}, ErrMalformedJWE, ""},
		{"header not base64", replaceSegment(good, 0, "!!!"), DecryptOptions{}, ErrMalformedJWE, ""},
		{"header not JSON", replaceSegment(good, 0, base64.RawURLEncoding.EncodeToString([]byte("nope"))), DecryptOptions{}, ErrMalformedJWE, ""},
		{"short tag", replaceSegment(good, 4, "AAAA"), DecryptOptions{}, ErrMalformedJWE, ""},
		{"empty", "", DecryptOptions{}, ErrMalformedJWE, ""},
		{"other key", mustEncrypt(t, testPublic(t, b, "k")), DecryptOptions{}, ErrDecryption, ""},
		{"ciphertext changed", replaceSegment(good, 3, flipLastByte(strings.Split(good, ".")[3])), DecryptOptions{}, ErrDecryption, ""},
		{"tag changed", replaceSegment(good, 4, flipLastByte(strings.Split(good, ".")[4])), DecryptOptions{}, ErrDecryption, ""},
		{"encrypted key changed", replaceSegment(good, 1, flipLastByte(strings.Split(good, ".")[1])), DecryptOptions{}, ErrDecryption, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decrypt([]byte(tc.jwe), dec, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.member != "" {
				var ue *UnsupportedJWEError
				if !errors.As(err, &ue) || ue.Member != tc.member {
					t.Errorf("error %v, want unsupported %s", err, tc.member)
				}
			}
			if p := ProblemFor(err, InstanceData); p.Type != ProblemEncryptionIssue || p.Instance != InstanceData {
				t.Errorf("problem %+v, want encryption-issue for data", p)
			}
		})
	}
}

func mustEncrypt(t *testing.T, to *PublicKey) string {
	t.Helper()
	s, err := Encrypt([]byte("data"), to, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDecryptCompressed: with AllowCompression a zip DEF token (as the Python
// SDK 0.4.2 writes) decrypts and says so.
func TestDecryptCompressed(t *testing.T) {
	a, _ := testKeys(t)
	jwe := foreignJWE(t, &a.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, &jose.EncrypterOptions{Compression: jose.DEFLATE})
	got, err := Decrypt([]byte(jwe), testDecrypter(t, a, "k"), DecryptOptions{AllowCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Plaintext) != `{"hello":"world"}` || !got.Compressed {
		t.Errorf("got %q compressed %v", got.Plaintext, got.Compressed)
	}
}

func TestKeyParsing(t *testing.T) {
	a, _ := testKeys(t)
	for _, tc := range []struct {
		name    string
		jwk     []byte
		private bool
		ok      bool
	}{
		{"private, alg and key_ops", jwkJSON(t, a, "k", KeyAlgorithm, "unwrapKey"), true, true},
		{"private, no alg", jwkJSON(t, a, "k", ""), true, true},
		{"private, PS512", jwkJSON(t, a, "k", SignatureAlgorithm), true, false},
		{"private, sign only", jwkJSON(t, a, "k", KeyAlgorithm, "sign"), true, false},
		{"public as private", jwkJSON(t, &a.PublicKey, "k", KeyAlgorithm), true, false},
		{"public, wrapKey", jwkJSON(t, &a.PublicKey, "k", KeyAlgorithm, "wrapKey"), false, true},
		{"public, verify only", jwkJSON(t, &a.PublicKey, "k", KeyAlgorithm, "verify"), false, false},
		{"the dummy key of the corpus (values 'foo')", mustRead(t, "../testdata/fitconnect/fit-connect-adapter/decryption_key_dummy.json"), true, false},
		{"EC", []byte(`{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`), false, false},
		{"not JSON", []byte("{"), false, false},
		{"huge", bytes.Repeat([]byte(" "), maxJWKSize+1), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.private {
				_, err = NewJWKDecrypter(tc.jwk)
			} else {
				_, err = ParseEncryptionKey(tc.jwk)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("error %v does not wrap ErrInvalidKey", err)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, jwkJSON(t, a, "file-key", KeyAlgorithm, "unwrapKey"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadJWKDecrypter(path)
	if err != nil || d.KeyID() != "file-key" {
		t.Fatalf("LoadJWKDecrypter = %v, %v", d, err)
	}
	if _, err := NewCryptoDecrypter("k", nil); err == nil {
		t.Error("NewCryptoDecrypter accepted nil")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
