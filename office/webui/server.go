// Package webui is the mailroom's desk in a browser: server-rendered pages
// (html/template) for the overview, triage, a message with its evidence and
// Prüfprotokoll, the office queues, search and the auditor's view, in
// German and English. It reads the same read models as the office API
// (gateway/offices, its own search Index) and the log itself for a
// message's timeline, enforces the same roles (offices.Principal) on every
// request, and acts only through the same domain operations, each an event
// in the log naming who did it: offices.Assign (manual routing with a
// reason), offices.Acknowledge, replies.Requester (answers) and NoteAdded.
//
// Security: local users of the offices configuration log in with their
// password (argon2id or bcrypt hashes, checked by offices.Directory) or,
// when web_ui.oidc is configured, through the authority's OpenID Connect
// provider, which authenticates users the offices configuration lists;
// sessions live in memory behind an HttpOnly SameSite=Strict cookie; every
// form carries a CSRF token; failed logins are rate-limited per user and
// per address; every answer has a strict Content-Security-Policy (scripts
// and styles only from the UI itself, no framing) and nosniff.
package webui

import (
	"context"
	"crypto"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Deps are the UI's collaborators.
type Deps struct {
	// Log is read for a message's timeline and receives the events the UI
	// appends.
	Log eventstore.Log
	// DB holds the read models: offices.Inbox and Index.
	DB    *sql.DB
	Blobs blob.Backend
	// Directory authenticates users and says who may do what.
	Directory *offices.Directory
	// Notifier wakes the live updates; the Index projection must be given
	// the same one.
	Notifier *offices.Notifier
	Logger   *slog.Logger
	Tenant   string
	// Plan is the reply-channel policy.
	Plan replies.PlanFunc
	// PublicKey verifies the log's checkpoints for the integrity status;
	// with Audited (the log as an auditor reads it) the UI re-verifies the
	// log every IntegrityInterval and exports a message's proof. Without
	// them the overview says the log was not checked.
	PublicKey crypto.PublicKey
	Audited   integrity.AuditedLog
	// Bundle writes a message's evidence bundle (gateway/evidencebundle's
	// Builder.Build); nil offers none.
	Bundle func(ctx context.Context, tenant, stream string, w io.Writer) error
	Now    func() time.Time
}

// Server is the web UI.
type Server struct {
	cfg       Config
	deps      Deps
	mux       *http.ServeMux
	ln        net.Listener
	pages     map[string]*template.Template
	sessions  *sessions
	limiter   *limiter
	integrity *integrityStatus
	registry  *gateway.Registry
	// oidc is nil unless an identity provider is configured.
	oidc *oidcLogin
}

const (
	langCookie       = "poststelle_lang"
	loginCookie      = "poststelle_login"
	answerTimeout    = time.Minute
	downloadDeadline = 30 * time.Minute
)

// New checks the configuration and parses the templates. Call Listen to
// bind, or use Handler in tests.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	cfg = cfg.withDefaults()
	if deps.Log == nil || deps.DB == nil || deps.Blobs == nil || deps.Directory == nil || deps.Plan == nil {
		return nil, errors.New("webui: Deps.Log, DB, Blobs, Directory and Plan are required")
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
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, mux: http.NewServeMux(), pages: pages,
		sessions:  newSessions(cfg.SessionIdle, cfg.SessionMax, deps.Now),
		limiter:   newLimiter(cfg.LoginFailures, cfg.LoginWindow, deps.Now),
		integrity: &integrityStatus{}, registry: gateway.NewRegistry()}
	if cfg.OIDC != nil {
		if s.oidc, err = newOIDCLogin(*cfg.OIDC); err != nil {
			return nil, fmt.Errorf("webui: %w", err)
		}
	}
	s.routes()
	return s, nil
}

func (s *Server) cookieName() string {
	if *s.cfg.CookieSecure {
		return "__Host-poststelle_session"
	}
	return "poststelle_session"
}

// route is one page or action and who may reach it.
type route struct {
	pattern string
	allow   func(p *offices.Principal) bool
	h       handlerFunc
}

type handlerFunc func(w http.ResponseWriter, r *request)

// request is what every handler gets: the session and the language.
type request struct {
	*http.Request
	ss   *session
	lang string
}

func (r *request) p() *offices.Principal { return &r.ss.p }

func anyone(*offices.Principal) bool { return true }

func overviewRoles(p *offices.Principal) bool {
	return p.Role == offices.RoleMailroom || p.Role == offices.RoleAdmin || p.Role == offices.RoleAuditor
}

func auditRoles(p *offices.Principal) bool {
	return p.Role == offices.RoleAdmin || p.Role == offices.RoleAuditor
}

func triageRoles(p *offices.Principal) bool { return p.CanViewTriage() }

func assignRoles(p *offices.Principal) bool { return p.CanAssign() }

// noteRoles may write notes: everybody but auditors, who change nothing.
func noteRoles(p *offices.Principal) bool { return p.Role != offices.RoleAuditor }

func officeMembers(p *offices.Principal) bool { return p.Role == offices.RoleOffice }

func (s *Server) routes() {
	for _, rt := range []route{
		{"GET /{$}", anyone, s.home},
		{"GET /overview", overviewRoles, s.overview},
		{"GET /triage", triageRoles, s.triage},
		{"POST /triage/{stream}/route", assignRoles, s.routeMessage},
		{"GET /search", anyone, s.search},
		{"GET /offices", anyone, s.officeList},
		{"GET /offices/{office}", anyone, s.officeView},
		{"GET /messages/{stream}", anyone, s.message},
		{"GET /messages/{stream}/raw", anyone, s.downloadRaw},
		{"GET /messages/{stream}/parts/{part}", anyone, s.downloadPart},
		{"GET /messages/{stream}/report", anyone, s.downloadReport},
		{"GET /messages/{stream}/evidence/{event}", anyone, s.downloadEvidence},
		{"GET /messages/{stream}/proof", auditRoles, s.downloadProof},
		{"GET /messages/{stream}/bundle", anyone, s.downloadBundle},
		{"POST /messages/{stream}/ack", officeMembers, s.acknowledge},
		{"POST /messages/{stream}/answer", officeMembers, s.answer},
		{"POST /messages/{stream}/eeb", officeMembers, s.answerEEB},
		{"POST /messages/{stream}/notes", noteRoles, s.addNote},
		{"GET /audit", auditRoles, s.audit},
		{"GET /events", anyone, s.events},
		{"POST /logout", anyone, s.logout},
	} {
		s.mux.HandleFunc(rt.pattern, s.guard(rt))
	}
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	if s.oidc != nil {
		s.mux.HandleFunc("GET /login/oidc", s.oidcStart)
		s.mux.HandleFunc("GET /login/oidc/callback", s.oidcCallback)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	static, _ := fs.Sub(staticFiles, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
}

// guard admits a request with a live session and a role the route allows;
// a POST must also carry the session's CSRF token and come from this
// origin.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, hr *http.Request) {
		r := &request{Request: hr, lang: lang(hr)}
		c, err := hr.Cookie(s.cookieName())
		var ok bool
		if err == nil {
			r.ss, ok = s.sessions.get(c.Value)
		}
		if !ok {
			if hr.Method == http.MethodGet && !strings.HasPrefix(hr.URL.Path, "/events") {
				http.Redirect(w, hr, "/login?next="+url.QueryEscape(hr.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusUnauthorized, "error.forbidden")
			return
		}
		if hr.Method == http.MethodPost && !s.checkPost(w, r) {
			return
		}
		if stream := hr.PathValue("stream"); stream != "" && !validID(stream) {
			s.fail(w, r, http.StatusNotFound, "error.notfound")
			return
		}
		if !rt.allow(r.p()) {
			s.fail(w, r, http.StatusForbidden, "error.forbidden")
			return
		}
		rt.h(w, r)
	}
}

// checkPost holds a POST to the session's CSRF token and refuses one a
// browser says came from another site.
func (s *Server) checkPost(w http.ResponseWriter, r *request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		s.fail(w, r, http.StatusForbidden, "error.csrf")
		return false
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.FormValue("csrf")
	}
	if !sameToken(tok, r.ss.csrf) {
		s.fail(w, r, http.StatusForbidden, "error.csrf")
		return false
	}
	return true
}

func validID(s string) bool {
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

// Handler returns the UI's handler with security headers and panic
// recovery.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.deps.Logger.Error("web UI handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if s.cfg.TLSCertFile != "" {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if switchLanguage(w, r) {
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Listen binds the configured address, so that a busy port is reported
// at start-up.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webui: listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends and keeps the integrity status fresh.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	go s.checkIntegrity(ctx)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog:    slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx }}
	s.deps.Logger.Info("web UI listening", "addr", s.ln.Addr().String(), "tls", s.cfg.TLSCertFile != "")
	if err := httpserve.Run(ctx, srv, s.ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile, 10*time.Second); err != nil && ctx.Err() == nil {
		return fmt.Errorf("webui: %w", err)
	}
	return ctx.Err()
}
