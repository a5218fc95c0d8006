package webui

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	idpClientID = "poststelle-test"
	idpSecret   = "s3cret-never-logged"
)

// testIdP is an OpenID provider on 127.0.0.1: discovery, JWKS and a token
// endpoint that checks the client secret and the PKCE verifier and signs
// an RS256 ID token. The authorization step (the user at the provider's
// login page) is played by the test, which calls authorize.
type testIdP struct {
	t    *testing.T
	srv  *httptest.Server
	key  *rsa.PrivateKey
	sign *rsa.PrivateKey // the key tokens are signed with; key unless a test forges

	mu    sync.Mutex
	codes map[string]grant
}

type grant struct {
	claims    map[string]any
	challenge string
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIdP{t: t, key: key, sign: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := idp.srv.URL
		writeJSON(w, map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", idp.token)
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// authorize plays the provider's login page for an authorization URL: it
// issues a code for claims (nil values delete a claim) and returns the
// callback's query.
func (idp *testIdP) authorize(authURL string, override map[string]any) url.Values {
	idp.t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, idp.srv.URL+"/authorize?") {
		idp.t.Fatalf("not sent to the provider: %q", authURL)
	}
	q := u.Query()
	if q.Get("client_id") != idpClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || !strings.Contains(q.Get("scope"), "openid") {
		idp.t.Fatalf("authorization request lacks what it needs: %v", q)
	}
	now := time.Now()
	claims := map[string]any{"iss": idp.srv.URL, "aud": idpClientID, "sub": "0815", "iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "nonce": q.Get("nonce"), "preferred_username": "member-a"}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	code := randomToken()
	idp.mu.Lock()
	idp.codes[code] = grant{claims: claims, challenge: q.Get("code_challenge")}
	idp.mu.Unlock()
	return url.Values{"code": {code}, "state": {q.Get("state")}}
}

func (idp *testIdP) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	idp.mu.Lock()
	g, found := idp.codes[r.PostFormValue("code")]
	delete(idp.codes, r.PostFormValue("code"))
	idp.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	switch {
	case id != idpClientID || secret != idpSecret:
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	case !found || r.PostFormValue("grant_type") != "authorization_code" ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: idp.sign, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	payload, _ := json.Marshal(g.claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	raw, _ := jws.CompactSerialize()
	writeJSON(w, map[string]any{"access_token": "at-" + randomToken(), "token_type": "Bearer", "expires_in": 300, "id_token": raw})
}

func oidcTestEnv(t *testing.T, idp *testIdP, claim string) (*testEnv, *bytes.Buffer) {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(idpSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := Config{OIDC: &OIDCConfig{Issuer: idp.srv.URL, ClientID: idpClientID, ClientSecretFile: secretFile,
		RedirectURL: "http://127.0.0.1/login/oidc/callback", UserClaim: claim, Name: "Landes-IdP"}}
	return newTestEnvWith(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), &logs
}

// startOIDC follows the login page's button and returns the provider URL
// the UI sends the browser to.
func (b *browser) startOIDC(next string) string {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + "/login/oidc?next=" + url.QueryEscape(next))
	if err != nil {
		b.e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("GET /login/oidc: %d, want 303", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestOIDCLogin(t *testing.T) {
	idp := newTestIdP(t)
	e, logs := oidcTestEnv(t, idp, "")
	e.seed("201", "a")

	b := e.browser("en")
	if _, body := b.get("/login"); !strings.Contains(body, `id="login-oidc"`) || !strings.Contains(body, "Log in with Landes-IdP") ||
		!strings.Contains(body, `id="login-submit"`) {
		t.Fatalf("login page lacks the provider's button or the local login:\n%s", body)
	}
	q := idp.authorize(b.startOIDC("/offices/a"), nil)
	code, body := b.get("/login/oidc/callback?" + q.Encode())
	if code != http.StatusOK || !strings.Contains(body, `href="/offices/a"`) {
		t.Fatalf("callback: %d\n%s", code, body)
	}
	if code, body := b.get("/offices/a"); code != http.StatusOK || !strings.Contains(body, "Antrag 201") {
		t.Fatalf("member-a after OIDC login: GET /offices/a %d", code)
	}
	if code, _ := b.get("/offices/b"); code != http.StatusForbidden {
		t.Errorf("member-a after OIDC login: GET /offices/b %d, want 403 (roles come from our configuration)", code)
	}
	// The pending login is used up: the same answer again is refused.
	if code, _ := b.get("/login/oidc/callback?" + q.Encode()); code != http.StatusUnauthorized {
		t.Errorf("replayed callback: %d, want 401", code)
	}
	if strings.Contains(logs.String(), idpSecret) {
		t.Errorf("the client secret is in the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "via=oidc") {
		t.Errorf("the login is not logged:\n%s", logs.String())
	}
}

func TestOIDCEmailClaim(t *testing.T) {
	idp := newTestIdP(t)
	for _, tc := range []struct {
		name, claim string
		override    map[string]any
		want        int
	}{
		{"email fallback", "", map[string]any{"preferred_username": nil, "email": "post", "email_verified": true}, http.StatusOK},
		{"unverified email", "", map[string]any{"preferred_username": nil, "email": "post", "email_verified": false}, http.StatusUnauthorized},
		{"configured claim", "upn", map[string]any{"upn": "root"}, http.StatusOK},
		{"configured claim absent", "upn", nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := oidcTestEnv(t, idp, tc.claim)
			b := e.browser("")
			if code, _ := b.get("/login/oidc/callback?" + idp.authorize(b.startOIDC("/"), tc.override).Encode()); code != tc.want {
				t.Errorf("callback: %d, want %d", code, tc.want)
			}
		})
	}
}

func TestOIDCRefusals(t *testing.T) {
	idp := newTestIdP(t)
	forged, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		override map[string]any
		// tamper changes the callback's query; forge signs with another key.
		tamper func(q url.Values)
		forge  bool
		noJar  bool
		want   int
	}{
		{name: "wrong nonce", override: map[string]any{"nonce": "another-login"}, want: http.StatusUnauthorized},
		{name: "no nonce", override: map[string]any{"nonce": nil}, want: http.StatusUnauthorized},
		{name: "wrong audience", override: map[string]any{"aud": "another-client"}, want: http.StatusUnauthorized},
		{name: "expired", override: map[string]any{"exp": past.Unix(), "iat": past.Add(-time.Hour).Unix()}, want: http.StatusUnauthorized},
		{name: "wrong issuer", override: map[string]any{"iss": "https://idp.example"}, want: http.StatusUnauthorized},
		{name: "forged signature", forge: true, want: http.StatusUnauthorized},
		{name: "unknown user", override: map[string]any{"preferred_username": "mallory"}, want: http.StatusForbidden},
		{name: "state mismatch", tamper: func(q url.Values) { q.Set("state", randomToken()) }, want: http.StatusUnauthorized},
		{name: "no state", tamper: func(q url.Values) { q.Del("state") }, want: http.StatusUnauthorized},
		{name: "wrong code", tamper: func(q url.Values) { q.Set("code", "guessed") }, want: http.StatusUnauthorized},
		{name: "provider error", tamper: func(q url.Values) { q.Set("error", "access_denied") }, want: http.StatusUnauthorized},
		{name: "another browser", noJar: true, want: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := oidcTestEnv(t, idp, "")
			idp.sign = idp.key
			if tc.forge {
				idp.sign = forged
			}
			defer func() { idp.sign = idp.key }()
			b := e.browser("")
			q := idp.authorize(b.startOIDC("/"), maps.Clone(tc.override))
			if tc.tamper != nil {
				tc.tamper(q)
			}
			if tc.noJar {
				b = e.browser("")
			}
			if code, _ := b.get("/login/oidc/callback?" + q.Encode()); code != tc.want {
				t.Errorf("callback: %d, want %d", code, tc.want)
			}
			if code, _ := b.get("/search"); code != http.StatusSeeOther {
				t.Errorf("after a refused login GET /search: %d, want a redirect to the login", code)
			}
		})
	}
}

func TestOIDCNotConfigured(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser("")
	if _, body := b.get("/login"); strings.Contains(body, "login-oidc") {
		t.Error("login page offers an identity provider that is not configured")
	}
	if code, _ := b.get("/login/oidc"); code != http.StatusNotFound {
		t.Errorf("GET /login/oidc without a provider: %d, want 404", code)
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	good := OIDCConfig{Issuer: "https://idp.example/realms/stadt", ClientID: "poststelle", ClientSecretFile: "/etc/poststelle/oidc-secret",
		RedirectURL: "https://post.stadt.example/login/oidc/callback"}
	for _, tc := range []struct {
		name   string
		change func(c *OIDCConfig)
		want   string
	}{
		{"good", func(*OIDCConfig) {}, ""},
		{"no issuer", func(c *OIDCConfig) { c.Issuer = "" }, "oidc.issuer"},
		{"issuer not a URL", func(c *OIDCConfig) { c.Issuer = "idp.example" }, "oidc.issuer"},
		{"no client id", func(c *OIDCConfig) { c.ClientID = "" }, "oidc.client_id"},
		{"no secret file", func(c *OIDCConfig) { c.ClientSecretFile = "" }, "oidc.client_secret_file"},
		{"no redirect", func(c *OIDCConfig) { c.RedirectURL = "/login/oidc/callback" }, "oidc.redirect_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			err := Config{OIDC: &c}.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	missing := good
	missing.ClientSecretFile = filepath.Join(t.TempDir(), "absent")
	if _, err := newOIDCLogin(missing); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
		t.Errorf("missing secret file: %v", err)
	}
}

// An unreachable provider is reported on the login page and does not keep
// local users out.
func TestOIDCProviderDown(t *testing.T) {
	idp := newTestIdP(t)
	e, _ := oidcTestEnv(t, idp, "")
	idp.srv.Close()
	b := e.browser("en")
	if code, body := b.get("/login/oidc"); code != http.StatusBadGateway || !strings.Contains(body, "cannot be reached") {
		t.Errorf("GET /login/oidc with the provider down: %d", code)
	}
	if code := b.login("member-a", password); code != http.StatusSeeOther {
		t.Errorf("local login with the provider down: %d, want 303", code)
	}
}

// A provider's answer is read only up to a cap: a discovery document of
// 2 MiB is refused, not read whole.
func TestOIDCProviderAnswerCapped(t *testing.T) {
	idp := newTestIdP(t)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"pad":"%s"}`, "http://"+r.Host, strings.Repeat("x", 2<<20))
	}))
	t.Cleanup(huge.Close)
	idp.srv.URL = huge.URL // the test env is configured with this issuer
	e, _ := oidcTestEnv(t, idp, "")
	if code, _ := e.browser("").get("/login/oidc"); code != http.StatusBadGateway {
		t.Errorf("GET /login/oidc with a 2 MiB discovery document: %d, want 502", code)
	}
}

// One address cannot start logins without end: past the cap it is refused
// until its pending logins are used or expire, and using one frees a place.
func TestOIDCPendingCap(t *testing.T) {
	idp := newTestIdP(t)
	e, _ := oidcTestEnv(t, idp, "")
	b := e.browser("")
	var last string
	for i := 0; i < oidcPendingPerAddr; i++ {
		last = b.startOIDC("/")
	}
	if code, _ := b.get("/login/oidc"); code != http.StatusTooManyRequests {
		t.Fatalf("login %d from one address: %d, want 429", oidcPendingPerAddr+1, code)
	}
	// The jar holds the last start's cookie; finishing it frees a place.
	if code, _ := b.get("/login/oidc/callback?" + idp.authorize(last, nil).Encode()); code != http.StatusOK {
		t.Fatalf("callback of the last login: %d", code)
	}
	b.startOIDC("/")
	if n := len(e.ui.oidc.pending); n != oidcPendingPerAddr {
		t.Errorf("%d pending logins, want %d", n, oidcPendingPerAddr)
	}
}

func TestOIDCPendingExpires(t *testing.T) {
	o := &oidcLogin{pending: map[string]pendingLogin{}, perAddr: map[string]int{}}
	now := time.Now()
	id, ok := o.remember(pendingLogin{state: "s", addr: "127.0.0.1", expires: now.Add(oidcPendingTTL)}, now)
	if !ok {
		t.Fatal("remember refused the first login")
	}
	if _, ok := o.take(id, now.Add(oidcPendingTTL+time.Second)); ok {
		t.Error("an expired pending login was taken")
	}
	if len(o.pending) != 0 || len(o.perAddr) != 0 {
		t.Errorf("expired login left behind: %v %v", o.pending, o.perAddr)
	}
}
