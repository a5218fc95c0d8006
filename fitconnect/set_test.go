package fitconnect

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	destID   = "d12caea8-f372-4eb1-b102-b0a228253a11"
	subID    = "f39ab143-d91a-474a-b69f-b00f1a1873c2"
	caseID   = "9eec7d3e-dc66-4f82-9f52-1520bf96a32e"
	platform = "https://submission-api.example.org/"
)

func testSigner(t testing.TB, key *rsa.PrivateKey, kid string) *Signer {
	t.Helper()
	s, err := NewJWKSigner(jwkJSON(t, key, kid, SignatureAlgorithm, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKeySet(t testing.TB, key *rsa.PrivateKey, kid string) *KeySet {
	t.Helper()
	ks := NewKeySet()
	if err := ks.AddJWK(jwkJSON(t, &key.PublicKey, kid, SignatureAlgorithm, "verify")); err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestAcceptSubmissionSET(t *testing.T) {
	a, _ := testKeys(t)
	tags := AuthenticationTags{Metadata: "bWV0YQ", Data: "ZGF0YQ", Attachments: map[string]string{attA: "YXR0QQ"}}
	iat := time.Date(2026, 12, 3, 16, 40, 0, 0, time.UTC)
	claims := SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID, IssuedAt: iat}
	for _, tc := range []struct {
		name   string
		signer *Signer
	}{
		{"JWK", testSigner(t, a, "sig-1")},
		{"crypto.Signer", mustCryptoSigner(t, a, "sig-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewAcceptSubmission(claims, tags)
			if err != nil {
				t.Fatal(err)
			}
			compact, err := tc.signer.Sign(p)
			if err != nil {
				t.Fatal(err)
			}
			hdr := decodeSeg(t, compact, 0)
			for _, want := range []string{`"alg":"PS512"`, `"typ":"secevent+jwt"`, `"kid":"sig-1"`} {
				if !strings.Contains(hdr, want) {
					t.Errorf("header %s lacks %s", hdr, want)
				}
			}
			body := decodeSeg(t, compact, 1)
			for _, want := range []string{`"$schema":"` + SETPayloadSchema + `"`, `"iss":"` + destID + `"`, `"sub":"submission:` + subID + `"`,
				`"txn":"case:` + caseID + `"`, `"iat":` + "1796316000", `"` + EventAcceptSubmission + `":{"authenticationTags":{"metadata":"bWV0YQ","data":"ZGF0YQ","attachments":{"` + attA + `":"YXR0QQ"}}}`} {
				if !strings.Contains(body, want) {
					t.Errorf("payload %s lacks %s", body, want)
				}
			}
			set, err := ParseSET(compact, testKeySet(t, a, "sig-1"), VerifyOptions{Issuer: destID})
			if err != nil {
				t.Fatal(err)
			}
			if set.Event != EventAcceptSubmission || set.SubmissionID() != subID || set.CaseID() != caseID || set.KeyID != "sig-1" || len(set.JTI) != 36 {
				t.Errorf("SET %+v", set)
			}
			got, ok, err := set.AuthenticationTags()
			if err != nil || !ok || !got.Equal(tags) {
				t.Errorf("tags %+v %v %v", got, ok, err)
			}
		})
	}
}

func mustCryptoSigner(t *testing.T, k *rsa.PrivateKey, kid string) *Signer {
	t.Helper()
	s, err := NewCryptoSigner(kid, k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeSeg(t *testing.T, compact string, i int) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(compact, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRejectSubmissionSET(t *testing.T) {
	a, _ := testKeys(t)
	problems := []Problem{NewProblem(ProblemHashMismatch, InstanceAttachment(attA), "SHA-512 differs")}
	p, err := NewRejectSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, problems)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := testSigner(t, a, "sig-1").Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseSET(compact, testKeySet(t, a, "sig-1"), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := set.Problems()
	if err != nil || len(got) != 1 || got[0] != problems[0] || got[0].Instance != "attachment:"+attA {
		t.Errorf("problems %+v %v", got, err)
	}
	if _, err := NewRejectSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, nil); err == nil {
		t.Error("a reject without problems was built")
	}
}

// TestPeekSET: the payload of any well-formed SET is readable before (and
// without) verification, whoever signed it; malformed ones are ErrInvalidSET.
func TestPeekSET(t *testing.T) {
	a, b := testKeys(t)
	p, err := NewAcceptSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, AuthenticationTags{Metadata: "m"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []*rsa.PrivateKey{a, b} {
		compact, err := testSigner(t, key, "unknown-kid").Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := PeekSET(" " + compact + "\n")
		if err != nil || got.Issuer != destID || got.Subject != "submission:"+subID || got.Events[EventAcceptSubmission] == nil {
			t.Errorf("PeekSET: %+v, %v", got, err)
		}
		if _, err := ParseSET(compact, testKeySet(t, a, "sig-1"), VerifyOptions{}); !errors.Is(err, ErrSETSignature) {
			t.Errorf("ParseSET of the peeked token: %v, want ErrSETSignature", err)
		}
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte("[]")) + ".c",
		"a." + strings.Repeat("A", DefaultMaxSETSize) + ".c"} {
		if _, err := PeekSET(bad); !errors.Is(err, ErrInvalidSET) {
			t.Errorf("PeekSET(%.20q): %v, want ErrInvalidSET", bad, err)
		}
	}
}

// TestPlatformSET: the platform's own submit-submission, signed with a key of
// its JWKS, verifies and yields the tags the destination compares with.
func TestPlatformSET(t *testing.T) {
	_, b := testKeys(t)
	tags := AuthenticationTags{Metadata: "m", Data: "d"}
	p, err := NewSET(SETClaims{Issuer: platform, Subject: SubjectSubmission(subID), CaseID: caseID}, EventSubmitSubmission,
		map[string]any{"authenticationTags": tags})
	if err != nil {
		t.Fatal(err)
	}
	compact, err := testSigner(t, b, "platform-1").Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []json.RawMessage{
		jwkJSON(t, &b.PublicKey, "enc-1", KeyAlgorithm, "wrapKey"), // skipped: not a signature key
		jwkJSON(t, &b.PublicKey, "platform-1", SignatureAlgorithm, "verify"),
	}})
	ks, err := ParseJWKSet(jwks)
	if err != nil || ks.Len() != 1 {
		t.Fatalf("ParseJWKSet: %v (%d keys)", err, ks.Len())
	}
	set, err := ParseSET(compact, ks, VerifyOptions{Issuer: platform})
	if err != nil {
		t.Fatal(err)
	}
	got, ok, _ := set.AuthenticationTags()
	if set.Event != EventSubmitSubmission || !ok || !got.Equal(tags) {
		t.Errorf("SET %+v tags %+v", set, got)
	}
	if _, err := ParseJWKSet([]byte(`{"keys":[]}`)); err == nil {
		t.Error("an empty JWKS was accepted")
	}
}

func TestParseSETRefuses(t *testing.T) {
	a, b := testKeys(t)
	keys := testKeySet(t, a, "sig-1")
	claims := SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}
	good := func() *SETPayload {
		p, err := NewAcceptSubmission(claims, AuthenticationTags{Metadata: "m"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	sign := func(key *rsa.PrivateKey, alg jose.SignatureAlgorithm, typ string, kid string, payload any) string {
		t.Helper()
		opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(payload)
		obj, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	twoEvents := good()
	twoEvents.Events[EventRejectSubmission] = json.RawMessage(`{"problems":[]}`)
	noJTI := good()
	noJTI.JTI = ""
	badTxn := good()
	badTxn.Transaction = "submission:x"
	arrayDetails := good()
	arrayDetails.Events = map[string]json.RawMessage{EventAcceptSubmission: json.RawMessage(`[]`)}
	valid := sign(a, jose.PS512, SETType, "sig-1", good())
	for _, tc := range []struct {
		name string
		jws  string
		opts VerifyOptions
		want error
	}{
		{"RS512", sign(a, jose.RS512, SETType, "sig-1", good()), VerifyOptions{}, ErrInvalidSET},
		{"no typ", sign(a, jose.PS512, "", "sig-1", good()), VerifyOptions{}, ErrInvalidSET},
		{"typ JWT", sign(a, jose.PS512, "JWT", "sig-1", good()), VerifyOptions{}, ErrInvalidSET},
		{"no kid", sign(a, jose.PS512, SETType, "", good()), VerifyOptions{}, ErrInvalidSET},
		{"unknown kid", sign(a, jose.PS512, SETType, "sig-2", good()), VerifyOptions{}, ErrSETSignature},
		{"other key, same kid", sign(b, jose.PS512, SETType, "sig-1", good()), VerifyOptions{}, ErrSETSignature},
		{"payload changed", replaceSegment(valid, 1, base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x"}`))), VerifyOptions{}, ErrSETSignature},
		{"two events", sign(a, jose.PS512, SETType, "sig-1", twoEvents), VerifyOptions{}, ErrInvalidSET},
		{"no jti", sign(a, jose.PS512, SETType, "sig-1", noJTI), VerifyOptions{}, ErrInvalidSET},
		{"txn not a case", sign(a, jose.PS512, SETType, "sig-1", badTxn), VerifyOptions{}, ErrInvalidSET},
		{"details not an object", sign(a, jose.PS512, SETType, "sig-1", arrayDetails), VerifyOptions{}, ErrInvalidSET},
		{"other issuer", valid, VerifyOptions{Issuer: platform}, ErrInvalidSET},
		{"too large", valid, VerifyOptions{MaxSize: 100}, ErrInvalidSET},
		{"JWE-shaped", "a.b.c.d.e", VerifyOptions{}, ErrInvalidSET},
		{"garbage", "not a token", VerifyOptions{}, ErrInvalidSET},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSET(tc.jws, keys, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestPublicJWKs: the public halves of our keys, as registered at the
// platform, are accepted where senders and verifiers read them.
func TestPublicJWKs(t *testing.T) {
	a, b := testKeys(t)
	sj, err := testSigner(t, a, "sig-1").PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	if err := NewKeySet().AddJWK(sj); err != nil || strings.Contains(string(sj), `"d"`) {
		t.Errorf("signer's public JWK %s: %v", sj, err)
	}
	ej, err := testDecrypter(t, b, "enc-1").PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseEncryptionKey(ej)
	if err != nil || pub.KeyID != "enc-1" || strings.Contains(string(ej), `"d"`) {
		t.Errorf("decrypter's public JWK %s: %v", ej, err)
	}
	cd, _ := NewCryptoDecrypter("enc-2", b)
	if j, err := cd.PublicJWK(); err != nil || !strings.Contains(string(j), `"wrapKey"`) {
		t.Errorf("crypto decrypter's public JWK %s: %v", j, err)
	}
	if !cd.Public().Equal(&b.PublicKey) || !testDecrypter(t, b, "enc-1").Public().Equal(&b.PublicKey) {
		t.Error("Public is not the key's public half")
	}
}

func TestSignerKeys(t *testing.T) {
	a, _ := testKeys(t)
	for _, tc := range []struct {
		name string
		jwk  []byte
		ok   bool
	}{
		{"PS512 with kid", jwkJSON(t, a, "sig", SignatureAlgorithm, "sign"), true},
		{"no kid", jwkJSON(t, a, "", SignatureAlgorithm), false},
		{"encryption key", jwkJSON(t, a, "sig", KeyAlgorithm), false},
		{"verify only", jwkJSON(t, a, "sig", SignatureAlgorithm, "verify"), false},
		{"public", jwkJSON(t, &a.PublicKey, "sig", SignatureAlgorithm), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewJWKSigner(tc.jwk); (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := NewCryptoSigner("", a); err == nil {
		t.Error("a crypto signer without kid was accepted")
	}
	if _, err := NewSET(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, "https://example.org/event", nil); err == nil {
		t.Error("a foreign event URI was accepted")
	}
}
