package offices

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

func mustHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func argonHash(pw string) string {
	salt := []byte("0123456789abcdef")
	k := argon2.IDKey([]byte(pw), salt, 1, 8*1024, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k))
}

func TestParseConfigErrors(t *testing.T) {
	good := "$2a$10$Ng0Vm640JBWEmeiNiYFna.yZ7GC6xIDzijaT3Paq2CnXSwxTv4KoO"
	tok := HashToken("pst_0123456789abcdef0123456789")
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", ``, ""},
		{"ok", "offices: [{id: bauamt, members: [{user: a, password_hash: \"" + good + "\"}]}]", ""},
		{"bad id", "offices: [{id: Bau Amt}]", "offices[0].id"},
		{"dup id", "offices: [{id: a}, {id: a}]", "appears twice"},
		{"unknown field", "offices: [{id: a, colour: red}]", "colour"},
		{"no secret", "offices: [{id: a, members: [{user: u}]}]", "password_hash or token_hash"},
		{"bad hash", "offices: [{id: a, members: [{user: u, password_hash: plain}]}]", "password_hash"},
		{"bad token", "offices: [{id: a, members: [{user: u, token_hash: \"md5:00\"}]}]", "token_hash"},
		{"bad user", "offices: [{id: a, members: [{user: \"a b\", token_hash: \"" + tok + "\"}]}]", "user"},
		{"two roles", "offices: [{id: a, members: [{user: u, token_hash: \"" + tok + "\"}]}]\nadmins: [{user: u, token_hash: \"" + tok + "\"}]", "one role"},
		{"webhook scheme", "offices: [{id: a, webhooks: [{url: \"ftp://x\", secret_file: s}]}]", "webhooks[0]"},
		{"webhook secret", "offices: [{id: a, webhooks: [{url: \"https://x\"}]}]", "secret_file"},
		{"webhook userinfo", "offices: [{id: a, webhooks: [{url: \"https://u:p@x\", secret_file: s}]}]", "credentials"},
		{"retention", "offices: [{id: a, retention: {period: 10y, from: end-of-year}}, {id: b, retention: {period: 6m, from: receipt}}]", ""},
		{"retention default from", "offices: [{id: a, retention: {period: 1y6m}}]", ""},
		{"retention bad period", "offices: [{id: a, retention: {period: 10 years}}]", "period"},
		{"retention too long", "offices: [{id: a, retention: {period: 101y}}]", "longer than"},
		{"retention no period", "offices: [{id: a, retention: {from: receipt}}]", "offices[0].retention.period"},
		{"retention bad from", "offices: [{id: a, retention: {period: 1y, from: closing}}]", "offices[0].retention.from"},
		{"retention unknown field", "offices: [{id: a, retention: {period: 1y, start: receipt}}]", "start"},
		{"argon params", "admins: [{user: u, password_hash: \"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5\"}]", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRetentionRules(t *testing.T) {
	c, err := ParseConfig([]byte("offices: [{id: a, retention: {period: 10y}}, {id: b}, {id: c, retention: {period: 30d, from: receipt}}]"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.RetentionRules()
	want := map[string]retention.Rule{"a": {Period: retention.Period{Years: 10}},
		"c": {Period: retention.Period{Days: 30}, From: retention.FromReceipt}}
	if !maps.Equal(got, want) {
		t.Fatalf("RetentionRules() = %v, want %v", got, want)
	}
}

func testDirectory(t testing.TB) (*Directory, string) {
	t.Helper()
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	mueller := mustHash(t, "pw-mueller")
	cfg := Config{
		Offices: []Office{
			{ID: "bauamt", Members: []Member{{User: "mueller", PasswordHash: mueller}, {User: "dms", TokenHash: HashToken(token)}}},
			{ID: "ordnungsamt", Members: []Member{{User: "mueller", PasswordHash: mueller}, {User: "schmidt", PasswordHash: argonHash("pw-schmidt")}}},
		},
		Mailroom: []Member{{User: "post", PasswordHash: argonHash("pw-post")}},
		Admins:   []Member{{User: "root", TokenHash: HashToken(token + "x")}},
		Auditors: []Member{{User: "pruefer", PasswordHash: mustHash(t, "pw-pruefer")}},
	}
	d, err := NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, token
}

func TestAuthenticate(t *testing.T) {
	d, token := testDirectory(t)
	ctx := context.Background()
	for _, tc := range []struct {
		user, pw string
		role     Role
		offices  string
	}{
		{"mueller", "pw-mueller", RoleOffice, "bauamt,ordnungsamt"},
		{"schmidt", "pw-schmidt", RoleOffice, "ordnungsamt"},
		{"post", "pw-post", RoleMailroom, ""},
		{"pruefer", "pw-pruefer", RoleAuditor, ""},
		{"mueller", "pw-schmidt", "", ""},
		{"nobody", "pw-mueller", "", ""},
		{"dms", "", "", ""},
		{"mueller", strings.Repeat("x", 100), "", ""},
	} {
		for range 2 { // the second time through the cache
			p, err := d.Authenticate(ctx, tc.user, tc.pw)
			if tc.role == "" {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%s/%s: %v, want ErrUnauthenticated", tc.user, tc.pw, err)
				}
				continue
			}
			if err != nil || p.Role != tc.role || strings.Join(p.Offices, ",") != tc.offices {
				t.Fatalf("%s: %+v %v", tc.user, p, err)
			}
		}
	}
	p, err := d.AuthenticateToken(ctx, token)
	if err != nil || p.User != "dms" || !p.Member("bauamt") {
		t.Fatalf("token: %+v %v", p, err)
	}
	if p, err := d.AuthenticateToken(ctx, token+"x"); err != nil || p.Role != RoleAdmin {
		t.Fatalf("admin token: %+v %v", p, err)
	}
	for _, bad := range []string{"", "short", token[:len(token)-1], strings.Repeat("a", 1000)} {
		if _, err := d.AuthenticateToken(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %q: %v", bad, err)
		}
	}
	// A principal handed out is a copy: changing it changes nothing.
	p, _ = d.Authenticate(ctx, "mueller", "pw-mueller")
	p.Offices[0] = "evil"
	if p2, _ := d.Authenticate(ctx, "mueller", "pw-mueller"); p2.Offices[0] != "bauamt" {
		t.Fatal("principal shares state with the directory")
	}
}

func TestCacheExpires(t *testing.T) {
	d, _ := testDirectory(t)
	now := time.Now()
	d.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := d.Authenticate(ctx, "schmidt", "pw-schmidt"); err != nil {
		t.Fatal(err)
	}
	if !d.cached("schmidt", d.mac("schmidt", "pw-schmidt")) || d.cached("schmidt", d.mac("schmidt", "other")) {
		t.Fatal("cache does not hold exactly the verified password")
	}
	now = now.Add(cacheTTL + time.Second)
	if d.cached("schmidt", d.mac("schmidt", "pw-schmidt")) {
		t.Fatal("cache entry outlived its TTL")
	}
}

func TestPrincipalPermissions(t *testing.T) {
	member := &Principal{User: "m", Role: RoleOffice, Offices: []string{"a"}}
	for _, tc := range []struct {
		p                               *Principal
		readOwn, readOther, actOwn      bool
		actOther, viewTriage, canAssign bool
	}{
		{member, true, false, true, false, false, false},
		{&Principal{Role: RoleMailroom}, false, false, false, false, true, true},
		{&Principal{Role: RoleAdmin}, true, true, false, false, true, true},
		{&Principal{Role: RoleAuditor}, true, true, false, false, true, false},
		{nil, false, false, false, false, false, false},
		{&Principal{Role: "office", Offices: nil}, false, false, false, false, false, false},
	} {
		got := []bool{tc.p.CanRead("a"), tc.p.CanRead("b"), tc.p.CanAct("a"), tc.p.CanAct("b"), tc.p.CanViewTriage(), tc.p.CanAssign()}
		want := []bool{tc.readOwn, tc.readOther, tc.actOwn, tc.actOther, tc.viewTriage, tc.canAssign}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%+v: %v, want %v", tc.p, got, want)
		}
	}
}

func TestEnsureDemoKeepsLogin(t *testing.T) {
	dir := t.TempDir()
	cfg, creds, created, err := EnsureDemo(dir)
	if err != nil || !created {
		t.Fatalf("first run: created %v, %v", created, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, DemoCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\nuser=demo\n") || !strings.Contains(string(raw), "\npassword="+creds.Password+"\n") || len(creds.Password) < 20 {
		t.Fatalf("credentials file:\n%s", raw)
	}
	if st, _ := os.Stat(filepath.Join(dir, DemoCredentialsFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	_, again, created, err := EnsureDemo(dir)
	if err != nil || again != creds || created {
		t.Fatalf("restart changed the login: %+v created %v, %v", again, created, err)
	}
	d, err := NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := d.Authenticate(context.Background(), creds.User, creds.Password); err != nil || !p.CanAct(DemoOffice) {
		t.Fatalf("demo login: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, DemoCredentialsFile), []byte("garbage"), 0o600)
	if _, _, _, err := EnsureDemo(dir); err == nil {
		t.Fatal("a broken credentials file was accepted")
	}
}

// --- inbox projection ---

type env struct {
	log *sqlitelog.Log
	db  *sql.DB
	run *projection.Runner
}

func newEnv(t *testing.T) *env {
	g := gatewaytest.New(t)
	return &env{log: g.Log, db: g.State, run: &projection.Runner{Log: g.Log, DB: g.State, Registry: gateway.NewRegistry()}}
}

func (e *env) receive(t *testing.T, id, subject string) *eventstore.Event {
	t.Helper()
	ev, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, id), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, Subject: subject, From: gateway.Address{Address: "buerger@example.org"},
		To: []gateway.Address{{Address: "post@stadt.example"}}, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Parts: []gateway.Part{{Path: "1", MediaType: "text/plain", Kind: "body"}}})
	if err != nil {
		t.Fatal(err)
	}
	return e.append(t, ev)
}

func (e *env) append(t *testing.T, ev eventstore.Event) *eventstore.Event {
	t.Helper()
	res, err := e.log.Append(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.Position = res[0].Position
	return &ev
}

func (e *env) follow(t *testing.T, handler string, cause *eventstore.Event, p gateway.Payload) *eventstore.Event {
	t.Helper()
	ev, err := gateway.Follow(handler, cause, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	return e.append(t, ev)
}

func TestInboxLifecycleAndRebuild(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := NewNotifier()
	changed := n.Changed()
	in := Inbox{Notifier: n}

	r1 := e.receive(t, "1", "Bauantrag")
	routed := e.follow(t, "routing", r1, &gateway.MessageRouted{Offices: []string{"bauamt", "ordnungsamt"}, Rule: "r1", RulesVersion: "v1", DecidedBy: "rules"})
	e.follow(t, QueueDeliveryHandler, routed, &gateway.MessageDelivered{Office: "bauamt", Via: "queue"})
	e.follow(t, "verify", r1, &gateway.SignaturesVerified{WrittenFormSatisfied: true, Signatures: []gateway.SignatureSummary{{Part: "2", Indication: "TOTAL_PASSED", Qualification: "QESig"}}})
	r2 := e.receive(t, "2", "???")
	e.follow(t, "routing", r2, &gateway.RoutingFailed{Reason: "no rule matched", RulesVersion: "v1"})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("notifier not woken")
	}
	msgs, err := ListInbox(ctx, e.db, "bauamt", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("bauamt inbox: %v %v", msgs, err)
	}
	m := msgs[0]
	if m.Subject != "Bauantrag" || m.State != StateDelivered || m.Routing.Rule != "r1" || m.Routing.EventID != routed.ID ||
		m.From.Address != "buerger@example.org" || len(m.Parts) != 1 || m.DeliveredVia[0] != "queue" || m.Seq != 1 ||
		m.Report == nil || !m.Report.WrittenFormSatisfied {
		t.Fatalf("message: %+v", m)
	}
	if o, _ := GetMessage(ctx, e.db, "ordnungsamt", r1.Stream); o.State != StateNew {
		t.Fatalf("ordnungsamt copy: %+v", o)
	}
	if _, err := GetMessage(ctx, e.db, "sozialamt", r1.Stream); !errors.Is(err, ErrNotFound) {
		t.Fatalf("foreign office: %v", err)
	}
	if later, _ := ListInbox(ctx, e.db, "bauamt", 1); len(later) != 0 {
		t.Fatal("since does not page")
	}
	tri, err := ListTriage(ctx, e.db, 0, false, 0)
	if err != nil || len(tri) != 1 || tri[0].Stream != r2.Stream || tri[0].Kind != "routing" || tri[0].Received == nil || tri[0].Received.Subject != "???" {
		t.Fatalf("triage: %+v %v", tri, err)
	}

	// Acknowledge twice, by two people: the first stands.
	a1, err := Acknowledge(ctx, e.log, gateway.DefaultTenant, r1.Stream, "bauamt", "mueller", "api")
	if err != nil || a1.Existing {
		t.Fatalf("ack: %+v %v", a1, err)
	}
	a2, err := Acknowledge(ctx, e.log, gateway.DefaultTenant, r1.Stream, "bauamt", "schmidt", "imap")
	if err != nil || !a2.Existing || a2.EventID != a1.EventID {
		t.Fatalf("second ack: %+v %v", a2, err)
	}
	if _, err := Acknowledge(ctx, e.log, gateway.DefaultTenant, r1.Stream, "sozialamt", "x", "api"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack in a foreign office: %v", err)
	}
	// Triage assigns by hand; a reply is requested and sent.
	e.follow(t, "triage/post", r2, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "post", Reason: "Bauakte"})
	rq := e.follow(t, "reply", routed, &gateway.ReplyRequested{ReplyID: "rep-1", Office: "bauamt", Author: "mueller",
		Channel: gateway.ChannelSMTP, To: gateway.Address{Address: "buerger@example.org"}, Subject: "Re: Bauantrag"})
	e.follow(t, "sender", rq, &gateway.ReplySent{ReplyID: "rep-1", Channel: gateway.ChannelSMTP, Attempt: 1})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	m, _ = GetMessage(ctx, e.db, "bauamt", r1.Stream)
	if m.State != StateAcknowledged || m.AcknowledgedBy != "mueller" || m.AcknowledgedVia != "api" || m.AcknowledgedAt == nil {
		t.Fatalf("after ack: %+v", m)
	}
	if reps, _ := ListReplies(ctx, e.db, "bauamt", r1.Stream); len(reps) != 1 || reps[0].State != "sent" || reps[0].Attempts != 1 {
		t.Fatalf("replies: %+v", reps)
	}
	if tri, _ := ListTriage(ctx, e.db, 0, false, 0); len(tri) != 0 {
		t.Fatalf("assigned item still open: %+v", tri)
	}
	if it, _ := GetTriage(ctx, e.db, r2.Stream); it.State != "assigned" || it.AssignedBy != "post" || it.AssignedTo != "bauamt" {
		t.Fatalf("triage item: %+v", it)
	}
	if msgs, _ := ListInbox(ctx, e.db, "bauamt", 0); len(msgs) != 2 || msgs[1].Routing.DecidedBy != "post" || msgs[1].Seq != 2 {
		t.Fatalf("assigned message not in the queue: %+v", msgs)
	}

	// An answer that fails for good goes to triage.
	rq2 := e.follow(t, "reply2", routed, &gateway.ReplyRequested{ReplyID: "rep-2", Office: "bauamt", Author: "mueller",
		Channel: gateway.ChannelSMTP, To: gateway.Address{Address: "buerger@example.org"}, Subject: "Re: Bauantrag"})
	e.follow(t, "sender", rq2, &gateway.ReplyFailed{ReplyID: "rep-2", Attempt: 8, Error: "550 mailbox unknown", Permanent: true})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if it, err := GetTriage(ctx, e.db, r1.Stream); err != nil || it.Kind != "reply" || it.State != "open" || !strings.Contains(it.Reason, "rep-2") {
		t.Fatalf("failed answer not in triage: %+v %v", it, err)
	}

	// A webhook push that was accepted shows as a delivery path; one that
	// fails for good goes to triage.
	e.follow(t, "officeapi/webhook", routed, &gateway.WebhookDelivered{DeliveryID: "dlv-1", Office: "ordnungsamt", URL: "https://dms.example/hook", Attempt: 2, Status: 204})
	e.follow(t, "officeapi/webhook/retry", routed, &gateway.WebhookFailed{DeliveryID: "dlv-2", Office: "bauamt", URL: "https://akte.example/hook", Attempt: 8, Status: 500, Error: "giving up after 8 attempts: answered 500"})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if m, err := GetMessage(ctx, e.db, "ordnungsamt", r1.Stream); err != nil || !contains(m.DeliveredVia, "webhook") || m.State != StateDelivered {
		t.Fatalf("webhook delivery not shown: %+v %v", m.DeliveredVia, err)
	}
	if it, err := GetTriage(ctx, e.db, r1.Stream); err != nil || it.Kind != "webhook" || it.State != "open" || !strings.Contains(it.Reason, "https://akte.example/hook") {
		t.Fatalf("failed webhook not in triage: %+v %v", it, err)
	}

	before, err := Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run.Rebuild(ctx, in); err != nil {
		t.Fatal(err)
	}
	if empty, _ := Dump(ctx, e.db); empty != "" {
		t.Fatalf("rebuild left rows:\n%s", empty)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	after, _ := Dump(ctx, e.db)
	if after != before || !strings.Contains(before, "acknowledged") {
		t.Fatalf("rebuilt inbox differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestLookup(t *testing.T) {
	d, _ := testDirectory(t)
	ctx := context.Background()
	for _, tc := range []struct {
		user    string
		role    Role
		offices []string
	}{
		{"mueller", RoleOffice, []string{"bauamt", "ordnungsamt"}},
		{"post", RoleMailroom, nil},
		{"root", RoleAdmin, nil}, // a token-only user still is a configured one
		{"pruefer", RoleAuditor, nil},
	} {
		p, err := d.Lookup(ctx, tc.user)
		if err != nil || p.User != tc.user || p.Role != tc.role || !slices.Equal(p.Offices, tc.offices) {
			t.Errorf("Lookup(%q) = %+v, %v; want role %s, offices %v", tc.user, p, err, tc.role, tc.offices)
		}
	}
	for _, user := range []string{"", "mallory", "MUELLER", strings.Repeat("x", 200)} {
		if _, err := d.Lookup(ctx, user); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Lookup(%q): %v, want ErrUnauthenticated", user, err)
		}
	}
}
