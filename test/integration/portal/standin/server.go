// Package standin is a stand-in for FITKO's FIT-Connect Submission API v1 and
// its OAuth2 token endpoint, for tests on 127.0.0.1: what a sender (the
// Python SDK fitconnect 0.4.2, an Onlinedienst) and a destination's
// subscriber (Poststelle's portal channel, a Fachverfahren) talk to.
//
// It follows FITKO's published material (docs.fitko.de/fit-connect, the
// Submission API OpenAPI at schema.fitko.de/fit-connect/submission-api, the
// SDK's own requests) in paths, JSON field names, status codes, the
// application/jose bodies, RFC 7807 problems with FITKO's problem type URIs
// and the Security Event Tokens (RFC 8417) of a case's event log, which the
// stand-in writes itself (create-submission, submit-submission, signed PS512
// with its own key, published at /.well-known/jwks.json) and accepts from the
// destination (accept-submission, reject-submission, verified with the
// destination's registered signature key). Where the public material names
// no exact form (the reply mechanism, some problem type names), the closest
// documented form is used and the doc comment says so.
//
// It is written independently of the product's FIT-Connect code so that, as
// a test oracle, it does not share that code's mistakes. All state is in
// memory. Fault hooks (Vanish, Tamper, ExpireTokens) let tests provoke what a
// real platform does rarely.
package standin

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Role is what a registered API client is.
type Role string

// The two kinds of API client FIT-Connect knows.
const (
	// Sender is an Onlinedienst: creates and sends submissions, reads the
	// event log of its cases and the replies to them.
	Sender Role = "sender"
	// Subscriber is a destination's receiving system: lists and fetches the
	// destination's submissions, posts accept/reject events, sends replies.
	Subscriber Role = "subscriber"
)

// Client is a registered API client (client credentials, RFC 6749 §4.4).
type Client struct {
	ID     string
	Secret string
	Role   Role
	// Destinations are the destinations a subscriber serves.
	Destinations []string
	// SigningKey verifies the SETs a sender posts about replies
	// (accept-reply, reject-reply). FIT-Connect's public material does not
	// say how a sender's key is registered; the stand-in keeps one per sender.
	SigningKey *JWK
}

// Service is one service (Leistung) a destination accepts.
type Service struct {
	Identifier        string             `json:"identifier"`
	SubmissionSchemas []SubmissionSchema `json:"submissionSchemas"`
	Regions           []string           `json:"regions"`
}

// SubmissionSchema names a data schema a destination accepts for a service.
type SubmissionSchema struct {
	SchemaURI string `json:"schemaUri"`
	MimeType  string `json:"mimeType"`
}

// Callback is a destination's (or a submission's) callback URL and secret.
type Callback struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// Destination is a Zustellpunkt.
type Destination struct {
	ID     string
	Owner  string // the subscriber client's id
	Status string // active, inactive, created
	// EncryptionKid names the key in Keys senders encrypt to.
	EncryptionKid string
	// Keys are the destination's public keys by kid: the encryption key
	// (RSA-OAEP-256, key_ops wrapKey) and the signature verification keys
	// (PS512, key_ops verify) of its SETs.
	Keys             map[string]JWK
	Services         []Service
	MetadataVersions []string
	ReplyChannels    map[string]any
	Callback         *Callback
}

// Options configure a Server.
type Options struct {
	// TokenTTL is how long an access token lives (default 30 minutes, what
	// FITKO's token endpoint answers in expires_in: 1800).
	TokenTTL time.Duration
	// MaxBody caps a request body the stand-in reads (default 64 MiB).
	MaxBody int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets a line per request and per callback (default: discard).
	Logger *slog.Logger
	// HTTPClient posts the callbacks (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// CallbackAttempts is how often a callback is tried (default 10), with a
	// growing pause between the tries.
	CallbackAttempts int
}

// Server is the stand-in. Create it with New, register clients and
// destinations, serve it with its Handler.
type Server struct {
	opt      Options
	platform *rsa.PrivateKey
	// platformKid names the platform's signing key in its JWKS.
	platformKid string
	platformJWK JWK

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	clients      map[string]*Client
	tokens       map[string]token
	destinations map[string]*Destination
	submissions  map[string]*submission
	order        []string // submission ids in creation order
	replies      map[string]*reply
	replyOrder   []string
	cases        map[string]*caseLog
	jtis         map[string]bool
	callbacks    []CallbackRecord
}

type token struct {
	client  string
	expires time.Time
}

// New returns a stand-in whose platform signing key is platform (a 4096-bit
// RSA key with kid platformKid). Close stops its pending callbacks.
func New(platform *rsa.PrivateKey, platformKid string, opt Options) *Server {
	if opt.TokenTTL <= 0 {
		opt.TokenTTL = 30 * time.Minute
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 64 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opt.CallbackAttempts <= 0 {
		opt.CallbackAttempts = 10
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opt: opt, platform: platform, platformKid: platformKid,
		platformJWK: PublicJWK(&platform.PublicKey, platformKid, "PS512", "verify"),
		ctx:         ctx, cancel: cancel,
		clients: map[string]*Client{}, tokens: map[string]token{}, destinations: map[string]*Destination{},
		submissions: map[string]*submission{}, replies: map[string]*reply{}, cases: map[string]*caseLog{},
		jtis: map[string]bool{},
	}
}

// Close cancels the callbacks still being tried and waits for them.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// AddClient registers an API client.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := c
	s.clients[c.ID] = &cc
}

// AddDestination registers a destination; its owner must be a subscriber
// added with AddClient.
func (s *Server) AddDestination(d Destination) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dd := d
	if dd.Status == "" {
		dd.Status = "active"
	}
	s.destinations[d.ID] = &dd
}

// PlatformJWK is the public key the platform signs its SETs with.
func (s *Server) PlatformJWK() JWK { return s.platformJWK }

// Handler serves the token endpoint at /token, the Submission API under
// /v1/ and the platform's JWKS at /.well-known/jwks.json.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)

	mux.HandleFunc("GET /v1/destinations/{destinationId}", s.authed(s.getDestination))
	mux.HandleFunc("PATCH /v1/destinations/{destinationId}", s.authed(s.patchDestination))
	mux.HandleFunc("GET /v1/destinations/{destinationId}/keys/{keyId}", s.authed(s.getDestinationKey))

	mux.HandleFunc("POST /v1/submissions", s.authed(s.createSubmission))
	mux.HandleFunc("GET /v1/submissions", s.authed(s.listSubmissions))
	mux.HandleFunc("GET /v1/submissions/{submissionId}", s.authed(s.getSubmission))
	mux.HandleFunc("PUT /v1/submissions/{submissionId}", s.authed(s.submitSubmission))
	mux.HandleFunc("PUT /v1/submissions/{submissionId}/attachments/{attachmentId}", s.authed(s.putAttachment))
	mux.HandleFunc("GET /v1/submissions/{submissionId}/attachments/{attachmentId}", s.authed(s.getAttachment))

	mux.HandleFunc("POST /v1/cases/{caseId}/events", s.authed(s.postEvent))
	mux.HandleFunc("GET /v1/cases/{caseId}/events", s.authed(s.getEvents))

	mux.HandleFunc("POST /v1/replies", s.authed(s.createReply))
	mux.HandleFunc("GET /v1/replies", s.authed(s.listReplies))
	mux.HandleFunc("GET /v1/replies/{replyId}", s.authed(s.getReply))
	mux.HandleFunc("PUT /v1/replies/{replyId}", s.authed(s.submitReply))
	mux.HandleFunc("PUT /v1/replies/{replyId}/attachments/{attachmentId}", s.authed(s.putReplyAttachment))
	mux.HandleFunc("GET /v1/replies/{replyId}/attachments/{attachmentId}", s.authed(s.getReplyAttachment))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not-found", "Not Found", "no such resource: "+r.Method+" "+r.URL.Path, "")
	})
	return s.logged(mux)
}

// logged logs every request with its status and, for a refused one, the
// start of the problem it got: what a test shows when a client was refused.
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if rec.status >= 400 {
			s.opt.Logger.Warn("request refused", "method", r.Method, "path", r.URL.Path, "status", rec.status, "problem", string(rec.head))
			return
		}
		s.opt.Logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	head   []byte // the first bytes of the body of a refusal
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status >= 400 && len(r.head) < 512 {
		r.head = append(r.head, b[:min(len(b), 512-len(r.head))]...)
	}
	return r.ResponseWriter.Write(b)
}

// handleToken is the OAuth2 token endpoint: client credentials grant (RFC
// 6749 §4.4) with the credentials in the form body (client_secret_post, what
// the SDK and FITKO's token endpoint use) or in HTTP Basic (§2.3.1).
// Errors are RFC 6749 §5.2 JSON, not problems: it is an OAuth endpoint.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && id == "" {
		id, secret = u, p
	}
	s.mu.Lock()
	c := s.clients[id]
	if c == nil || !constantEqual(c.Secret, secret) {
		s.mu.Unlock()
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	tok := randomHex(32)
	s.tokens[tok] = token{client: c.ID, expires: s.opt.Now().Add(s.opt.TokenTTL)}
	scope := scopeOf(c)
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer",
		"expires_in": int(s.opt.TokenTTL / time.Second), "scope": scope,
	})
}

// scopeOf names the client's scopes as FITKO does: send:region:DE for a
// sender, subscribe:destination:<id> for each destination of a subscriber.
func scopeOf(c *Client) string {
	if c.Role == Sender {
		return "send:region:DE"
	}
	var sc []string
	for _, d := range c.Destinations {
		sc = append(sc, "subscribe:destination:"+d)
	}
	return strings.Join(sc, " ")
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c *Client)

// authed checks the bearer token (RFC 6750 §2.1): a missing, unknown or
// expired one gets 401 with WWW-Authenticate (§3) and a problem.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fit-connect"`)
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "Unauthorized", "no bearer token", "")
			return
		}
		s.mu.Lock()
		t, known := s.tokens[tok]
		var c *Client
		if known {
			c = s.clients[t.client]
		}
		expired := known && !s.opt.Now().Before(t.expires)
		s.mu.Unlock()
		if !known || c == nil || expired {
			detail := "unknown access token"
			if expired {
				detail = "the access token has expired"
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="fit-connect", error="invalid_token", error_description=%q`, detail))
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "Unauthorized", detail, "")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxBody)
		h(w, r, c)
	}
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []JWK{s.platformJWK}})
}

// ProblemPrefix is the prefix of the Submission API's problem types
// (docs.fitko.de, "Fehlerverhalten und Statuscodes"; the SDK's
// PROBLEM_PREFIX).
const ProblemPrefix = "https://schema.fitko.de/fit-connect/submission-api/problems/"

// Problem is an RFC 7807 problem detail as the Submission API answers it:
// type, title and status always, detail and instance where they help.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, name, title, detail, instance string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{Type: ProblemPrefix + name, Title: title, Status: status, Detail: detail, Instance: instance})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// isUUID reports whether s is a UUID in its canonical lower- or upper-case
// hex form, as the API's path and body parameters are (format: uuid).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func constantEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}
