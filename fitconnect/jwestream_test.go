package fitconnect

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	jose "github.com/go-jose/go-jose/v4"
)

// encryptWith builds a token with go-jose, compressed when zip is set (as
// the Python SDK 0.4.2 does through jwcrypto).
func encryptWith(t testing.TB, plain []byte, pub *rsa.PublicKey, zip bool) string {
	t.Helper()
	opts := &jose.EncrypterOptions{}
	if zip {
		opts.Compression = jose.DEFLATE
	}
	e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: "enc-1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// opaqueReader hides Len, so that the decrypter cannot measure the input.
type opaqueReader struct{ r io.Reader }

func (o opaqueReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestDecryptReader: a stream decrypts to what Decrypt gives, whether the
// reader can be measured, hands out one byte at a time, or is told the size;
// compressed or not.
func TestDecryptReader(t *testing.T) {
	a, _ := testKeys(t)
	dec := testDecrypter(t, a, "k")
	big := bytes.Repeat([]byte("Anlage zum Antrag, Seite für Seite. "), 10_000) // ~360 kB, past bufio's buffer
	for _, zip := range []bool{false, true} {
		jwe := encryptWith(t, big, &a.PublicKey, zip)
		tag := jwe[strings.LastIndexByte(jwe, '.')+1:]
		for name, mk := range map[string]func() (io.Reader, DecryptOptions){
			"strings.Reader": func() (io.Reader, DecryptOptions) { return strings.NewReader(jwe), DecryptOptions{} },
			"unmeasured":     func() (io.Reader, DecryptOptions) { return opaqueReader{strings.NewReader(jwe)}, DecryptOptions{} },
			"one byte a read": func() (io.Reader, DecryptOptions) {
				return iotest.OneByteReader(strings.NewReader(jwe)), DecryptOptions{}
			},
			"size given": func() (io.Reader, DecryptOptions) {
				return opaqueReader{strings.NewReader(jwe)}, DecryptOptions{Size: int64(len(jwe))}
			},
			"surrounded by white space": func() (io.Reader, DecryptOptions) {
				return opaqueReader{strings.NewReader(" \n" + jwe + "\r\n")}, DecryptOptions{}
			},
		} {
			t.Run(name, func(t *testing.T) {
				r, opts := mk()
				opts.AllowCompression = true
				got, err := DecryptReader(r, dec, opts)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Plaintext, big) || got.AuthenticationTag != tag || got.Compressed != zip || got.KeyID != "enc-1" {
					t.Errorf("plaintext %d bytes (want %d), tag %q (want %q), zip %v kid %q", len(got.Plaintext), len(big),
						got.AuthenticationTag, tag, got.Compressed, got.KeyID)
				}
				r, opts = mk()
				opts.AllowCompression = true
				pr, info, err := OpenJWE(r, dec, opts)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(pr)
				if err != nil || !bytes.Equal(b, big) || info.AuthenticationTag != tag || info.Plaintext != nil {
					t.Errorf("OpenJWE: %d bytes, %v, tag %q", len(b), err, info.AuthenticationTag)
				}
			})
		}
	}
}

// TestDecryptReaderBounds: the input cap holds for a stream that does not
// say its length, the plaintext cap for inflated and plain content, and a
// failed decryption still reports the tag it read.
func TestDecryptReaderBounds(t *testing.T) {
	a, _ := testKeys(t)
	dec := testDecrypter(t, a, "k")
	bomb := encryptWith(t, make([]byte, 4<<20), &a.PublicKey, true) // 4 MiB of zeros, a few kB on the wire
	plain := encryptWith(t, make([]byte, 64<<10), &a.PublicKey, false)

	t.Run("stream past MaxSize", func(t *testing.T) {
		endless := io.MultiReader(strings.NewReader(plain[:strings.IndexByte(plain, '.')+1]+"AAAA.AAAAAAAAAAAAAAAA."),
			iotest.OneByteReader(strings.NewReader(strings.Repeat("A", 1<<20))))
		_, err := DecryptReader(opaqueReader{endless}, dec, DecryptOptions{MaxSize: 64 << 10})
		if !errors.Is(err, ErrJWETooLarge) {
			t.Fatalf("error %v, want ErrJWETooLarge", err)
		}
	})
	t.Run("exactly MaxSize", func(t *testing.T) {
		if _, err := DecryptReader(opaqueReader{strings.NewReader(plain)}, dec, DecryptOptions{MaxSize: int64(len(plain))}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("size hint past MaxSize", func(t *testing.T) {
		_, err := DecryptReader(opaqueReader{strings.NewReader(plain)}, dec, DecryptOptions{MaxSize: 1000, Size: int64(len(plain))})
		if !errors.Is(err, ErrJWETooLarge) {
			t.Fatalf("error %v, want ErrJWETooLarge", err)
		}
	})
	t.Run("inflated past MaxPlaintext", func(t *testing.T) {
		opts := DecryptOptions{AllowCompression: true, MaxPlaintext: 1 << 20}
		if _, err := DecryptReader(strings.NewReader(bomb), dec, opts); !errors.Is(err, ErrPlaintextTooLarge) {
			t.Fatalf("DecryptReader: error %v, want ErrPlaintextTooLarge", err)
		}
		r, _, err := OpenJWE(strings.NewReader(bomb), dec, opts)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		if !errors.Is(err, ErrPlaintextTooLarge) || n > 1<<20 {
			t.Fatalf("OpenJWE: %d bytes, error %v, want at most 1 MiB and ErrPlaintextTooLarge", n, err)
		}
		if p := ProblemFor(err, InstanceData); p.Type != ProblemEncryptionIssue {
			t.Errorf("problem %s, want encryption-issue", p.Type)
		}
	})
	t.Run("inflated by default within the serialization's cap", func(t *testing.T) {
		opts := DecryptOptions{AllowCompression: true, MaxSize: 1 << 20}
		if _, err := DecryptReader(strings.NewReader(bomb), dec, opts); !errors.Is(err, ErrPlaintextTooLarge) {
			t.Fatalf("error %v, want ErrPlaintextTooLarge", err)
		}
	})
	t.Run("plain past MaxPlaintext", func(t *testing.T) {
		_, err := DecryptReader(strings.NewReader(plain), dec, DecryptOptions{MaxPlaintext: 1 << 10})
		if !errors.Is(err, ErrPlaintextTooLarge) {
			t.Fatalf("error %v, want ErrPlaintextTooLarge", err)
		}
	})
	t.Run("trailing dot", func(t *testing.T) {
		if _, err := DecryptReader(strings.NewReader(plain+"."), dec, DecryptOptions{}); !errors.Is(err, ErrMalformedJWE) {
			t.Fatalf("error %v, want ErrMalformedJWE", err)
		}
	})
	t.Run("tag reported when the tag does not verify", func(t *testing.T) {
		bad := replaceSegment(plain, 4, flipLastByte(strings.Split(plain, ".")[4]))
		_, info, err := OpenJWE(strings.NewReader(bad), dec, DecryptOptions{})
		if !errors.Is(err, ErrDecryption) || info == nil || info.AuthenticationTag != strings.Split(bad, ".")[4] || info.KeyID != "enc-1" {
			t.Fatalf("error %v, info %+v", err, info)
		}
	})
	t.Run("kid reported when the header is refused", func(t *testing.T) {
		bad := replaceSegment(plain, 0, "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoieCJ9") // RSA1_5, kid x
		_, info, err := OpenJWE(strings.NewReader(bad), dec, DecryptOptions{})
		if !errors.Is(err, ErrUnsupportedJWE) || info.KeyID != "x" || info.AuthenticationTag != "" {
			t.Fatalf("error %v, info %+v", err, info)
		}
	})
	t.Run("read error is not a malformed token", func(t *testing.T) {
		boom := errors.New("disk on fire")
		for _, at := range []int{10, len(plain) / 2, len(plain) - 3} {
			r := io.MultiReader(strings.NewReader(plain[:at]), iotest.ErrReader(boom))
			_, err := DecryptReader(r, dec, DecryptOptions{})
			if !errors.Is(err, boom) || errors.Is(err, ErrMalformedJWE) {
				t.Errorf("cut at %d: error %v, want the read error", at, err)
			}
		}
	})
	t.Run("no key", func(t *testing.T) {
		if _, _, err := OpenJWE(strings.NewReader(plain), nil, DecryptOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("error %v, want ErrInvalidKey", err)
		}
	})
}
