package officeapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
)

// egvpPolicy answers EGVP on EGVP with an outbound, as serve does once the
// OSCI channel is configured.
func egvpPolicy(t *testing.T) replies.PlanFunc {
	t.Helper()
	p, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelEGVP: {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress},
	}, []gateway.Channel{gateway.ChannelSMTP, gateway.ChannelEGVP})
	if err != nil {
		t.Fatal(err)
	}
	return p.Plan
}

// seedEGVP records a court's EGVP message received at at, routed to
// office, asking for an eEB when eeb is set.
func (e *testEnv) seedEGVP(name, office string, at time.Time, version string, eeb bool) *eventstore.Event {
	e.t.Helper()
	raw, _ := e.blobs.PutBytes(context.Background(), []byte("osci "+name))
	f := &gateway.EGVPFields{SenderSafeID: "DE.Justiz.vg-koblenz", SenderFileNumber: "1 K " + name + "/26.KO", RecipientFileNumber: "BA-7",
		XJustizVersion: version, Origin: "vhn"}
	if eeb {
		f.EEBRequested, f.EEBDocuments = true, []string{"urteil-" + name}
	}
	rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelEGVP, name), &gateway.MessageReceived{
		Channel: gateway.ChannelEGVP, SenderMessageID: "osci-" + name, From: gateway.Address{Address: "osci:c0ffee", Name: "VG Koblenz"},
		Subject: "Zustellung " + name, ReceivedAt: at, Raw: raw, EGVP: f})
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.appendEv(rec)
	e.streams[name] = r.Stream
	routed, _ := gateway.Follow("routing", r, 0, &gateway.MessageRouted{Offices: []string{office}, Rule: "eeb-anforderung", DecidedBy: "rules"})
	e.appendEv(routed)
	e.catchUp()
	return r
}

func TestEEBAnswer(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	e := newTestEnvWith(t, egvpPolicy(t), func() time.Time { return now })
	later := e.seedEGVP("later", "a", now.Add(-2*time.Hour), "3.5.1", true)
	sooner := e.seedEGVP("sooner", "a", now.Add(-26*time.Hour), "3.5.1", true)
	old := e.seedEGVP("old", "a", now.Add(-time.Hour), "2.4.0", true)
	plain := e.seedEGVP("plain", "a", now.Add(-time.Hour), "3.5.1", false)
	mail := e.seed("mail", "a", "a.pdf")
	member := creds{token: e.tokens["member-a"]}
	post := func(stream, body string, key string) (int, string) {
		t.Helper()
		resp := e.do(member, "POST", "/offices/a/messages/"+stream+"/eeb", body, "Idempotency-Key", key)
		return resp.StatusCode, readBody(t, resp)
	}

	// The task shows on the message and in the list, most urgent first.
	var detail messageDetail
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages/"+later.Stream, ""))), &detail)
	if detail.EEB == nil || !detail.EEB.Requested || detail.EEB.Status != offices.EEBOpen ||
		!detail.EEB.Due.Equal(now.Add(-2*time.Hour+offices.DefaultEEBDueAfter)) || len(detail.EEB.Documents) != 1 {
		t.Fatalf("message eeb: %+v", detail.EEB)
	}
	var list messageList
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages?eeb=open", ""))), &list)
	if got := listStreams(list); strings.Join(got, " ") != strings.Join([]string{sooner.Stream, later.Stream, old.Stream}, " ") {
		t.Fatalf("eeb=open: %v", got)
	}
	// Ordered by due, the cursor is still the highest place on the page.
	if list.Next != list.Messages[2].Seq || list.Messages[2].Seq < list.Messages[1].Seq {
		t.Fatalf("next %d of %+v", list.Next, list.Messages)
	}
	if resp := e.do(member, "GET", "/offices/a/messages?eeb=late", ""); resp.StatusCode != 400 {
		t.Fatalf("unknown eeb filter: %d", resp.StatusCode)
	}
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages", ""))), &list)
	for _, m := range list.Messages {
		if (m.EEB != nil) != (m.Stream == later.Stream || m.Stream == sooner.Stream || m.Stream == old.Stream) {
			t.Fatalf("list shows eeb %+v on %s", m.EEB, m.Stream)
		}
	}

	// Refused requests record nothing.
	for _, tc := range []struct {
		name, stream, body string
		want               int
		detail             string
	}{
		{"unknown code", later.Stream, `{"decision":"refused","refusalCode":"9"}`, 400, "Codeliste"},
		{"future date", later.Stream, `{"decision":"acknowledged","receivedOn":"2026-12-03"}`, 400, "in the future"},
		{"date before receipt", later.Stream, `{"decision":"acknowledged","receivedOn":"2026-11-01"}`, 400, "before the message reached"},
		{"no decision", later.Stream, `{"receivedOn":"2026-12-02"}`, 400, "decision"},
		{"unknown field", later.Stream, `{"decision":"acknowledged","receivedOn":"2026-12-02","to":"DE.Justiz.evil"}`, 400, ""},
		{"refusal to XJustiz 2.x", old.Stream, `{"decision":"refused","refusalCode":"1"}`, 400, "XJustiz 3.x"},
		{"no eEB asked", plain.Stream, `{"decision":"acknowledged","receivedOn":"2026-12-02"}`, 422, "asks for no eEB"},
		{"e-mail", mail.Stream, `{"decision":"acknowledged","receivedOn":"2026-12-02"}`, 422, "EGVP only"},
		{"no such message", "msg-nothing", `{"decision":"acknowledged","receivedOn":"2026-12-02"}`, 404, ""},
	} {
		if got, body := post(tc.stream, tc.body, ""); got != tc.want || !strings.Contains(body, tc.detail) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, got, body, tc.want, tc.detail)
		}
	}
	// Another office's member may not answer for a.
	if resp := e.do(creds{token: e.tokens["member-b"]}, "POST", "/offices/a/messages/"+later.Stream+"/eeb",
		`{"decision":"acknowledged","receivedOn":"2026-12-02"}`); resp.StatusCode != 403 {
		t.Fatalf("foreign member: %d", resp.StatusCode)
	}
	if n := eebRequests(t, e, later.Stream) + eebRequests(t, e, old.Stream) + eebRequests(t, e, plain.Stream); n != 0 {
		t.Fatalf("%d eEB answers recorded by refused requests", n)
	}

	// Acknowledge: 202, the same again 200, another decision or key 409.
	ackBody := `{"decision":"acknowledged","receivedOn":"2026-12-02"}`
	code, body := post(later.Stream, ackBody, "eeb-1")
	var res replyResult
	json.Unmarshal([]byte(body), &res)
	if code != 202 || res.Channel != gateway.ChannelEGVP || res.To.Address != "osci:c0ffee" || res.ReplyID == "" || res.EventID == "" || res.Existing {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	code, body = post(later.Stream, ackBody, "eeb-1")
	var again replyResult
	json.Unmarshal([]byte(body), &again)
	if code != 200 || !again.Existing || again.ReplyID != res.ReplyID {
		t.Fatalf("repeat: %d %s", code, body)
	}
	if code, body := post(later.Stream, `{"decision":"refused","refusalCode":"2"}`, "eeb-1"); code != 409 || !strings.Contains(body, "Idempotency-Key") {
		t.Fatalf("same key, other decision: %d %s", code, body)
	}
	if code, body := post(later.Stream, `{"decision":"refused","refusalCode":"2"}`, "eeb-2"); code != 409 || !strings.Contains(body, res.ReplyID) {
		t.Fatalf("second eEB: %d %s", code, body)
	}
	if n := eebRequests(t, e, later.Stream); n != 1 {
		t.Fatalf("%d eEB answers recorded, want 1", n)
	}
	rr := lastEEB(t, e, later.Stream)
	if rr.Subject != "EB zu: 1 K later/26.KO" || rr.Author != "member-a" || rr.Office != "a" ||
		*rr.EEB != (gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-02"}) {
		t.Fatalf("recorded %+v %+v", rr, rr.EEB)
	}

	// Refuse the other one, by a representative, with a reason.
	if code, body := post(sooner.Stream, `{"decision":"refused","refusalCode":"2","reason":"Anlage K3 fehlt","deviatingRecipient":true}`, ""); code != 202 {
		t.Fatalf("refuse: %d %s", code, body)
	}
	if rr := lastEEB(t, e, sooner.Stream); *rr.EEB != (gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "2", Reason: "Anlage K3 fehlt", DeviatingRecipient: true}) {
		t.Fatalf("refusal recorded as %+v", rr.EEB)
	}
	e.catchUp()
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages/"+sooner.Stream, ""))), &detail)
	if detail.EEB.Status != offices.EEBAnswering || detail.EEB.Decision != gateway.EEBRefused || detail.EEB.AnsweredBy != "member-a" ||
		len(detail.Replies) != 1 || detail.Replies[0].Channel != "egvp" {
		t.Fatalf("after the refusal: %+v %+v", detail.EEB, detail.Replies)
	}
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages?eeb=open", ""))), &list)
	if got := listStreams(list); len(got) != 1 || got[0] != old.Stream {
		t.Fatalf("eeb=open after two answers: %v", got)
	}
	// The channel sends it: the task is done.
	sent, _ := gateway.Follow("replies/send", lastEvent(t, e, sooner.Stream), 0, &gateway.ReplySent{ReplyID: lastEEB(t, e, sooner.Stream).ReplyID,
		Channel: gateway.ChannelEGVP, Attempt: 1})
	e.appendEv(sent)
	e.catchUp()
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages/"+sooner.Stream, ""))), &detail)
	if detail.EEB.Status != offices.EEBSent || detail.EEB.SentAt == nil {
		t.Fatalf("after sending: %+v", detail.EEB)
	}
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages?eeb=sent", ""))), &list)
	if got := listStreams(list); len(got) != 1 || got[0] != sooner.Stream {
		t.Fatalf("eeb=sent: %v", got)
	}
}

func listStreams(l messageList) []string {
	var out []string
	for _, m := range l.Messages {
		out = append(out, m.Stream)
	}
	return out
}

func streamRequests(t *testing.T, e *testEnv, stream string) ([]*gateway.ReplyRequested, []eventstore.Event) {
	t.Helper()
	evs, err := e.log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.ReplyRequested
	for i := range evs {
		if evs[i].Type == "ReplyRequested" {
			p, err := gateway.NewRegistry().Decode(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			if rr := p.(*gateway.ReplyRequested); rr.EEB != nil {
				out = append(out, rr)
			}
		}
	}
	return out, evs
}

func eebRequests(t *testing.T, e *testEnv, stream string) int {
	rs, _ := streamRequests(t, e, stream)
	return len(rs)
}

func lastEEB(t *testing.T, e *testEnv, stream string) *gateway.ReplyRequested {
	t.Helper()
	rs, _ := streamRequests(t, e, stream)
	if len(rs) == 0 {
		t.Fatal("no eEB answer recorded")
	}
	return rs[len(rs)-1]
}

func lastEvent(t *testing.T, e *testEnv, stream string) *eventstore.Event {
	t.Helper()
	_, evs := streamRequests(t, e, stream)
	return &evs[len(evs)-1]
}
