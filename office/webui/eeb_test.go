package webui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
)

// seedEEB records a court's EGVP message asking for an eEB, routed to
// office, in XJustiz version.
func (e *testEnv) seedEEB(name, office, version string) string {
	e.t.Helper()
	raw, _ := e.blobs.PutBytes(context.Background(), []byte("osci "+name))
	rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelEGVP, name), &gateway.MessageReceived{
		Channel: gateway.ChannelEGVP, SenderMessageID: "osci-" + name, From: gateway.Address{Address: "osci:c0ffee", Name: "VG Koblenz"},
		Subject: "Zustellung " + name, ReceivedAt: time.Now().UTC(), Raw: raw,
		EGVP: &gateway.EGVPFields{SenderFileNumber: "1 K " + name + "/26", XJustizVersion: version, EEBRequested: true,
			EEBDocuments: []string{"urteil-" + name}, Origin: "vhn"}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.append(rec)
	routed, _ := gateway.Follow("routing", &rec, 0, &gateway.MessageRouted{Offices: []string{office}, DecidedBy: "rules"})
	e.append(routed)
	e.streams[name] = rec.Stream
	e.catchUp()
	return rec.Stream
}

func TestEEBForm(t *testing.T) {
	e := newTestEnv(t)
	s := e.seedEEB("zu1", "a", "3.5.1")
	old := e.seedEEB("zu2", "a", "2.4.0")
	e.seed("mail", "a")
	today := officeToday(time.Now())

	m := e.browser("de")
	m.login("member-a", password)
	// The office's list shows the open requests; the message page the task and the form.
	code, page := m.get("/offices/a")
	if code != http.StatusOK || !strings.Contains(page, `id="eeb-tasks"`) || !strings.Contains(page, "/messages/"+s+"#eeb") ||
		strings.Count(page, "eEB: offen") != 2 {
		t.Fatalf("office page %d lacks the eEB tasks:\n%s", code, page)
	}
	code, page = m.get("/messages/" + s)
	if code != http.StatusOK || !strings.Contains(page, `id="eeb-form"`) || !strings.Contains(page, `value="`+today+`"`) ||
		!strings.Contains(page, `id="eeb-refuse"`) || !strings.Contains(page, "urteil-zu1") {
		t.Fatalf("message page %d lacks the eEB form:\n%s", code, page)
	}
	// A 2.x request offers no refusal.
	if _, page := m.get("/messages/" + old); strings.Contains(page, `id="eeb-refuse"`) || !strings.Contains(page, "nur bestätigt") {
		t.Fatal("the 2.x request offers a refusal")
	}
	// A date in the future is refused, with the reason shown.
	m.get("/messages/" + s)
	tomorrow := time.Now().AddDate(0, 0, 2).Format(time.DateOnly)
	code, page = m.post("/messages/"+s+"/eeb", url.Values{"office": {"a"}, "key": {"k0"}, "decision": {"acknowledged"}, "receivedOn": {tomorrow}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "in the future") {
		t.Fatalf("future date: %d\n%s", code, page)
	}
	// An auditor, the mailroom and the other office may not answer.
	for _, user := range []string{"pruefer", "post", "member-b"} {
		b := e.browser("de")
		b.login(user, password)
		if code, _ := b.post("/messages/"+s+"/eeb", url.Values{"office": {"a"}, "key": {"x"}, "decision": {"acknowledged"}, "receivedOn": {today}}); code != http.StatusForbidden {
			t.Errorf("%s: %d", user, code)
		}
	}
	// Acknowledge; the form's fields of the other decision are ignored.
	form := url.Values{"office": {"a"}, "key": {"k1"}, "decision": {"acknowledged"}, "receivedOn": {today}, "refusalCode": {"1"}, "reason": {"x"}}
	if code, _ := m.post("/messages/"+s+"/eeb", form); code != http.StatusSeeOther {
		t.Fatalf("acknowledge: %d", code)
	}
	// The same form again records nothing new; another one is a conflict.
	if code, _ := m.post("/messages/"+s+"/eeb", form); code != http.StatusSeeOther {
		t.Fatalf("the same form again: %d", code)
	}
	code, page = m.post("/messages/"+s+"/eeb", url.Values{"office": {"a"}, "key": {"k2"}, "decision": {"refused"}, "refusalCode": {"2"}})
	if code != http.StatusConflict || !strings.Contains(page, "answered already") {
		t.Fatalf("second eEB: %d\n%s", code, page)
	}
	var answers []*gateway.ReplyRequested
	for _, p := range streamEvents(t, e, s) {
		if rr, ok := p.(*gateway.ReplyRequested); ok {
			answers = append(answers, rr)
		}
	}
	if len(answers) != 1 || answers[0].EEB == nil || *answers[0].EEB != (gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: today}) ||
		answers[0].Author != "member-a" || answers[0].Channel != gateway.ChannelEGVP {
		t.Fatalf("recorded %+v", answers)
	}
	e.catchUp()
	code, page = m.get("/messages/" + s)
	if code != http.StatusOK || strings.Contains(page, `id="eeb-form"`) || !strings.Contains(page, "wird gesendet") || !strings.Contains(page, "bestätigt – member-a") {
		t.Fatalf("after answering: %d\n%s", code, page)
	}
	if _, page := m.get("/offices/a"); strings.Contains(page, "/messages/"+s+"#eeb") {
		t.Fatal("the answered request is still in the office's open list")
	}
	// Refusing the 2.x request is refused by the requester, whatever the form says.
	if code, page := m.post("/messages/"+old+"/eeb", url.Values{"office": {"a"}, "key": {"k3"}, "decision": {"refused"}, "refusalCode": {"1"}}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(page, "XJustiz 3.x") {
		t.Fatalf("refusal of 2.x: %d", code)
	}
	if task, _ := offices.GetEEB(context.Background(), e.ui.deps.DB, gateway.DefaultTenant, old); task == nil || task.Status != offices.EEBOpen {
		t.Fatalf("2.x task: %+v", task)
	}
}
