package webui

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// record appends p to the stream of the seeded message name, as handler
// (the n-th event it derives from the receipt).
func (e *testEnv) record(name, handler string, n int, p gateway.Payload) {
	e.t.Helper()
	evs, err := e.log.ReadStream(context.Background(), gateway.DefaultTenant, e.streams[name])
	if err != nil || len(evs) == 0 {
		e.t.Fatalf("stream of %s: %d events, %v", name, len(evs), err)
	}
	ev, err := gateway.Follow(handler, &evs[0], n, p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.append(ev)
	e.catchUp()
}

// receiptOf returns the seeded message's receipt and verification.
func receiptOf(t *testing.T, e *testEnv, name string) (*gateway.MessageReceived, *gateway.SignaturesVerified) {
	t.Helper()
	var rec *gateway.MessageReceived
	var ver *gateway.SignaturesVerified
	for _, p := range streamEvents(t, e, e.streams[name]) {
		switch m := p.(type) {
		case *gateway.MessageReceived:
			rec = m
		case *gateway.SignaturesVerified:
			ver = m
		}
	}
	if rec == nil || ver == nil {
		t.Fatalf("%s has no receipt or verification", name)
	}
	return rec, ver
}

// TestErasedMessagePage: the page of an erased message says when, under
// which rule and why its contents were erased, and offers no download of
// an erased blob; a blob the erasure kept still downloads. The office's
// queue marks the message, and a legal hold shows on its message and in
// the queue, in both languages.
func TestErasedMessagePage(t *testing.T) {
	e := newTestEnv(t)
	e.seed("701", "a")
	e.seed("702", "a")
	e.seed("703", "a")
	e.seed("704", "a")
	at := time.Date(2037, 1, 1, 0, 0, 3, 0, time.UTC)
	erase := func(name string, keepPart bool) {
		rec, ver := receiptOf(t, e, name)
		er := &gateway.ContentErased{ErasedAt: at, Rule: "office a: 10y from the end of the year of receipt", Reason: "retention-expired",
			Office: "a", Blobs: []blob.Ref{rec.Raw, ver.Report}}
		if keepPart {
			er.Kept = []blob.Ref{rec.Parts[0].Blob}
		} else {
			er.Blobs = append(er.Blobs, rec.Parts[0].Blob)
		}
		e.record(name, "retention-erase", 0, er)
	}
	erase("701", false)
	erase("702", true)
	e.record("703", "retention", 0, &gateway.LegalHoldSet{Reason: "Klage anhängig", Actor: "root", Case: "VG 1 K 23/26", SetAt: at})
	e.record("704", "retention", 0, &gateway.LegalHoldSet{Reason: "Klage", Actor: "root", SetAt: at})
	e.record("704", "retention", 1, &gateway.LegalHoldReleased{Reason: "Verfahren beendet", Actor: "root", ReleasedAt: at.Add(time.Hour)})

	links := func(stream string) map[string]string {
		base := `href="/messages/` + stream
		return map[string]string{"raw": base + `/raw"`, "part": base + `/parts/2"`, "report": base + `/report"`, "report json": base + `/report?format=json"`}
	}
	for _, lang := range []struct{ lang, erased, rule, reason, hold, gone string }{
		{"de", "Inhalt gelöscht am", "(Regel office a: 10y from the end of the year of receipt,", "Grund retention-expired)", "Sperrvermerk seit", "gelöscht"},
		{"en", "Content erased on", "(rule office a: 10y from the end of the year of receipt,", "reason retention-expired)", "Legal hold since", "erased"},
	} {
		b := e.browser(lang.lang)
		if code := b.login("member-a", password); code != http.StatusSeeOther {
			t.Fatalf("login answered %d", code)
		}
		page := func(name string) string {
			t.Helper()
			code, body := b.get("/messages/" + e.streams[name])
			if code != http.StatusOK {
				t.Fatalf("%s: message %s answered %d", lang.lang, name, code)
			}
			return body
		}

		all := page("701")
		for _, want := range []string{`id="erased-note"`, lang.erased, lang.rule, lang.reason, `id="raw-erased"`, `class="muted part-erased">` + lang.gone, `id="report-erased"`} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: the erased message's page lacks %q", lang.lang, want)
			}
		}
		for what, link := range links(e.streams["701"]) {
			if strings.Contains(all, link) {
				t.Errorf("%s: the erased message's page links the %s: %s", lang.lang, what, link)
			}
		}

		kept := page("702")
		l := links(e.streams["702"])
		if !strings.Contains(kept, `id="erased-note"`) || !strings.Contains(kept, l["part"]) || strings.Contains(kept, l["raw"]) || strings.Contains(kept, l["report"]) {
			t.Errorf("%s: the page of a message whose part was kept shows the wrong links", lang.lang)
		}

		held := page("703")
		if !strings.Contains(held, `id="hold-note"`) || !strings.Contains(held, lang.hold) || !strings.Contains(held, "VG 1 K 23/26") ||
			strings.Contains(held, `id="erased-note"`) {
			t.Errorf("%s: the held message's page does not show the hold alone", lang.lang)
		}
		for what, link := range links(e.streams["703"]) {
			if !strings.Contains(held, link) {
				t.Errorf("%s: the held message's page lacks the %s link", lang.lang, what)
			}
		}
		if released := page("704"); strings.Contains(released, `id="hold-note"`) {
			t.Errorf("%s: a released hold still shows", lang.lang)
		}

		code, queue := b.get("/offices/a")
		if code != http.StatusOK {
			t.Fatalf("%s: queue answered %d", lang.lang, code)
		}
		rows := map[string]string{}
		for _, row := range strings.Split(queue, "<tr>") {
			for _, n := range []string{"701", "702", "703", "704"} {
				if strings.Contains(row, `href="/messages/`+e.streams[n]+`"`) {
					rows[n] = row
				}
			}
		}
		for n, want := range map[string][2]bool{"701": {true, false}, "702": {true, false}, "703": {false, true}, "704": {false, false}} {
			if got := strings.Contains(rows[n], `class="status erased"`); got != want[0] {
				t.Errorf("%s: queue row of %s marked erased: %v, want %v", lang.lang, n, got, want[0])
			}
			if got := strings.Contains(rows[n], `class="status hold"`); got != want[1] {
				t.Errorf("%s: queue row of %s marked held: %v, want %v", lang.lang, n, got, want[1])
			}
		}
	}
}
