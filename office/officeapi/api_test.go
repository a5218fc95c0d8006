package officeapi

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
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
	db      *sql.DB
	blobs   *blob.Store
	dir     *offices.Directory
	runner  *projection.Runner
	inbox   offices.Inbox
	srv     *httptest.Server
	tokens  map[string]string
	streams map[string]string // name → stream
	// erased are the blobs the server's store reads as erased.
	erased *erasingBlobs
	// shredded records what the retention service erased.
	shredded *erasedBlobs
}

const (
	pwA = "pw-member-a"
	pwM = "pw-mailroom"
)

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, emailPolicy(t), nil)
}

// newTestEnvWith is newTestEnv with another reply policy and clock.
func newTestEnvWith(t *testing.T, plan replies.PlanFunc, now func() time.Time) *testEnv {
	t.Helper()
	g := gatewaytest.New(t)
	e := &testEnv{t: t, log: g.Log, db: g.State, blobs: g.Blobs, tokens: map[string]string{}, streams: map[string]string{}}
	tok := func(name string) string {
		s, _ := offices.NewToken()
		e.tokens[name] = s
		return offices.HashToken(s)
	}
	hashA, _ := offices.HashPassword(pwA)
	hashM, _ := offices.HashPassword(pwM)
	cfg := offices.Config{
		Offices: []offices.Office{
			{ID: "a", Name: "Amt A", Members: []offices.Member{{User: "member-a", PasswordHash: hashA, TokenHash: tok("member-a")}}},
			{ID: "b", Name: "Amt B", Members: []offices.Member{{User: "member-b", TokenHash: tok("member-b")}}},
		},
		Mailroom: []offices.Member{{User: "post", PasswordHash: hashM, TokenHash: tok("mailroom")}},
		Admins:   []offices.Member{{User: "root", TokenHash: tok("admin")}},
		Auditors: []offices.Member{{User: "pruefer", TokenHash: tok("auditor")}},
	}
	var err error
	if e.dir, err = offices.NewDirectory(cfg); err != nil {
		t.Fatal(err)
	}
	n := offices.NewNotifier()
	e.inbox = offices.Inbox{Notifier: n}
	e.runner = &projection.Runner{Log: g.Log, DB: g.State, Registry: gateway.NewRegistry()}
	e.erased = &erasingBlobs{Backend: g.Blobs, refs: map[string]bool{}}
	e.shredded = &erasedBlobs{}
	s, err := New(Config{MaxReplyBytes: 4096, MaxWait: 5 * time.Second}, Deps{Log: g.Log, DB: g.State, Blobs: e.erased, Directory: e.dir, Notifier: n, Plan: plan, Now: now,
		Bundle: fakeBundle, Retention: newRetention(t, g, e.shredded)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setupTables(); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testEnv) appendEv(ev eventstore.Event) *eventstore.Event {
	e.t.Helper()
	if _, err := e.log.Append(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
	return &ev
}

// seed records a message with a part and a report, routed to office (or to
// triage when office is "").
func (e *testEnv) seed(name, office, filename string) *eventstore.Event {
	e.t.Helper()
	ctx := context.Background()
	raw, _ := e.blobs.PutBytes(ctx, []byte("Subject: "+name+"\r\n\r\nhello "+name+"\r\n"))
	part, _ := e.blobs.PutBytes(ctx, []byte("%PDF-1.7 "+name))
	report, _ := e.blobs.PutBytes(ctx, []byte(`{"report":"`+name+`"}`))
	rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, name), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, SenderMessageID: "<" + name + "@example.org>", From: gateway.Address{Address: "buerger@example.org"},
		To: []gateway.Address{{Address: "post@stadt.example"}}, Subject: "Betreff " + name, ReceivedAt: time.Now().UTC(), Raw: raw,
		Parts: []gateway.Part{{Path: "1", MediaType: "text/plain", Kind: "body", Blob: raw},
			{Path: "2", MediaType: "application/pdf", Filename: filename, Kind: "attachment", Blob: part}}})
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.appendEv(rec)
	e.streams[name] = r.Stream
	follow := func(h string, cause *eventstore.Event, p gateway.Payload) *eventstore.Event {
		ev, err := gateway.Follow(h, cause, 0, p)
		if err != nil {
			e.t.Fatal(err)
		}
		return e.appendEv(ev)
	}
	follow("verify", r, &gateway.SignaturesVerified{Report: report, WrittenFormSatisfied: true})
	if office == "" {
		follow("routing", r, &gateway.RoutingFailed{Reason: "no rule matched"})
	} else {
		follow("routing", r, &gateway.MessageRouted{Offices: []string{office}, Rule: "r1", DecidedBy: "rules"})
	}
	e.catchUp()
	return r
}

func (e *testEnv) catchUp() {
	e.t.Helper()
	if err := e.runner.CatchUp(context.Background(), e.inbox); err != nil {
		e.t.Fatal(err)
	}
}

type creds struct{ user, pw, token string }

func (e *testEnv) do(c creds, method, path, body string, hdr ...string) *http.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// TestAuthorizationMatrix checks every role against every endpoint, on the
// principal's own office ("a" for the member) and a foreign one ("b").
func TestAuthorizationMatrix(t *testing.T) {
	e := newTestEnv(t)
	e.seed("ma", "a", "a.pdf")
	e.seed("mb", "b", "b.pdf")
	e.seed("mt", "", "t.pdf")
	roles := map[string]creds{
		"anonymous":    {},
		"bad-password": {user: "member-a", pw: "wrong"},
		"bad-token":    {token: "pst_notavalidtokennotavalidtoken"},
		"member-basic": {user: "member-a", pw: pwA},
		"member-token": {token: e.tokens["member-a"]},
		"mailroom":     {user: "post", pw: pwM},
		"admin":        {token: e.tokens["admin"]},
		"auditor":      {token: e.tokens["auditor"]},
	}
	type access int
	const (
		read access = iota
		act
		triageView
		triageAssign
		retentionRead
		retentionAct
		anyone
	)
	endpoints := []struct {
		method, path, body string
		kind               access
		perOffice          bool
	}{
		{"GET", "/whoami", "", anyone, false},
		{"GET", "/offices", "", anyone, false},
		{"GET", "/offices/{o}/messages", "", read, true},
		{"GET", "/offices/{o}/messages/{s}", "", read, true},
		{"GET", "/offices/{o}/messages/{s}/raw", "", read, true},
		{"GET", "/offices/{o}/messages/{s}/parts/2", "", read, true},
		{"GET", "/offices/{o}/messages/{s}/report", "", read, true},
		{"GET", "/offices/{o}/messages/{s}/bundle", "", read, true},
		{"GET", "/offices/{o}/events?since=0", "", read, true},
		{"POST", "/offices/{o}/messages/{s}/ack", "", act, true},
		{"POST", "/offices/{o}/messages/{s}/replies", `{"body":"Danke"}`, act, true},
		{"POST", "/offices/{o}/messages/{s}/eeb", `{"decision":"acknowledged","receivedOn":"2026-12-02"}`, act, true},
		{"GET", "/triage", "", triageView, false},
		{"GET", "/triage/{t}", "", triageView, false},
		{"POST", "/triage/{t}/assign", `{"offices":["a"],"reason":"Bauakte"}`, triageAssign, false},
		{"POST", "/triage/{t}/replies/r-1/resolve", `{"action":"resend"}`, triageAssign, false},
		{"GET", "/admin/messages/{s}/retention", "", retentionRead, false},
		{"POST", "/admin/messages/{s}/hold", `{"reason":"Klage","case":"VG 1 K 23/26"}`, retentionAct, false},
		{"POST", "/admin/messages/{s}/hold/release", `{"reason":"Verfahren beendet"}`, retentionAct, false},
		{"POST", "/admin/messages/{s}/erase", `{"reason":"Antrag nach Art. 17 DSGVO"}`, retentionAct, false},
	}
	allowed := func(role string, kind access, own bool) bool {
		switch role {
		case "anonymous", "bad-password", "bad-token":
			return false
		}
		member := strings.HasPrefix(role, "member")
		switch kind {
		case anyone:
			return true
		case read:
			return (member && own) || role == "admin" || role == "auditor"
		case act:
			return member && own
		case triageView:
			return role == "mailroom" || role == "admin" || role == "auditor"
		case triageAssign:
			return role == "mailroom" || role == "admin"
		case retentionRead:
			return role == "admin" || role == "auditor"
		case retentionAct:
			return role == "admin"
		}
		return false
	}
	for role, c := range roles {
		for _, ep := range endpoints {
			offices := []string{"a"}
			if ep.perOffice {
				offices = []string{"a", "b"}
			}
			for _, o := range offices {
				own := o == "a"
				path := strings.NewReplacer("{o}", o, "{s}", e.streams["m"+o], "{t}", e.streams["mt"]).Replace(ep.path)
				name := fmt.Sprintf("%s %s %s own=%t", role, ep.method, ep.path, own)
				resp := e.do(c, ep.method, path, ep.body)
				got := resp.StatusCode
				resp.Body.Close()
				var want []int
				switch {
				case role == "anonymous" || strings.HasPrefix(role, "bad"):
					want = []int{401}
				case !allowed(role, ep.kind, own):
					want = []int{403}
				case strings.HasSuffix(ep.path, "/eeb"):
					want = []int{422} // the seeded messages are e-mails, which ask for no eEB
				case ep.kind == triageAssign:
					want = []int{201, 409} // the first assignment wins
				case ep.kind == retentionAct:
					want = []int{200, 201}
				case ep.method == "POST":
					want = []int{200, 201, 202}
				default:
					want = []int{200}
				}
				if !containsInt(want, got) {
					t.Errorf("%s: status %d, want %v", name, got, want)
				}
				if got == 401 && resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", name)
				}
			}
		}
	}
	// An office never reaches another office's message through its own path.
	resp := e.do(roles["member-token"], "GET", "/offices/a/messages/"+e.streams["mb"], "")
	if resp.StatusCode != 404 {
		t.Fatalf("foreign message through own office: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp = e.do(roles["member-token"], "POST", "/offices/a/messages/"+e.streams["mb"]+"/ack", "")
	if resp.StatusCode != 404 {
		t.Fatalf("ack of a foreign message through own office: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp = e.do(roles["admin"], "GET", "/offices/nowhere/messages", "")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown office: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// The list of offices shows only readable ones.
	if body := readBody(t, e.do(roles["member-basic"], "GET", "/offices", "")); strings.Contains(body, `"b"`) || !strings.Contains(body, `"a"`) {
		t.Fatalf("offices for member: %s", body)
	}
}

func containsInt(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func TestMessageFlow(t *testing.T) {
	e := newTestEnv(t)
	ma := e.seed("ma", "a", "../../etc/Bescheid \"final\"\r\nX-Evil: 1.pdf")
	member := creds{token: e.tokens["member-a"]}

	var list messageList
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages", ""))), &list)
	if len(list.Messages) != 1 || list.Messages[0].Stream != ma.Stream || list.Next != list.Messages[0].Seq {
		t.Fatalf("list: %+v", list)
	}
	var detail messageDetail
	json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages/"+ma.Stream, ""))), &detail)
	if len(detail.Parts) != 2 || detail.Report == nil || detail.Routing.Rule != "r1" || detail.Replies == nil {
		t.Fatalf("detail: %+v", detail)
	}

	resp := e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/parts/2", "")
	body := readBody(t, resp)
	cd := resp.Header.Get("Content-Disposition")
	if resp.StatusCode != 200 || body != "%PDF-1.7 ma" || resp.Header.Get("Content-Type") != "application/pdf" ||
		strings.ContainsAny(cd, "\r\n/") || !strings.HasPrefix(cd, "attachment;") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("part: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp := e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/parts/9", ""); resp.StatusCode != 404 {
		t.Fatalf("missing part: %d", resp.StatusCode)
	}
	if body := readBody(t, e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/report", "")); body != `{"report":"ma"}` {
		t.Fatalf("report: %s", body)
	}

	// Acknowledge: 201, then 200 with the same event.
	var a1, a2 ackResult
	r1 := e.do(member, "POST", "/offices/a/messages/"+ma.Stream+"/ack", "")
	json.Unmarshal([]byte(readBody(t, r1)), &a1)
	r2 := e.do(creds{user: "member-a", pw: pwA}, "POST", "/offices/a/messages/"+ma.Stream+"/ack", "")
	json.Unmarshal([]byte(readBody(t, r2)), &a2)
	if r1.StatusCode != 201 || r2.StatusCode != 200 || a1.EventID != a2.EventID || !a2.Existing {
		t.Fatalf("ack: %d %+v / %d %+v", r1.StatusCode, a1, r2.StatusCode, a2)
	}
	e.catchUp()
	if m, _ := offices.GetMessage(context.Background(), e.db, "a", ma.Stream); m.State != offices.StateAcknowledged || m.AcknowledgedBy != "member-a" {
		t.Fatalf("after ack: %+v", m)
	}

	// Replies: header injection refused, size capped, idempotent by key.
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"subject":"Hallo\r\nBcc: victim@example.org","body":"x"}`, 400},
		{`{"subject":"Hallo\nBcc: x","body":"x"}`, 400},
		{`{"subject":"ok","body":""}`, 400},
		{`{"subject":"ok","body":"x","to":"evil@example.org"}`, 400},
		{`{"body":"` + strings.Repeat("x", 5000) + `"}`, 413},
		{`not json`, 400},
	} {
		resp := e.do(member, "POST", "/offices/a/messages/"+ma.Stream+"/replies", tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("reply %.40q: %d, want %d (%s)", tc.body, resp.StatusCode, tc.want, readBody(t, resp))
		}
		resp.Body.Close()
	}
	var rep replyResult
	resp = e.do(member, "POST", "/offices/a/messages/"+ma.Stream+"/replies", `{"body":"Sehr geehrte Damen und Herren"}`, "Idempotency-Key", "k1")
	json.Unmarshal([]byte(readBody(t, resp)), &rep)
	if resp.StatusCode != 202 || rep.To.Address != "buerger@example.org" || rep.Channel != gateway.ChannelSMTP {
		t.Fatalf("reply: %d %+v", resp.StatusCode, rep)
	}
	if resp := e.do(member, "POST", "/offices/a/messages/"+ma.Stream+"/replies", `{"body":"Sehr geehrte Damen und Herren"}`, "Idempotency-Key", "k1"); resp.StatusCode != 200 {
		t.Fatalf("repeated reply: %d", resp.StatusCode)
	}
	if resp := e.do(member, "POST", "/offices/a/messages/"+ma.Stream+"/replies", `{"body":"anders"}`, "Idempotency-Key", "k1"); resp.StatusCode != 409 {
		t.Fatalf("reused key: %d", resp.StatusCode)
	}
	evs, _ := e.log.ReadStream(context.Background(), gateway.DefaultTenant, ma.Stream)
	var rr *gateway.ReplyRequested
	for i := range evs {
		if evs[i].Type == "ReplyRequested" {
			p, _ := gateway.NewRegistry().Decode(&evs[i])
			rr = p.(*gateway.ReplyRequested)
		}
	}
	if rr == nil || rr.Subject != "Re: Betreff ma" || rr.InReplyTo != "<ma@example.org>" || rr.Author != "member-a" || rr.Office != "a" {
		t.Fatalf("ReplyRequested: %+v", rr)
	}
}

func TestTriageAssign(t *testing.T) {
	e := newTestEnv(t)
	mt := e.seed("mt", "", "t.pdf")
	post := creds{user: "post", pw: pwM}
	var tl triageList
	json.Unmarshal([]byte(readBody(t, e.do(post, "GET", "/triage", ""))), &tl)
	if len(tl.Items) != 1 || tl.Items[0].Stream != mt.Stream || tl.Items[0].Received == nil {
		t.Fatalf("triage: %+v", tl)
	}
	for body, want := range map[string]int{`{"offices":["nowhere"]}`: 400, `{"offices":[]}`: 400, `{"offices":["a"],"reason":"x\r\ny"}`: 400} {
		if resp := e.do(post, "POST", "/triage/"+mt.Stream+"/assign", body); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	resp := e.do(post, "POST", "/triage/"+mt.Stream+"/assign", `{"offices":["a"],"reason":"Bauakte"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("assign: %d %s", resp.StatusCode, readBody(t, resp))
	}
	resp.Body.Close()
	if resp := e.do(post, "POST", "/triage/"+mt.Stream+"/assign", `{"offices":["b"]}`); resp.StatusCode != 409 {
		t.Fatalf("second assignment: %d", resp.StatusCode)
	}
	e.catchUp()
	m, err := offices.GetMessage(context.Background(), e.db, "a", mt.Stream)
	if err != nil || m.Routing.DecidedBy != "post" || m.Routing.Reason != "Bauakte" {
		t.Fatalf("assigned message: %+v %v", m, err)
	}
	json.Unmarshal([]byte(readBody(t, e.do(post, "GET", "/triage", ""))), &tl)
	if len(tl.Items) != 0 {
		t.Fatalf("assigned item still open: %+v", tl)
	}
}

func TestEventsAndLongPoll(t *testing.T) {
	e := newTestEnv(t)
	member := creds{token: e.tokens["member-a"]}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/offices/a/events", nil)
	req.Header.Set("Authorization", "Bearer "+member.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	poll := make(chan string, 1)
	go func() { poll <- readBody(t, e.do(member, "GET", "/offices/a/messages?since=0&wait=10", "")) }()
	time.Sleep(100 * time.Millisecond)
	ma := e.seed("ma", "a", "a.pdf")
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
			break
		}
	}
	if id != "1" || !strings.Contains(data, ma.Stream) {
		t.Fatalf("event id %q data %q", id, data)
	}
	select {
	case body := <-poll:
		if !strings.Contains(body, ma.Stream) {
			t.Fatalf("long poll: %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not wake")
	}
	// Resuming with Last-Event-ID skips what was seen.
	if body := readBody(t, e.do(member, "GET", "/offices/a/messages?since=1&wait=1", "")); strings.Contains(body, ma.Stream) {
		t.Fatalf("since=1 repeated the message: %s", body)
	}
}

func TestParseEML(t *testing.T) {
	raw := "From: A <a@example.org>\r\nTo: bauamt@stadt.example\r\nSubject: BA-2024/1\r\nX-Poststelle-Channel: EGVP\r\n" +
		"X-Poststelle-Metadata-xjustiz.recipient: DE.Justiz.1\r\n\r\nText\r\n"
	m, err := ParseEML([]byte(raw))
	if err != nil || m.Channel != gateway.ChannelEGVP || m.Metadata["xjustiz.recipient"] != "DE.Justiz.1" || m.Subject != "BA-2024/1" || m.To[0].Address != "bauamt@stadt.example" {
		t.Fatalf("%+v %v", m, err)
	}
}

// TestHealthz: the health check answers GET without a login; the
// routes beside it still require one.
func TestHealthz(t *testing.T) {
	e := newTestEnv(t)
	for _, c := range []struct {
		method, path string
		want         int
		body         string
	}{
		{"GET", "/healthz", http.StatusOK, `{"status":"ok"}`},
		{"POST", "/healthz", http.StatusNotFound, ""}, // the API answers every unknown route 404
		{"GET", "/healthz/x", http.StatusNotFound, ""},
		{"GET", "/readyz", http.StatusOK, `{"status":"ready"}`}, // no readiness check configured
		{"GET", "/whoami", http.StatusUnauthorized, ""},
	} {
		r := e.do(creds{}, c.method, c.path, "")
		body := strings.TrimSpace(readBody(t, r))
		if r.StatusCode != c.want || (c.body != "" && body != c.body) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.StatusCode, body, c.want, c.body)
		}
	}
}

// emailPolicy answers e-mail (SMTP, IMAP) by e-mail and EGVP on EGVP,
// which has no outbound: the routes the channel registry gives them.
func emailPolicy(t *testing.T) replies.PlanFunc {
	t.Helper()
	p, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelIMAP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelEGVP: {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress},
	}, []gateway.Channel{gateway.ChannelSMTP})
	if err != nil {
		t.Fatal(err)
	}
	return p.Plan
}
