package portal

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/gateway"
)

// apiServer serves the fake platform over HTTP as the Submission API v1
// does, with a token endpoint whose first token the API refuses once.
type apiServer struct {
	fake *fakePlatform

	mu      sync.Mutex
	tokens  int
	refused bool
	posted  []string // content types of posted events
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.URL.Path == "/token" {
		if r.FormValue("grant_type") != "client_credentials" || r.FormValue("client_id") != "client" || r.FormValue("client_secret") != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		a.mu.Lock()
		a.tokens++
		n := a.tokens
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok" + string(rune('0'+n)), "token_type": "bearer", "expires_in": 300})
		return
	}
	a.mu.Lock()
	refuse := !a.refused && r.Header.Get("Authorization") == "Bearer tok1"
	if refuse {
		a.refused = true
	}
	a.mu.Unlock()
	if refuse || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"type":"https://schema.fitko.de/fit-connect/submission-api/problems/token-expired","detail":"expired"}`)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	notFound := func(err error) bool {
		if err == errNotFound {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"type":"https://schema.fitko.de/fit-connect/submission-api/problems/submission-not-found"}`)
			return true
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		return false
	}
	switch {
	case r.Method == "GET" && path == "/submissions":
		p, err := a.fake.ListSubmissions(ctx, r.URL.Query().Get("destinationId"), atoi(r.URL.Query().Get("offset")), atoi(r.URL.Query().Get("limit")))
		if !notFound(err) {
			_ = json.NewEncoder(w).Encode(p)
		}
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "submissions":
		_ = notFound(a.fake.GetSubmission(ctx, parts[1], w))
	case r.Method == "GET" && len(parts) == 4 && parts[2] == "attachments":
		w.Header().Set("Content-Type", "application/jose")
		_ = notFound(a.fake.GetAttachment(ctx, parts[1], parts[3], w))
	case r.Method == "POST" && len(parts) == 3 && parts[0] == "cases" && parts[2] == "events":
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.posted = append(a.posted, r.Header.Get("Content-Type"))
		a.mu.Unlock()
		if !notFound(a.fake.PostEvent(ctx, parts[1], string(b))) {
			w.WriteHeader(http.StatusCreated)
		}
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "cases":
		l, err := a.fake.EventLog(ctx, parts[1])
		if !notFound(err) {
			_ = json.NewEncoder(w).Encode(map[string]any{"eventLog": l})
		}
	default:
		http.NotFound(w, r)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func writeJWK(t testing.TB, dir, name string, key *rsa.PrivateKey, alg, kid string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, Algorithm: alg, KeyID: kid, Use: "enc"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNewOverHTTP builds the collector as serve does, from key and secret
// files, against the Submission API over HTTP on 127.0.0.1: it fetches a
// token, is refused once, renews it, takes the submission and posts the SET
// as application/jose.
func TestNewOverHTTP(t *testing.T) {
	api := &apiServer{fake: newFake()}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := testKeys()
	cfg := Config{SubmissionAPI: srv.URL + "/v1", TokenURL: srv.URL + "/token", ClientID: "client", ClientSecretFile: secret,
		DestinationID: testDestination, DecryptionKeyFile: writeJWK(t, dir, "dec.jwk", k.decKey, "RSA-OAEP-256", "enc-1"),
		SigningKeyFile: writeJWK(t, dir, "sig.jwk", k.signKey, "PS512", "sig-1")}
	e := newEnv(t, nil)
	in, err := New(cfg, gateway.IntakeDeps{Intake: e.intake, Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := build(t, subSpec{attachments: [][]byte{[]byte("Anlage")}})
	api.fake.add(s)
	if err := in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages", n)
	}
	if d := api.fake.decisions(s.ref.SubmissionID); len(d) != 1 || d[0] != "accept-submission" {
		t.Fatalf("decisions %v", d)
	}
	if api.tokens != 2 || len(api.posted) != 1 || api.posted[0] != "application/jose" {
		t.Errorf("%d tokens, posted %v", api.tokens, api.posted)
	}
	// A submission gone at the platform is a 404: nothing recorded.
	if _, err := in.take(context.Background(), "00000000-0000-4000-8000-000000000000"); err != nil {
		t.Errorf("a vanished submission: %v", err)
	}
}
