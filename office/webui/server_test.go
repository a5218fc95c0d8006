package webui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

type testEnv struct {
	t       *testing.T
	log     *sqlitelog.Log
	blobs   *blob.Store
	runner  *projection.Runner
	inbox   offices.Inbox
	index   Index
	srv     *httptest.Server
	ui      *Server
	streams map[string]string
}

const password = "correct horse battery"

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, Config{}, slog.New(slog.DiscardHandler))
}

func newTestEnvWith(t *testing.T, cfg Config, logger *slog.Logger) *testEnv {
	t.Helper()
	g := gatewaytest.New(t)
	hash, err := offices.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	m := func(u string) []offices.Member { return []offices.Member{{User: u, PasswordHash: hash}} }
	dir, err := offices.NewDirectory(offices.Config{
		Offices:  []offices.Office{{ID: "a", Name: "Amt A", Members: m("member-a")}, {ID: "b", Name: "Amt B", Members: m("member-b")}},
		Mailroom: m("post"), Admins: m("root"), Auditors: m("pruefer")})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelEGVP: {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress}},
		[]gateway.Channel{gateway.ChannelSMTP, gateway.ChannelEGVP})
	if err != nil {
		t.Fatal(err)
	}
	n := offices.NewNotifier()
	e := &testEnv{t: t, log: g.Log, blobs: g.Blobs, streams: map[string]string{}, inbox: offices.Inbox{Notifier: n}, index: Index{Notifier: n},
		runner: &projection.Runner{Log: g.Log, DB: g.State, Registry: gateway.NewRegistry()}}
	for _, p := range []projection.Projection{e.inbox, e.index} {
		if err := e.runner.Setup(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(cfg, Deps{Log: g.Log, DB: g.State, Blobs: g.Blobs, Directory: dir, Notifier: n, Plan: policy.Plan,
		Logger: logger, Audited: g.Log, PublicKey: gatewaytest.Key.Public(),
		Bundle: func(_ context.Context, tenant, stream string, w io.Writer) error {
			_, err := io.WriteString(w, "bundle of "+tenant+"/"+stream)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.ui = s
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testEnv) catchUp() {
	e.t.Helper()
	for _, p := range []projection.Projection{e.inbox, e.index} {
		if err := e.runner.CatchUp(context.Background(), p); err != nil {
			e.t.Fatal(err)
		}
	}
}

// seed records a message with a part and a Prüfprotokoll, routed to office
// (to triage when office is "").
func (e *testEnv) seed(name, office string) {
	e.t.Helper()
	ctx := context.Background()
	raw, _ := e.blobs.PutBytes(ctx, []byte("Subject: "+name+"\r\n\r\nhello\r\n"))
	part, _ := e.blobs.PutBytes(ctx, []byte("%PDF-1.7 "+name))
	html, _ := e.blobs.PutBytes(ctx, []byte("<html><body>Prüfprotokoll "+name+"</body></html>"))
	rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, name), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"}, To: []gateway.Address{{Address: "post@stadt.example"}},
		Subject: "Antrag " + name + " Az. 63-2026-" + name, ReceivedAt: time.Now().UTC(), Raw: raw,
		Parts: []gateway.Part{{Path: "2", MediaType: "application/pdf", Filename: name + ".pdf", Kind: "attachment", Blob: part}}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.append(rec)
	e.streams[name] = rec.Stream
	follow := func(h string, p gateway.Payload) {
		ev, err := gateway.Follow(h, &rec, 0, p)
		if err != nil {
			e.t.Fatal(err)
		}
		e.append(ev)
	}
	follow("verify", &gateway.SignaturesVerified{ReportHTML: html, Report: html,
		Signatures: []gateway.SignatureSummary{{Part: "2", Format: "CAdES", Indication: "TOTAL_FAILED"}}})
	if office == "" {
		follow("routing", &gateway.RoutingFailed{Reason: "no rule matched"})
	} else {
		follow("routing", &gateway.MessageRouted{Offices: []string{office}, Rule: "r1", DecidedBy: "rules"})
	}
	e.catchUp()
}

func (e *testEnv) append(ev eventstore.Event) {
	e.t.Helper()
	if _, err := e.log.Append(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a client with a cookie jar, as a browser holds a session.
type browser struct {
	e    *testEnv
	c    *http.Client
	csrf string
}

func (e *testEnv) browser(lang string) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b := &browser{e: e, c: c}
	if lang != "" {
		u, _ := url.Parse(e.srv.URL)
		jar.SetCookies(u, []*http.Cookie{{Name: langCookie, Value: lang}})
	}
	return b
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string) {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string) {
	b.e.t.Helper()
	if form.Get("csrf") == "" && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	resp, err := b.c.PostForm(b.e.srv.URL+path, form)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) login(user, pw string) int {
	b.e.t.Helper()
	b.get("/login")
	code, _ := b.post("/login", url.Values{"user": {user}, "password": {pw}})
	if code == http.StatusSeeOther {
		b.get("/search") // a page with the session's CSRF token
	}
	return code
}

func TestAuthorizationMatrix(t *testing.T) {
	e := newTestEnv(t)
	e.seed("101", "a")
	e.seed("102", "b")
	e.seed("103", "")
	sa, sb, st := e.streams["101"], e.streams["102"], e.streams["103"]
	type want map[string]int // user → status
	const ok, no = http.StatusOK, http.StatusForbidden
	pages := []struct {
		path string
		want want
	}{
		{"/overview", want{"member-a": no, "post": ok, "root": ok, "pruefer": ok}},
		{"/triage", want{"member-a": no, "post": ok, "root": ok, "pruefer": ok}},
		{"/audit", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/search?q=antrag", want{"member-a": ok, "post": ok, "root": ok, "pruefer": ok}},
		{"/offices/a", want{"member-a": ok, "post": no, "root": ok, "pruefer": ok}},
		{"/offices/b", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sa, want{"member-a": ok, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sb, want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + st, want{"member-a": no, "post": ok, "root": ok, "pruefer": ok}},
		{"/messages/" + sb + "/parts/2", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sb + "/report", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sb + "/raw", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sb + "/bundle", want{"member-a": no, "post": no, "root": ok, "pruefer": ok}},
		{"/messages/" + sa + "/bundle", want{"member-a": ok, "post": no}},
		{"/messages/" + sa + "/proof", want{"member-a": no, "post": no}},
	}
	posts := []struct {
		path string
		form url.Values
		want want
	}{
		{"/messages/" + sb + "/ack", url.Values{"office": {"b"}}, want{"member-a": no, "post": no, "root": no, "pruefer": no}},
		{"/messages/" + sb + "/notes", url.Values{"text": {"x"}}, want{"member-a": no, "post": no, "pruefer": no}},
		{"/messages/" + sa + "/notes", url.Values{"text": {"x"}}, want{"pruefer": no}},
		{"/triage/" + st + "/route", url.Values{"office": {"a"}, "reason": {"r"}}, want{"member-a": no, "pruefer": no}},
		{"/messages/" + sa + "/ack", url.Values{"office": {"a"}}, want{"post": no, "root": no, "pruefer": no}},
	}
	for _, user := range []string{"member-a", "post", "root", "pruefer"} {
		b := e.browser("")
		if code := b.login(user, password); code != http.StatusSeeOther {
			t.Fatalf("%s: login answered %d", user, code)
		}
		for _, p := range pages {
			w, ok := p.want[user]
			if !ok {
				continue
			}
			if code, _ := b.get(p.path); code != w {
				t.Errorf("%s GET %s: %d, want %d", user, p.path, code, w)
			}
		}
		for _, p := range posts {
			w, ok := p.want[user]
			if !ok {
				continue
			}
			if code, _ := b.post(p.path, p.form); code != w {
				t.Errorf("%s POST %s: %d, want %d", user, p.path, code, w)
			}
		}
	}
	// Without a session every page sends to the login and every action is refused.
	anon := e.browser("")
	if code, _ := anon.get("/messages/" + sa); code != http.StatusSeeOther {
		t.Errorf("anonymous GET: %d, want a redirect to the login", code)
	}
	if code, _ := anon.post("/messages/"+sa+"/ack", url.Values{"office": {"a"}}); code != http.StatusUnauthorized {
		t.Errorf("anonymous POST: %d, want 401", code)
	}
}

func TestLoginRateLimitAndCSRF(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser("en")
	for i := range 5 {
		if code := b.login("member-a", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i, code)
		}
	}
	if code := b.login("member-a", password); code != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures the right password got %d, want 429", code)
	}
	// The address is not locked yet: another user may log in from it.
	if code := e.browser("").login("post", password); code != http.StatusSeeOther {
		t.Fatalf("another user from the same address: %d, want a login", code)
	}
	// A login form without its cookie-bound token is refused.
	fresh := e.browser("")
	if code, _ := fresh.post("/login", url.Values{"user": {"post"}, "password": {password}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("login with a forged token: %d, want 403", code)
	}
	// An action without the session's token is refused.
	e.seed("201", "")
	mail := e.browser("")
	mail.login("post", password)
	if code, _ := mail.post("/triage/"+e.streams["201"]+"/route", url.Values{"office": {"a"}, "reason": {"r"}, "csrf": {"wrong"}}); code != http.StatusForbidden {
		t.Fatalf("route without the CSRF token: %d, want 403", code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t)
	resp, err := http.Get(e.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Content-Security-Policy": "frame-ancestors 'none'"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s: %q, want it to hold %q", h, resp.Header.Get(h), want)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("CSP allows scripts from elsewhere: %q", resp.Header.Get("Content-Security-Policy"))
	}
	for _, c := range resp.Cookies() {
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie %s: HttpOnly %v SameSite %v", c.Name, c.HttpOnly, c.SameSite)
		}
	}
}

// streamEvents decodes a stream's events.
func streamEvents(t *testing.T, e *testEnv, stream string) []gateway.Payload {
	t.Helper()
	evs, err := e.log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []gateway.Payload
	reg := gateway.NewRegistry()
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestActionsAreEventsNamingWhoDidThem(t *testing.T) {
	e := newTestEnv(t)
	e.seed("301", "")
	st := e.streams["301"]
	mail := e.browser("de")
	mail.login("post", password)
	if code, body := mail.post("/triage/"+st+"/route", url.Values{"office": {"a"}, "reason": {""}}); code != http.StatusBadRequest {
		t.Fatalf("route without a reason: %d %s", code, body)
	}
	if code, _ := mail.post("/messages/"+st+"/notes", url.Values{"text": {"Rückfrage beim Bauamt"}, "key": {"k1"}}); code != http.StatusSeeOther {
		t.Fatalf("note: %d", code)
	}
	if code, _ := mail.post("/triage/"+st+"/route", url.Values{"office": {"a"}, "reason": {"Bauantrag laut Inhalt"}}); code != http.StatusSeeOther {
		t.Fatalf("route: %d", code)
	}
	e.catchUp()
	var routed *gateway.MessageRouted
	var note *gateway.NoteAdded
	for _, p := range streamEvents(t, e, st) {
		switch m := p.(type) {
		case *gateway.MessageRouted:
			routed = m
		case *gateway.NoteAdded:
			note = m
		}
	}
	if routed == nil || routed.DecidedBy != "post" || routed.Reason != "Bauantrag laut Inhalt" || routed.Offices[0] != "a" {
		t.Fatalf("MessageRouted: %+v", routed)
	}
	if note == nil || note.By != "post" || note.Role != "mailroom" || note.Text != "Rückfrage beim Bauamt" {
		t.Fatalf("NoteAdded: %+v", note)
	}
	// Now office a's member sees it, acknowledges and answers with an attachment.
	m := e.browser("de")
	m.login("member-a", password)
	code, page := m.get("/messages/" + st)
	if code != http.StatusOK || !strings.Contains(page, "Rückfrage beim Bauamt") || !strings.Contains(page, "Bauantrag laut Inhalt") {
		t.Fatalf("message page %d lacks the note or the routing reason", code)
	}
	if code, _ := m.post("/messages/"+st+"/ack", url.Values{"office": {"a"}}); code != http.StatusSeeOther {
		t.Fatalf("ack: %d", code)
	}
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", m.csrf)
	mw.WriteField("office", "a")
	mw.WriteField("key", "answer-1")
	mw.WriteField("text", "Ihr Antrag ist eingegangen.")
	fw, _ := mw.CreateFormFile("attachments", "bescheid.pdf")
	fw.Write([]byte("%PDF-1.7 Bescheid"))
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+"/messages/"+st+"/answer", strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := m.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("answer: %d", resp.StatusCode)
	}
	var ack *gateway.MessageAcknowledged
	var reply *gateway.ReplyRequested
	for _, p := range streamEvents(t, e, st) {
		switch x := p.(type) {
		case *gateway.MessageAcknowledged:
			ack = x
		case *gateway.ReplyRequested:
			reply = x
		}
	}
	if ack == nil || ack.By != "member-a" || ack.Via != "webui" {
		t.Fatalf("MessageAcknowledged: %+v", ack)
	}
	if reply == nil || reply.Author != "member-a" || reply.To.Address != "buerger@example.org" || len(reply.Attachments) != 1 ||
		reply.Attachments[0].Filename != "bescheid.pdf" {
		t.Fatalf("ReplyRequested: %+v", reply)
	}
}

func TestLanguages(t *testing.T) {
	e := newTestEnv(t)
	for _, c := range []struct{ accept, cookie, want string }{
		{"de-DE,de;q=0.9", "", "Anmeldung"},
		{"en-GB,en;q=0.8", "", "Log in"},
		{"fr", "", "Anmeldung"},
		{"de", "en", "Log in"},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/login", nil)
		req.Header.Set("Accept-Language", c.accept)
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: langCookie, Value: c.cookie})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "<h1>"+c.want+"</h1>") {
			t.Errorf("Accept-Language %q, cookie %q: no %q", c.accept, c.cookie, c.want)
		}
	}
	b := e.browser("")
	resp, err := b.c.Get(e.srv.URL + "/login?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("switch: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := b.get("/login"); !strings.Contains(body, "<h1>Log in</h1>") {
		t.Fatal("the switch did not stick")
	}
}

var templateKey = regexp.MustCompile(`t \$?[.a-zA-Z]*Lang "([^"]+)"|t \$l "([^"]+)"`)

// Every key the templates name has both languages.
func TestCatalogueComplete(t *testing.T) {
	entries, _ := templateFiles.ReadDir("templates")
	for _, en := range entries {
		raw, _ := templateFiles.ReadFile("templates/" + en.Name())
		for _, m := range templateKey.FindAllStringSubmatch(string(raw), -1) {
			key := m[1] + m[2]
			if _, ok := catalogue[key]; !ok {
				t.Errorf("%s: key %q is not in the catalogue", en.Name(), key)
			}
		}
	}
	for _, prefix := range []struct {
		p    string
		keys []string
	}{{"status.", Statuses}, {"verify.", Verifications}, {"role.", []string{"office", "mailroom", "admin", "auditor"}},
		{"reply.", []string{"requested", "retrying", "sent", "failed"}}, {"integrity.", []string{"ok", "broken", "pending", "error"}},
		{"kind.", []string{"routing", "processing", "reply", "webhook", "evidence", "eeb-overdue", "reply-uncertain"}}} {
		for _, k := range prefix.keys {
			if _, ok := catalogue[prefix.p+k]; !ok {
				t.Errorf("key %q is not in the catalogue", prefix.p+k)
			}
		}
	}
	for k, v := range catalogue {
		if v[0] == "" || v[1] == "" {
			t.Errorf("%s: a language is empty", k)
		}
	}
}

// The auditor's proof export is what `log prove` writes: it checks
// offline against the gateway's key and covers the message's events; and
// the overview reports the log intact after the UI verified it.
func TestProofExportAndIntegrity(t *testing.T) {
	e := newTestEnv(t)
	e.seed("401", "a")
	aud := e.browser("en")
	aud.login("pruefer", password)
	code, body := aud.get("/messages/" + e.streams["401"] + "/proof")
	if code != http.StatusOK {
		t.Fatalf("proof: %d", code)
	}
	var sp integrity.StreamProof
	if err := json.Unmarshal([]byte(body), &sp); err != nil {
		t.Fatal(err)
	}
	leaves, err := integrity.CheckStreamProof(gatewaytest.Key.Public(), &sp)
	if err != nil {
		t.Fatalf("the exported proof does not check: %v", err)
	}
	if len(leaves) != len(streamEvents(t, e, e.streams["401"])) {
		t.Fatalf("the proof covers %d events, the stream has %d", len(leaves), len(streamEvents(t, e, e.streams["401"])))
	}
	if _, page := aud.get("/audit"); !strings.Contains(page, "not checked yet") {
		t.Fatal("the audit page claims a verification that did not run")
	}
	e.ui.verifyOnce(context.Background())
	if _, page := aud.get("/audit"); !strings.Contains(page, `integrity-ok">intact`) {
		t.Fatal("the audit page does not report the verified log intact")
	}
}

func TestBundleLinkAndDownload(t *testing.T) {
	e := newTestEnv(t)
	e.seed("201", "a")
	s := e.streams["201"]
	b := e.browser("")
	if code := b.login("member-a", password); code != http.StatusSeeOther {
		t.Fatalf("login answered %d", code)
	}
	if code, page := b.get("/messages/" + s); code != http.StatusOK || !strings.Contains(page, `href="/messages/`+s+`/bundle"`) {
		t.Fatalf("message page %d has no bundle link", code)
	}
	if code, body := b.get("/messages/" + s + "/bundle"); code != http.StatusOK || body != "bundle of default/"+s {
		t.Fatalf("bundle: %d %q", code, body)
	}
}
