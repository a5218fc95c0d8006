// Package officeapi is the offices' HTTP API: each office lists, fetches and
// downloads its routed messages with their parts and verification report,
// acknowledges them, waits for new ones (long poll or Server-Sent Events),
// and answers them; case systems get a signed webhook push; the mailroom
// works the triage queue. The API reads the inbox read model
// (gateway/offices) and writes only by appending events to the log. It is
// documented in docs/openapi/office-api.yaml.
//
// Every request authenticates (Bearer token or HTTP Basic), and every
// endpoint checks the principal's role and office before it touches data:
// an office sees only its own messages.
package officeapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

// Config configures the API server. The YAML names are those of the
// poststelle configuration file (section office_api).
type Config struct {
	// Listen is the TCP address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile (PEM) serve HTTPS; without them the API
	// serves plain HTTP, which is only sensible on loopback.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// MaxReplyBytes caps a reply request's body (default 2 MiB).
	MaxReplyBytes int64 `yaml:"max_reply_bytes"`
	// MaxWait caps a long poll and an event stream's life (default 60 s
	// and 1 h); clients reconnect with their cursor.
	MaxWait   time.Duration `yaml:"max_wait"`
	MaxStream time.Duration `yaml:"max_stream"`
	// Webhook tunes the push to case systems.
	Webhook WebhookConfig `yaml:"webhook"`
	// EEBDueAfter is the site's period after receipt in which a court's
	// eEB request is due as an office task (default 72 h,
	// offices.DefaultEEBDueAfter): XJustiz carries no deadline. It sets
	// the inbox read model's offices.Inbox.EEBDueAfter, which every office
	// surface (API, IMAP, web UI) shows.
	EEBDueAfter time.Duration `yaml:"eeb_due_after"`
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = 2 << 20
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.MaxStream <= 0 {
		c.MaxStream = time.Hour
	}
	c.Webhook = c.Webhook.WithDefaults(webhookDefaults)
	return c
}

// Deps are the API's collaborators.
type Deps struct {
	// Log receives the events the API appends (acknowledgements, replies,
	// manual routing) and is read for a message's history.
	Log eventstore.Log
	// DB holds the inbox read model (offices.Inbox).
	DB *sql.DB
	// Blobs holds message bytes, parts, reports and reply bodies.
	Blobs blob.Backend
	// Directory authenticates users.
	Directory *offices.Directory
	// Notifier wakes long polls and event streams; the same one must be
	// given to the offices.Inbox projection. Without it they poll.
	Notifier *offices.Notifier
	Logger   *slog.Logger
	// Tenant is the authority served (default gateway.DefaultTenant).
	Tenant string
	// Plan is the reply-channel policy (the channel registry's
	// replies.Policy).
	Plan replies.PlanFunc
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Bundle writes a message's evidence bundle (gateway/evidencebundle)
	// for GET .../bundle; nil answers 503.
	Bundle BundleFunc
	// Retention serves the admin endpoints on a message's retention, legal
	// hold and erasure (*retention.Service); nil answers 503.
	Retention Retention
	// Ready decides GET /readyz: nil is ready (metrics.Readiness.Check in
	// serve). Without it /readyz answers like /healthz.
	Ready func(context.Context) error
}

// Server is the API.
type Server struct {
	cfg  Config
	deps Deps
	mux  *http.ServeMux
	ln   net.Listener
}

// New checks the configuration. Call Listen to bind, or use Handler in
// tests.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if deps.Log == nil || deps.DB == nil || deps.Blobs == nil || deps.Directory == nil || deps.Plan == nil {
		return nil, errors.New("officeapi: Deps.Log, DB, Blobs, Directory and Plan are required")
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("officeapi: tls_cert_file and tls_key_file go together")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Tenant == "" {
		deps.Tenant = gateway.DefaultTenant
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// endpoint is one authenticated route of the API. TestOpenAPIRoutes holds
// the list and docs/openapi/office-api.yaml to each other.
type endpoint struct {
	pattern string // as http.ServeMux takes it: "METHOD /path/{wildcard}"
	h       handlerFunc
}

func (s *Server) endpoints() []endpoint {
	return []endpoint{
		{"GET /whoami", s.whoami},
		{"GET /offices", s.listOffices},
		{"GET /offices/{office}/messages", s.officeRead(s.listMessages)},
		{"GET /offices/{office}/messages/{stream}", s.officeRead(s.getMessage)},
		{"GET /offices/{office}/messages/{stream}/raw", s.officeRead(s.downloadRaw)},
		{"GET /offices/{office}/messages/{stream}/parts/{part}", s.officeRead(s.downloadPart)},
		{"GET /offices/{office}/messages/{stream}/report", s.officeRead(s.downloadReport)},
		{"GET /offices/{office}/messages/{stream}/bundle", s.officeRead(s.downloadBundle)},
		{"GET /offices/{office}/messages/{stream}/evidence", s.officeRead(s.evidenceHTML)},
		{"GET /offices/{office}/messages/{stream}/evidence/{event}", s.officeRead(s.downloadEvidence)},
		{"POST /offices/{office}/messages/{stream}/ack", s.officeAct(s.acknowledge)},
		{"POST /offices/{office}/messages/{stream}/replies", s.officeAct(s.reply)},
		{"POST /offices/{office}/messages/{stream}/eeb", s.officeAct(s.answerEEB)},
		{"GET /offices/{office}/events", s.officeRead(s.events)},
		{"GET /triage", s.triageView(s.listTriage)},
		{"GET /triage/{stream}", s.triageView(s.getTriage)},
		{"POST /triage/{stream}/assign", s.triageAssign(s.assign)},
		{"POST /triage/{stream}/replies/{reply}/resolve", s.triageAssign(s.resolveReply)},
		{"GET /admin/messages/{stream}/retention", s.retentionRead(s.retentionStatus)},
		{"POST /admin/messages/{stream}/hold", s.retentionAct(s.hold)},
		{"POST /admin/messages/{stream}/hold/release", s.retentionAct(s.releaseHold)},
		{"POST /admin/messages/{stream}/erase", s.retentionAct(s.eraseNow)},
	}
}

// openEndpoints are the routes that need no login.
func (s *Server) openEndpoints() []openEndpoint {
	return []openEndpoint{{"GET /healthz", s.healthz}, {"GET /readyz", s.readyz}}
}

// openEndpoint is an unauthenticated route of the API.
type openEndpoint struct {
	pattern string
	h       http.HandlerFunc
}

// healthz answers 200 once the API serves: a process supervisor or an
// integration test polls it to learn that the gateway is up. It says
// nothing about messages, so it needs no login.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the node should get traffic (its read models
// caught up, its stores reachable) and 503 otherwise. The reason goes to the
// log, not to the unauthenticated caller; the ops listener's /readyz shows it.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(r.Context()); err != nil {
			s.deps.Logger.Debug("officeapi: not ready", "reason", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) routes() {
	for _, e := range s.endpoints() {
		s.handle(e.pattern, e.h)
	}
	for _, e := range s.openEndpoints() {
		s.mux.HandleFunc(e.pattern, e.h)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
}

// Handler returns the API's HTTP handler with authentication, panic
// recovery and security headers.
func (s *Server) Handler() http.Handler { return s.recoverer(s.mux) }

// Listen prepares the read model's tables (the projection may not have
// started yet) and binds the configured address, so that a busy port is
// reported at start-up.
func (s *Server) Listen() error {
	if err := s.setupTables(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("officeapi: listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog:    slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx }}
	s.deps.Logger.Info("office API listening", "addr", s.ln.Addr().String(), "tls", s.cfg.TLSCertFile != "")
	if err := httpserve.Run(ctx, srv, s.ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile, 10*time.Second); err != nil && ctx.Err() == nil {
		return fmt.Errorf("officeapi: %w", err)
	}
	return ctx.Err()
}

// recoverer turns a panic into a 500 and sets headers every answer needs.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.deps.Logger.Error("office API handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// request is what every handler gets: the authenticated principal and the
// path values checked.
type request struct {
	*http.Request
	p      offices.Principal
	office string
	stream string
}

type handlerFunc func(w http.ResponseWriter, r *request)

// handle registers an authenticated endpoint. Non-streaming answers get a
// write deadline; streaming ones set their own.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, hr *http.Request) {
		p, ok := s.authenticate(w, hr)
		if !ok {
			return
		}
		r := &request{Request: hr, p: p, office: hr.PathValue("office"), stream: hr.PathValue("stream")}
		if r.stream != "" && !validStream(r.stream) {
			writeError(w, http.StatusNotFound, "no such message")
			return
		}
		h(w, r)
	})
}

func validStream(s string) bool {
	if len(s) == 0 || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// authenticate checks the Authorization header: "Bearer <token>" or HTTP
// Basic. Anything else, or nothing, is 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (offices.Principal, bool) {
	var p offices.Principal
	err := offices.ErrUnauthenticated
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		p, err = s.deps.Directory.AuthenticateToken(r.Context(), strings.TrimSpace(tok))
	} else if user, pw, ok := r.BasicAuth(); ok {
		p, err = s.deps.Directory.Authenticate(r.Context(), user, pw)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="poststelle", Basic realm="poststelle", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "authentication required")
		return p, false
	}
	return p, true
}

// officeRead admits principals who may read the office's messages.
func (s *Server) officeRead(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanRead(r.office) {
			writeError(w, http.StatusForbidden, "not allowed to read this office's messages")
			return
		}
		if _, ok := s.deps.Directory.Office(r.office); !ok {
			writeError(w, http.StatusNotFound, "no such office")
			return
		}
		h(w, r)
	}
}

// officeAct admits the office's members only.
func (s *Server) officeAct(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanAct(r.office) {
			writeError(w, http.StatusForbidden, "only the office's members may do this")
			return
		}
		h(w, r)
	}
}

func (s *Server) triageView(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanViewTriage() {
			writeError(w, http.StatusForbidden, "not allowed to see the triage queue")
			return
		}
		h(w, r)
	}
}

func (s *Server) triageAssign(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanAssign() {
			writeError(w, http.StatusForbidden, "not allowed to assign messages")
			return
		}
		h(w, r)
	}
}

type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// internal logs an unexpected error and answers 500 without details.
func (s *Server) internal(w http.ResponseWriter, r *request, what string, err error) {
	s.deps.Logger.Error("office API: "+what, "user", r.p.User, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func (s *Server) setupTables() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := s.deps.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("officeapi: prepare inbox tables: %w", err)
	}
	defer tx.Rollback()
	if err := (offices.Inbox{}).Setup(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}
