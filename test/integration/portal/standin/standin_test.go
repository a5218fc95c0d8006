package standin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keysOnce sync.Once
	keys     *Keys
	keysErr  error
)

// testKeys are the world's keys, cached in the user's cache directory like
// the integration test's (generating seven 4096-bit keys takes long).
func testKeys(t *testing.T) *Keys {
	t.Helper()
	keysOnce.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		keys, keysErr = LoadOrGenerateKeys(filepath.Join(dir, "poststelle", "fitconnect-standin-keys.json"))
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestTokenExpiry: a token lives TokenTTL (expires_in says so); at its end
// the API answers 401 with WWW-Authenticate error="invalid_token" and a
// problem; a new token works again.
func TestTokenExpiry(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	srv, setup, err := Provision(testKeys(t), "http://127.0.0.1", Options{TokenTTL: 90 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler()
	token := func() string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {setup.Sender.ClientID}, "client_secret": {setup.Sender.ClientSecret}}
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var tok struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
			Scope       string `json:"scope"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || rec.Code != http.StatusOK || tok.ExpiresIn != 90 || tok.Scope != "send:region:DE" {
			t.Fatalf("token: %d %s", rec.Code, rec.Body)
		}
		return tok.AccessToken
	}
	get := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/destinations/"+setup.Destinations[0].DestinationID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	tok := token()
	clk.add(89 * time.Second)
	if rec := get(tok); rec.Code != http.StatusOK {
		t.Fatalf("before expiry: %d", rec.Code)
	}
	clk.add(time.Second)
	rec := get(tok)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) ||
		rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("after expiry: %d %q %s", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
	if rec := get(token()); rec.Code != http.StatusOK {
		t.Fatalf("new token: %d", rec.Code)
	}
}

const (
	// A compact JWE in form (RSA-OAEP-256, A256GCM); the bytes are not a real
	// encryption, the stand-in does not decrypt.
	jweHead = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0" // {"alg":"RSA-OAEP-256","enc":"A256GCM"}
	jweOK   = jweHead + ".a2V5.aXZpdml2aXZpdml2.Y2lwaGVy.AAAAAAAAAAAAAAAAAAAAAA"
)

func TestParseCompactJWE(t *testing.T) {
	for _, c := range []struct {
		name, in, err string
	}{
		{"ok", jweOK, ""},
		{"empty", "", "empty"},
		{"four segments", jweHead + ".a2V5.aXY.Y2lwaGVy", "segments"},
		{"not base64url", jweHead + ".a2V5!.aXY.Y2lwaGVy.AAAAAAAAAAAAAAAAAAAAAA", "base64url"},
		{"RSA1_5", "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIn0.a2V5.aXY.Y2lwaGVy.AAAAAAAAAAAAAAAAAAAAAA", "alg"},
		{"A128GCM", "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMTI4R0NNIn0.a2V5.aXY.Y2lwaGVy.AAAAAAAAAAAAAAAAAAAAAA", "enc"},
		{"short tag", jweHead + ".a2V5.aXY.Y2lwaGVy.AAAA", "16 bytes"},
		{"header not JSON", "bm8.a2V5.aXY.Y2lwaGVy.AAAAAAAAAAAAAAAAAAAAAA", "header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCompactJWE(c.in)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("ParseCompactJWE: %v, want %q", err, c.err)
			}
		})
	}
}

// TestSETRoundTrip: what SignSET makes, ParseSET takes and Verify checks
// with the right key only.
func TestSETRoundTrip(t *testing.T) {
	k := testKeys(t)
	key, err := k.Destinations[0].Signature.RSAPrivate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.Destinations[1].Signature.RSAPrivate()
	if err != nil {
		t.Fatal(err)
	}
	sub, cs := NewUUID(), NewUUID()
	s, err := SignSET(key, "kid-1", map[string]any{"$schema": SETPayloadSchema, "jti": NewUUID(), "iss": "x", "iat": 1, "sub": "submission:" + sub,
		"txn": "case:" + cs, "events": map[string]any{EventAcceptSubmission: map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseSET(s)
	if err != nil {
		t.Fatal(err)
	}
	if set.Kid != "kid-1" || set.Event != EventAcceptSubmission || set.SubjectKind != "submission" || set.SubjectID != sub || set.CaseID != cs {
		t.Fatalf("parsed %+v", set)
	}
	if err := set.Verify(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := set.Verify(&other.PublicKey); err == nil {
		t.Fatal("verified with another key")
	}
}

func TestCallbackMAC(t *testing.T) {
	// The same construction computed by hand: HMAC-SHA512 over "ts.body".
	got := CallbackMAC("secret", 1672527599, []byte(`{"a":1}`))
	if len(got) != 128 || got != CallbackMAC("secret", 1672527599, []byte(`{"a":1}`)) || got == CallbackMAC("secret", 1672527600, []byte(`{"a":1}`)) {
		t.Fatalf("mac %s", got)
	}
}

func FuzzParseSET(f *testing.F) {
	f.Add("eyJhbGciOiJQUzUxMiIsInR5cCI6InNlY2V2ZW50K2p3dCIsImtpZCI6ImsifQ.e30.AAAA")
	f.Add("e30.e30.e30")
	f.Add("a.b")
	f.Add("eyJ0eXAiOiJzZWNldmVudCtqd3QiLCJhbGciOiJQUzUxMiIsImtpZCI6MX0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseSET(s)
		if err == nil && (set.Kid == "" || set.Event == "" || set.CaseID == "") {
			t.Fatalf("accepted an incomplete SET: %+v", set)
		}
	})
}

func FuzzParseCompactJWE(f *testing.F) {
	f.Add(jweOK)
	f.Add("....")
	f.Add(jweHead + "....")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseCompactJWE(s)
		if err == nil && (j.Alg != "RSA-OAEP-256" || j.Enc != "A256GCM" || j.Tag == "") {
			t.Fatalf("accepted %+v", j)
		}
	})
}
