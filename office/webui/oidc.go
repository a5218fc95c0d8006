package webui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig configures login through the authority's OpenID Connect
// identity provider (section web_ui.oidc). The provider authenticates; only
// users the offices configuration lists are admitted, with the role and
// offices it gives them.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read
	// from Issuer + "/.well-known/openid-configuration".
	Issuer string `yaml:"issuer"`
	// ClientID and the file holding the client secret, as registered at
	// the provider. The secret is read once at start and never logged.
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is this UI's callback as registered at the provider:
	// https://<host>/login/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes are requested besides openid (default profile and email).
	Scopes []string `yaml:"scopes"`
	// UserClaim is the ID token claim that names the user as the offices
	// configuration does. Default: preferred_username, else email.
	UserClaim string `yaml:"user_claim"`
	// Name is the provider's name on the login button (default "OpenID Connect").
	Name string `yaml:"name"`
}

const (
	oidcCookie = "poststelle_oidc"
	// oidcPendingTTL bounds how long a browser may spend at the provider.
	oidcPendingTTL = 10 * time.Minute
	oidcMaxPending = 10000
	// oidcPendingPerAddr allows a town hall behind one NAT its morning
	// logins, not a flood.
	oidcPendingPerAddr = 50
	oidcHTTPTimeout    = 15 * time.Second
	maxSecretBytes     = 4 << 10
)

// Validate names the first bad field.
func (c *OIDCConfig) Validate() error {
	for _, f := range []struct{ name, url string }{{"issuer", c.Issuer}, {"redirect_url", c.RedirectURL}} {
		u, err := url.Parse(f.url)
		if f.url == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s: %q is not an http(s) URL", f.name, f.url)
		}
	}
	if c.ClientID == "" {
		return errors.New("client_id: missing")
	}
	if c.ClientSecretFile == "" {
		return errors.New("client_secret_file: missing")
	}
	return nil
}

// oidcLogin is the configured provider: discovered on first use (so that
// an unreachable provider does not keep the UI from starting, and local
// login still works), with the pending logins of browsers sent to it.
type oidcLogin struct {
	cfg    OIDCConfig
	secret string
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	pending  map[string]pendingLogin
	perAddr  map[string]int
}

// pendingLogin is what a browser's oidc cookie stands for: the state,
// nonce and PKCE verifier of one authorization request, used once.
type pendingLogin struct {
	state, nonce, verifier, next string
	// addr is the client address that started it, for the per-address cap.
	addr    string
	expires time.Time
}

func newOIDCLogin(cfg OIDCConfig) (*oidcLogin, error) {
	secret, err := readSecret(cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "OpenID Connect"
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email"}
	}
	return &oidcLogin{cfg: cfg, secret: secret, client: &http.Client{Timeout: oidcHTTPTimeout, Transport: cappedTransport{http.DefaultTransport}},
		pending: map[string]pendingLogin{}, perAddr: map[string]int{}}, nil
}

func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("oidc.client_secret_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("oidc.client_secret_file: %w", err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("oidc.client_secret_file: longer than %d bytes", maxSecretBytes)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", errors.New("oidc.client_secret_file: empty")
	}
	return secret, nil
}

// cappedTransport bounds every answer from the provider: go-oidc reads
// discovery documents and key sets whole.
type cappedTransport struct{ next http.RoundTripper }

const maxProviderAnswer = 1 << 20

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = cappedBody{Reader: io.LimitReader(resp.Body, maxProviderAnswer), Closer: resp.Body}
	return resp, nil
}

type cappedBody struct {
	io.Reader
	io.Closer
}

func (o *oidcLogin) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.client)
}

// discover returns the provider, reading its discovery document once it
// succeeds.
func (o *oidcLogin) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	p := o.provider
	o.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := oidc.NewProvider(o.clientContext(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discover %s: %w", o.cfg.Issuer, err)
	}
	o.mu.Lock()
	o.provider = p
	o.mu.Unlock()
	return p, nil
}

func (o *oidcLogin) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.secret, Endpoint: p.Endpoint(),
		RedirectURL: o.cfg.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)}
}

// remember stores a pending login under a fresh id for the cookie. It
// refuses when the address has oidcPendingPerAddr logins under way or the
// store is full, so that one client cannot crowd out everybody else's.
func (o *oidcLogin) remember(pl pendingLogin, now time.Time) (string, bool) {
	id := randomToken()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.pending) >= oidcMaxPending || o.perAddr[pl.addr] >= oidcPendingPerAddr {
		for k, v := range o.pending {
			if now.After(v.expires) {
				o.dropLocked(k, v)
			}
		}
	}
	if len(o.pending) >= oidcMaxPending || o.perAddr[pl.addr] >= oidcPendingPerAddr {
		return "", false
	}
	o.pending[id] = pl
	o.perAddr[pl.addr]++
	return id, true
}

func (o *oidcLogin) dropLocked(id string, pl pendingLogin) {
	delete(o.pending, id)
	if o.perAddr[pl.addr]--; o.perAddr[pl.addr] <= 0 {
		delete(o.perAddr, pl.addr)
	}
}

// take removes and returns a live pending login: each is good once.
func (o *oidcLogin) take(id string, now time.Time) (pendingLogin, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	pl, ok := o.pending[id]
	if !ok {
		return pendingLogin{}, false
	}
	o.dropLocked(id, pl)
	if now.After(pl.expires) {
		return pendingLogin{}, false
	}
	return pl, true
}

// oidcStart sends the browser to the provider with a fresh state, nonce
// and PKCE challenge, bound to this browser by a short-lived cookie.
func (s *Server) oidcStart(w http.ResponseWriter, hr *http.Request) {
	p, err := s.oidc.discover(hr.Context())
	if err != nil {
		s.deps.Logger.Error("web UI: OIDC login", "err", err)
		s.renderLogin(w, hr, http.StatusBadGateway, "login.oidc_unavailable")
		return
	}
	pl := pendingLogin{state: randomToken(), nonce: randomToken(), verifier: oauth2.GenerateVerifier(),
		next: safeNext(hr.FormValue("next")), addr: clientAddr(hr), expires: s.deps.Now().Add(oidcPendingTTL)}
	id, ok := s.oidc.remember(pl, s.deps.Now())
	if !ok {
		s.deps.Logger.Warn("web UI: OIDC login refused, too many under way", "addr", pl.addr)
		s.renderLogin(w, hr, http.StatusTooManyRequests, "login.locked")
		return
	}
	// Lax, not Strict: the provider's redirect back is a cross-site
	// top-level navigation, which must carry the cookie.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: id, Path: "/login/oidc", MaxAge: int(oidcPendingTTL / time.Second),
		HttpOnly: true, Secure: *s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode})
	u := s.oidc.oauth2(p).AuthCodeURL(pl.state, oidc.Nonce(pl.nonce), oauth2.S256ChallengeOption(pl.verifier))
	http.Redirect(w, hr, u, http.StatusSeeOther)
}

// oidcCallback takes the provider's answer: the state must be the one this
// browser's cookie stands for, the code is exchanged with the PKCE
// verifier, and the ID token must be the provider's, for this client,
// current and carry this login's nonce. Then the user must be one the
// offices configuration lists.
func (s *Server) oidcCallback(w http.ResponseWriter, hr *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/login/oidc", MaxAge: -1})
	addr := clientAddr(hr)
	if s.limiter.locked("addr:" + addr) {
		s.renderLogin(w, hr, http.StatusTooManyRequests, "login.locked")
		return
	}
	user, next, err := s.oidcUser(hr)
	if err != nil {
		s.limiter.fail("addr:" + addr)
		s.deps.Logger.Info("web UI: OIDC login refused", "addr", addr, "err", err)
		s.renderLogin(w, hr, http.StatusUnauthorized, "login.oidc_failed")
		return
	}
	p, err := s.deps.Directory.Lookup(hr.Context(), user)
	if err != nil {
		s.limiter.fail("addr:" + addr)
		s.deps.Logger.Info("web UI: OIDC login refused, user not configured", "user", user, "addr", addr)
		s.renderLogin(w, hr, http.StatusForbidden, "login.oidc_unknown")
		return
	}
	ss := s.sessions.start(p)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: ss.id, Path: "/", HttpOnly: true,
		Secure: *s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode})
	s.deps.Logger.Info("web UI: logged in", "user", p.User, "role", p.Role, "addr", addr, "via", "oidc")
	// A browser does not send the Strict session cookie on a redirect at
	// the end of a navigation another site started, so the next page is
	// reached by a hop this site starts itself.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := hopPage.Execute(w, next); err != nil {
		s.deps.Logger.Error("web UI: render", "page", "oidc hop", "err", err)
	}
}

var hopPage = template.Must(template.New("hop").Parse(`<!DOCTYPE html><html><head><meta charset="utf-8">` +
	`<meta http-equiv="refresh" content="0;url={{.}}"><title>Poststelle</title></head>` +
	`<body><p><a href="{{.}}" id="continue">Poststelle</a></p></body></html>`))

// oidcUser checks the callback and returns the user the ID token names.
func (s *Server) oidcUser(hr *http.Request) (user, next string, err error) {
	q := hr.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", "", fmt.Errorf("provider says %.100q", e)
	}
	c, cerr := hr.Cookie(oidcCookie)
	if cerr != nil {
		return "", "", errors.New("no login cookie")
	}
	pl, ok := s.oidc.take(c.Value, s.deps.Now())
	if !ok {
		return "", "", errors.New("login expired or already used")
	}
	if !sameToken(q.Get("state"), pl.state) {
		return "", "", errors.New("state mismatch")
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return "", "", errors.New("no code")
	}
	ctx := s.oidc.clientContext(hr.Context())
	p, err := s.oidc.discover(ctx)
	if err != nil {
		return "", "", err
	}
	tok, err := s.oidc.oauth2(p).Exchange(ctx, code, oauth2.VerifierOption(pl.verifier))
	if err != nil {
		return "", "", fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return "", "", errors.New("token response without id_token")
	}
	v := p.VerifierContext(ctx, &oidc.Config{ClientID: s.oidc.cfg.ClientID, Now: s.deps.Now})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return "", "", fmt.Errorf("verify ID token: %w", err)
	}
	if !sameToken(idt.Nonce, pl.nonce) {
		return "", "", errors.New("nonce mismatch")
	}
	user, err = s.oidc.userOf(idt)
	if err != nil {
		return "", "", err
	}
	return user, pl.next, nil
}

// userOf reads the user name from the configured claim. An email address
// the provider says is unverified names nobody.
func (o *oidcLogin) userOf(idt *oidc.IDToken) (string, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", fmt.Errorf("ID token claims: %w", err)
	}
	names := []string{o.cfg.UserClaim}
	if o.cfg.UserClaim == "" {
		names = []string{"preferred_username", "email"}
	}
	for _, n := range names {
		v, ok := claims[n].(string)
		if !ok || v == "" {
			continue
		}
		if n == "email" {
			if verified, ok := claims["email_verified"].(bool); ok && !verified {
				return "", errors.New("email not verified")
			}
		}
		return v, nil
	}
	return "", fmt.Errorf("ID token has no %s claim", strings.Join(names, " or "))
}

// oidcName is for the login page's button.
func (s *Server) oidcName() string {
	if s.oidc == nil {
		return ""
	}
	return s.oidc.cfg.Name
}
