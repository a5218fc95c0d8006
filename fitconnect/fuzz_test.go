package fitconnect

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzDecrypt: any input either decrypts (only a token made with the key) or
// fails with one of the JWE errors; never a panic, never another error.
func FuzzDecrypt(f *testing.F) {
	a, _ := testKeys(f)
	dec := testDecrypter(f, a, "k")
	good, err := Encrypt([]byte(`{"a":1}`), testPublic(f, a, "k"), EncryptOptions{ContentType: "application/json"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(good))
	f.Add([]byte("...."))
	f.Add([]byte("eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0...."))
	f.Add([]byte("eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwiemlwIjoiREVGIn0.a.b.c.d"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Decrypt(in, dec, DecryptOptions{MaxSize: 1 << 20, AllowCompression: true})
		if err == nil {
			if d.AuthenticationTag == "" {
				t.Fatal("decrypted without a tag")
			}
			return
		}
		if !errors.Is(err, ErrMalformedJWE) && !errors.Is(err, ErrUnsupportedJWE) &&
			!errors.Is(err, ErrDecryption) && !errors.Is(err, ErrJWETooLarge) && !errors.Is(err, ErrPlaintextTooLarge) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzOpenJWE feeds arbitrary serializations to the stream decrypter, one
// byte a read: no panic, never more plaintext than the cap, and the same
// answer as Decrypt on the same bytes.
func FuzzOpenJWE(f *testing.F) {
	a, _ := testKeys(f)
	dec := testDecrypter(f, a, "k")
	good := encryptWith(f, []byte(`{"a":1}`), &a.PublicKey, false)
	f.Add(good)
	f.Add(encryptWith(f, bytes.Repeat([]byte("zipped "), 1000), &a.PublicKey, true))
	f.Add("a.b.c.d.e")
	f.Add("....")
	f.Add(good + ".")
	f.Add(replaceSegment(good, 0, "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwiemlwIjoiR1oifQ")) // zip GZ
	f.Fuzz(func(t *testing.T, s string) {
		const maxPlain = 1 << 12
		opts := DecryptOptions{MaxSize: 1 << 16, MaxPlaintext: maxPlain, AllowCompression: true}
		r, info, err := OpenJWE(iotest.OneByteReader(strings.NewReader(s)), dec, opts)
		if info == nil {
			t.Fatal("no info")
		}
		_, derr := Decrypt([]byte(s), dec, opts)
		if err != nil {
			if derr == nil {
				t.Fatalf("OpenJWE failed (%v) where Decrypt did not", err)
			}
			return
		}
		n, rerr := io.Copy(io.Discard, r)
		if n > maxPlain {
			t.Fatalf("%d bytes of plaintext past the cap", n)
		}
		if (rerr == nil) != (derr == nil) {
			t.Fatalf("reading: %v, Decrypt: %v", rerr, derr)
		}
	})
}

// FuzzParseMetadata: any input is accepted with typed fields or refused with a
// *ProblemError; never a panic.
func FuzzParseMetadata(f *testing.F) {
	v := testValidator(f)
	f.Add(marshal(f, sdkMetadata(SHA512Hex([]byte("x")), attA)))
	f.Add([]byte(`{"$schema":"https://schema.fitko.de/fit-connect/metadata/2.1.0/metadata.schema.json","contentStructure":{"attachments":[],"data":{"hash":{"type":"sha512","content":"` + SHA512Hex(nil) + `"},"submissionSchema":{"schemaUri":"urn:x","mimeType":"application/xml"}}},"replyChannel":{"eMail":{"address":"a@example.org"}}}`))
	f.Add([]byte(`{"contentStructure":{"attachments":[]},"replyChannel":{"fitConnect":{"encryptionPublicKey":{"kty":"RSA"}}}}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Add([]byte(`{"$schema":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		md, err := v.Parse(in)
		if err != nil {
			var pe *ProblemError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ProblemError", err)
			}
			return
		}
		if md.ValidatedWith == "" {
			t.Fatal("accepted without a schema")
		}
		_ = md.CheckAttachments(nil)
		if md.ReplyChannel != nil && md.ReplyChannel.FitConnect != nil {
			_, _ = md.ReplyChannel.FitConnect.EncryptionKey()
		}
	})
}

// FuzzParseSET: any input verifies (only what our key signed) or fails with
// ErrInvalidSET or ErrSETSignature; never a panic.
func FuzzParseSET(f *testing.F) {
	a, _ := testKeys(f)
	keys := testKeySet(f, a, "sig-1")
	p, err := NewAcceptSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, AuthenticationTags{Metadata: "m"})
	if err != nil {
		f.Fatal(err)
	}
	good, err := testSigner(f, a, "sig-1").Sign(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("eyJhbGciOiJQUzUxMiIsInR5cCI6InNlY2V2ZW50K2p3dCIsImtpZCI6InNpZy0xIn0.e30.AAAA")
	f.Add("..")
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, in string) {
		peeked, perr := PeekSET(in)
		s, err := ParseSET(in, keys, VerifyOptions{})
		if perr != nil && !errors.Is(perr, ErrInvalidSET) {
			t.Fatalf("PeekSET: unexpected error kind: %v", perr)
		}
		if err == nil && (perr != nil || peeked.JTI != s.JTI) {
			t.Fatalf("verified but PeekSET says %+v, %v", peeked, perr)
		}
		if err == nil {
			if s.Event == "" || s.KeyID != "sig-1" {
				t.Fatalf("verified SET without event or with kid %q", s.KeyID)
			}
			_, _, _ = s.AuthenticationTags()
			_, _ = s.Problems()
			return
		}
		if !errors.Is(err, ErrInvalidSET) && !errors.Is(err, ErrSETSignature) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzCallback: header values and body from outside; only an authentic
// callback parses.
func FuzzCallback(f *testing.F) {
	secret := []byte("secret")
	now := time.Unix(1672527599, 0)
	ts, auth := SignCallback(secret, []byte(callbackBody), now)
	f.Add(ts, auth, []byte(callbackBody))
	f.Add("1672527599", "00", []byte("{}"))
	f.Add("-1", "", []byte(nil))
	f.Add("99999999999999999999", auth, []byte(callbackBody))
	v := CallbackVerifier{Secret: secret, Now: func() time.Time { return now }, MaxBody: 1 << 16}
	f.Fuzz(func(t *testing.T, ts, auth string, body []byte) {
		c, err := v.Verify(ts, auth, body)
		if err == nil {
			if c.Type == "" {
				t.Fatal("accepted a callback without type")
			}
			_ = c.IDs()
			return
		}
		if !errors.Is(err, ErrCallbackAuthentication) && !errors.Is(err, ErrCallbackTimestamp) && !errors.Is(err, ErrCallbackBody) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzCallbackUnknownSecret (the portal channel's former FuzzCallback):
// nothing verifies without the secret, whatever the headers and body, and
// the replay cache never lets an unauthenticated callback in.
func FuzzCallbackUnknownSecret(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	ts, auth := SignCallback([]byte("s"), []byte("{}"), now)
	f.Add(ts, auth, []byte("{}"))
	f.Add("-1", "00", []byte(nil))
	f.Add("99999999999999999999", "", []byte("x"))
	v := CallbackVerifier{Secret: []byte("secret-not-in-the-corpus"), Now: func() time.Time { return now }, Replays: NewCallbackReplays(0)}
	f.Fuzz(func(t *testing.T, ts, auth string, body []byte) {
		if c, err := v.Verify(ts, auth, body); err == nil || c != nil {
			t.Fatalf("a callback verified without the secret: %q %q (%+v, %v)", ts, auth, c, err)
		}
	})
}
