package webui

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/poststelle/poststelle/gateway/offices"
)

// loginPage shows the login form. The form's CSRF token is bound to a
// short-lived cookie (double submit), since there is no session yet.
func (s *Server) loginPage(w http.ResponseWriter, hr *http.Request) {
	s.renderLogin(w, hr, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, hr *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/login", MaxAge: 1800, HttpOnly: true,
		Secure: *s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode})
	r := &request{Request: hr, lang: lang(hr), ss: &session{csrf: tok}}
	s.render(w, r, status, "login", map[string]any{"Error": msg, "Next": safeNext(hr.FormValue("next")),
		"OIDC": s.oidcName()})
}

// safeNext keeps a redirect after login on this site: a path, never a
// scheme or another host.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// login checks the password; a success starts a fresh session, a failure
// counts against the user name and the client address.
func (s *Server) login(w http.ResponseWriter, hr *http.Request) {
	hr.Body = http.MaxBytesReader(w, hr.Body, 16<<10)
	c, err := hr.Cookie(loginCookie)
	if err != nil || !sameToken(hr.PostFormValue("csrf"), c.Value) {
		s.renderLogin(w, hr, http.StatusForbidden, "error.csrf")
		return
	}
	user, pw := hr.PostFormValue("user"), hr.PostFormValue("password")
	keys := []string{"user:" + user, "addr:" + clientAddr(hr)}
	if s.limiter.locked(keys...) {
		s.deps.Logger.Warn("web UI: login refused, too many failures", "user", user, "addr", clientAddr(hr))
		s.renderLogin(w, hr, http.StatusTooManyRequests, "login.locked")
		return
	}
	p, err := s.deps.Directory.Authenticate(hr.Context(), user, pw)
	if errors.Is(err, offices.ErrUnauthenticated) {
		s.limiter.fail(keys...)
		s.deps.Logger.Info("web UI: login failed", "user", user, "addr", clientAddr(hr))
		s.renderLogin(w, hr, http.StatusUnauthorized, "login.failed")
		return
	}
	if err != nil {
		s.renderLogin(w, hr, http.StatusInternalServerError, "error.internal")
		return
	}
	s.limiter.succeed("user:" + user)
	ss := s.sessions.start(p)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: ss.id, Path: "/", HttpOnly: true,
		Secure: *s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1})
	s.deps.Logger.Info("web UI: logged in", "user", p.User, "role", p.Role, "addr", clientAddr(hr))
	http.Redirect(w, hr, safeNext(hr.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *request) {
	s.sessions.end(r.ss.id)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: *s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
}

// home sends each role to where its work is.
func (s *Server) home(w http.ResponseWriter, r *request) {
	p := r.p()
	target := "/overview"
	if p.Role == offices.RoleOffice {
		target = "/offices"
		if len(p.Offices) == 1 {
			target = "/offices/" + p.Offices[0]
		}
	}
	http.Redirect(w, r.Request, target, http.StatusSeeOther)
}

// switchLanguage handles ?lang=de|en on any GET: it remembers the choice
// in a cookie and shows the same page without the parameter.
func switchLanguage(w http.ResponseWriter, r *http.Request) bool {
	l := r.URL.Query().Get("lang")
	if r.Method != http.MethodGet || (l != "de" && l != "en") {
		return false
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	q.Del("lang")
	u := *r.URL
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
	return true
}

// pageData is what every template gets.
type pageData struct {
	Lang     string
	Page     string
	User     string
	Role     string
	CSRF     string
	LoggedIn bool
	Nav      navigation
	Flash    string
	Data     any
	// SwitchURL is this page in the other language.
	SwitchURL string
}

type navigation struct {
	Overview, Triage, Audit bool
}

func (s *Server) render(w http.ResponseWriter, r *request, status int, page string, data any) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	pd := pageData{Lang: r.lang, Page: page, Data: data, Flash: flashKey(r.URL.Query().Get("done"))}
	if r.ss != nil {
		pd.CSRF = r.ss.csrf
		if r.ss.id != "" {
			p := r.p()
			pd.LoggedIn, pd.User, pd.Role = true, p.User, string(p.Role)
			pd.Nav = navigation{Overview: overviewRoles(p), Triage: triageRoles(p), Audit: auditRoles(p)}
		}
	}
	other := "en"
	if r.lang == "en" {
		other = "de"
	}
	q := r.URL.Query()
	q.Set("lang", other)
	q.Del("done")
	pd.SwitchURL = r.URL.Path + "?" + q.Encode()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", pd); err != nil {
		s.deps.Logger.Error("web UI: render", "page", page, "err", err)
	}
}

// flashKey admits only the confirmation messages the catalogue has, so a
// link cannot make the page say anything else.
func flashKey(k string) string {
	switch k {
	case "triage.routed", "note.added", "message.sent", "message.acked", "eeb.recorded":
		return k
	}
	return ""
}

// fail shows an error page.
func (s *Server) fail(w http.ResponseWriter, r *request, status int, key string) {
	s.render(w, r, status, "error", map[string]any{"Message": key, "Status": status})
}

func (s *Server) internal(w http.ResponseWriter, r *request, what string, err error) {
	user := ""
	if r.ss != nil {
		user = r.ss.p.User
	}
	s.deps.Logger.Error("web UI: "+what, "user", user, "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusInternalServerError, "error.internal")
}
