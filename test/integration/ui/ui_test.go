//go:build integration

// Package ui_test drives the web UI of the real `poststelle serve` in
// Debian's headless Chromium (chromedp): a mailroom clerk logs in and sees
// a message arrive live, routes a triage message by hand, an office member
// opens the Prüfprotokoll and answers, cannot open another office's
// message even by its URL, and an auditor reads without being able to act.
// Screenshots of the main pages in German and English are written to
// $UI_OUT.
package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

const password = "Sehr-geheim-2026"

type gatewayProc struct {
	*servetest.Process
	dir, config, smtp, ui string
}

// startGateway writes the configuration an administrator would: offices
// with argon2id password hashes, rules that place building applications
// and noise complaints and leave the rest to triage, answers into a
// Maildir, every listener on a free loopback port.
func startGateway(t *testing.T) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	hash, err := offices.HashPasswordArgon2id(password)
	if err != nil {
		t.Fatal(err)
	}
	officesFile := filepath.Join(dir, "offices.yaml")
	write(t, officesFile, fmt.Sprintf(`offices:
  - id: bauamt
    name: Bauordnungsamt
    members: [{user: mueller, password_hash: "%[1]s"}]
  - id: ordnungsamt
    name: Ordnungsamt
    members: [{user: schmidt, password_hash: "%[1]s"}]
mailroom: [{user: post1, password_hash: "%[1]s"}]
admins:   [{user: admin1, password_hash: "%[1]s"}]
auditors: [{user: rpa, password_hash: "%[1]s"}]
`, hash))
	rulesFile := filepath.Join(dir, "rules.yaml")
	write(t, rulesFile, `rules:
  - id: bau
    match: {subject: '(?i)bauantrag'}
    offices: [bauamt]
  - id: laerm
    match: {subject: '(?i)lärm'}
    offices: [ordnungsamt]
`)
	g := &gatewayProc{dir: dir, smtp: servetest.FreeAddr(t), ui: servetest.FreeAddr(t)}
	api := servetest.FreeAddr(t)
	g.config = filepath.Join(dir, "poststelle.yaml")
	write(t, g.config, fmt.Sprintf(`data_dir: %[1]s/data
offices: %[2]s
routing: {rules: %[3]s}
smtp: {listen: "%[4]s", accept_all: true}
office_api: {listen: "%[5]s"}
office_imap: {listen: "%[6]s"}
smtp_submission: {listen: "%[7]s"}
smtp_out: {from: poststelle@kreis.example, maildir: %[1]s/outbox}
replies: {first_backoff: 200ms, poll_interval: 200ms}
web_ui: {listen: "%[8]s"}
`, dir, officesFile, rulesFile, g.smtp, api, servetest.FreeAddr(t), servetest.FreeAddr(t), g.ui))
	g.Process = servetest.Start(t, bin, g.config, api)
	return g
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// send delivers a message over SMTP and returns its stream once routed or
// sent to triage.
func (g *gatewayProc) send(t *testing.T, from, subject string) string {
	t.Helper()
	msg := fmt.Sprintf("From: %s\r\nTo: poststelle@kreis.example\r\nSubject: %s\r\nMessage-ID: <%d@example.org>\r\n\r\nGuten Tag,\r\nanbei mein Anliegen.\r\n",
		from, subject, time.Now().UnixNano())
	if _, err := servetest.SendSMTP(g.smtp, from, "poststelle@kreis.example", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	var stream string
	servetest.WaitFor(t, "message "+subject+" recorded", func() bool {
		for _, r := range servetest.Replay(t, bin, g.config, "MessageReceived") {
			if m, ok := r.Payload.(*gateway.MessageReceived); ok && m.Subject == subject {
				stream = r.Stream
				return true
			}
		}
		return false
	})
	return stream
}

// browser is one headless Chromium with its own profile (its own cookies).
type browser struct {
	t    *testing.T
	ctx  context.Context
	g    *gatewayProc
	lang string
}

func newBrowser(t *testing.T, g *gatewayProc, lang string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (test/setup.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("lang", lang),
		chromedp.Flag("accept-lang", lang), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return &browser{t: t, ctx: ctx, g: g, lang: lang}
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval runs a script in the page and returns its value (awaiting a
// promise).
func eval[T any](b *browser, what, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *browser) url(path string) string { return "http://" + b.g.ui + path }

func (b *browser) login(user string) {
	b.t.Helper()
	b.run("log in as "+user,
		chromedp.Navigate(b.url("/login?lang="+b.lang)),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")))
	if who := b.text("#whoami"); who != user {
		b.t.Fatalf("logged in as %q, want %q", who, user)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// screenshot writes the whole page as PNG into $UI_OUT.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	out := os.Getenv("UI_OUT")
	if out == "" {
		out = b.t.TempDir()
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// status fetches a path with the page's session and returns the HTTP
// status, as typing the URL would.
func (b *browser) status(method, path string) int {
	b.t.Helper()
	js := fmt.Sprintf(`(async () => {
		const csrf = document.querySelector('input[name=csrf]');
		const body = new URLSearchParams({csrf: csrf ? csrf.value : '', office: 'bauamt', reason: 'x', text: 'x'});
		const r = await fetch(%q, %s);
		return r.status; })()`, path, map[string]string{"GET": "{}", "POST": "{method: 'POST', body}"}[method])
	return eval[int](b, method+" "+path, js)
}

func TestBrowser(t *testing.T) {
	g := startGateway(t)
	bau := g.send(t, "buerger@example.org", "Bauantrag Az. BA-2026/17")
	laerm := g.send(t, "anwohner@example.org", "Beschwerde Lärm Hauptstraße")

	// The mailroom logs in, sees the overview, and a message that no rule
	// places arrives in the live list without a reload.
	mail := newBrowser(t, g, "de")
	mail.login("post1")
	mail.run("overview", chromedp.Navigate(mail.url("/overview")), chromedp.WaitVisible(chromedp.CSS("#live-status")))
	triaged := g.send(t, "unbekannt@example.org", "Anfrage ohne Zuordnung")
	mail.run("live arrival", chromedp.WaitVisible(chromedp.Search(`//table[@data-live]//tr[contains(@class,"arrived")]//a[contains(., "Anfrage ohne Zuordnung")]`)))

	// Route it to the Bauordnungsamt with a reason: MessageRouted names who.
	mail.run("route", chromedp.Navigate(mail.url("/triage")),
		chromedp.WaitVisible(chromedp.CSS("#triage-"+triaged)),
		chromedp.Click(chromedp.CSS("#o-"+triaged+"-bauamt")),
		chromedp.SendKeys(chromedp.CSS("#reason-"+triaged), "Bauantrag nach Inhalt"),
		chromedp.Submit(chromedp.CSS("#triage-"+triaged+" form.route-form")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	var routedBy string
	servetest.WaitFor(t, "manual routing recorded", func() bool {
		for _, r := range servetest.Replay(t, bin, g.config, "MessageRouted") {
			if m, ok := r.Payload.(*gateway.MessageRouted); ok && r.Stream == triaged && m.Reason == "Bauantrag nach Inhalt" {
				routedBy = m.DecidedBy
			}
		}
		return routedBy != ""
	})
	if routedBy != "post1" {
		t.Fatalf("the manual routing names %q, want post1", routedBy)
	}

	// The office member reads the message, opens its Prüfprotokoll and answers.
	member := newBrowser(t, g, "de")
	member.login("mueller")
	member.run("message page", chromedp.Navigate(member.url("/messages/"+bau)), chromedp.WaitVisible(chromedp.CSS("#message-subject")))
	if s := member.text("#message-subject"); s != "Bauantrag Az. BA-2026/17" {
		t.Fatalf("message page shows %q", s)
	}
	servetest.WaitFor(t, "the Prüfprotokoll link", func() bool {
		member.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#message-subject")))
		return eval[int](member, "report link", `document.querySelectorAll('#report-link').length`) == 1
	})
	member.run("Prüfprotokoll", chromedp.Click(chromedp.CSS("#report-link")), chromedp.WaitReady(chromedp.CSS("body")))
	report := eval[string](member, "report text", `document.body.innerText`)
	if !strings.Contains(strings.ToLower(report), "prüfprotokoll") {
		t.Fatalf("the Prüfprotokoll page says %.300q", report)
	}
	member.run("answer", chromedp.Navigate(member.url("/messages/"+bau)), chromedp.WaitVisible(chromedp.CSS("#answer-text")),
		chromedp.SendKeys(chromedp.CSS("#answer-text"), "Ihr Bauantrag ist eingegangen."),
		chromedp.Click(chromedp.CSS("#answer-submit")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	servetest.WaitFor(t, "the answer sent", func() bool {
		member.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#answers")))
		state := eval[string](member, "answer state", `Array.from(document.querySelectorAll('#answers .reply-state')).map(e => e.textContent).join()`)
		return strings.Contains(state, "gesendet")
	})
	// Another office's message is closed to them, by link and by URL.
	if code := member.status("GET", "/messages/"+laerm); code != 403 {
		t.Fatalf("member of bauamt opened ordnungsamt's message: %d", code)
	}
	member.run("foreign message by URL", chromedp.Navigate(member.url("/messages/"+laerm)), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if code := member.status("GET", "/messages/"+laerm+"/raw"); code != 403 {
		t.Fatalf("member of bauamt downloaded ordnungsamt's message: %d", code)
	}

	// The auditor reads everything and can act on nothing.
	aud := newBrowser(t, g, "de")
	aud.login("rpa")
	aud.run("auditor reads", chromedp.Navigate(aud.url("/messages/"+laerm)), chromedp.WaitVisible(chromedp.CSS("#message-subject")))
	if forms := eval[int](aud, "action forms", `document.querySelectorAll('#answer-form, #ack-button, form[action$="/notes"]').length`); forms != 0 {
		t.Fatalf("the auditor sees %d action forms", forms)
	}
	for _, path := range []string{"/messages/" + laerm + "/ack", "/messages/" + laerm + "/notes", "/triage/" + laerm + "/route"} {
		if code := aud.status("POST", path); code != 403 {
			t.Fatalf("auditor POST %s: %d, want 403", path, code)
		}
	}

	// Screenshots of the main pages in both languages, as an admin sees
	// them, with one message left in triage.
	g.send(t, "verein@example.org", "Einladung zum Sommerfest")
	for _, lang := range []string{"de", "en"} {
		adm := newBrowser(t, g, lang)
		adm.login("admin1")
		adm.run("language "+lang, chromedp.Navigate(adm.url("/overview?lang="+lang)), chromedp.WaitVisible(chromedp.CSS("#h-channel")))
		adm.screenshot("overview-" + lang)
		adm.run("triage", chromedp.Navigate(adm.url("/triage")), chromedp.WaitVisible(chromedp.CSS("main h1")))
		adm.screenshot("triage-" + lang)
		adm.run("message", chromedp.Navigate(adm.url("/messages/"+bau)), chromedp.WaitVisible(chromedp.CSS("#timeline")))
		adm.screenshot("message-" + lang)
		adm.run("search", chromedp.Navigate(adm.url("/search?q=bauantrag")), chromedp.WaitVisible(chromedp.CSS("#result-count")))
		if n := adm.text("#result-count"); n != "1" {
			t.Fatalf("search for bauantrag found %s, want 1", n)
		}
		adm.screenshot("search-" + lang)
	}
}
