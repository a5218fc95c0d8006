package replies_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// testPolicy answers e-mail (SMTP and IMAP) by e-mail, De-Mail, EGVP and
// the portal on their own channels without an outbound, and the API not.
func testPolicy(t *testing.T) *replies.Policy {
	t.Helper()
	p, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP:   {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelIMAP:   {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelDeMail: {Channel: gateway.ChannelDeMail, Address: replies.SenderAddress},
		gateway.ChannelEGVP:   {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress},
		gateway.ChannelPortal: {Channel: gateway.ChannelPortal, Address: replies.SenderAddress},
		gateway.ChannelAPI:    {Reason: "handed in through the API"},
	}, []gateway.Channel{gateway.ChannelSMTP})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewPolicyRefusesRouteWithoutAddress(t *testing.T) {
	_, err := replies.NewPolicy(map[gateway.Channel]replies.Route{"fax": {Channel: "fax"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "fax") {
		t.Fatalf("err = %v, want a refusal naming the channel", err)
	}
}

func TestPlan(t *testing.T) {
	policy := testPolicy(t)
	from := gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}
	tests := []struct {
		name    string
		in      gateway.MessageReceived
		ch      gateway.Channel
		to      string
		noOut   bool
		wantErr bool
	}{
		{"smtp answers by e-mail", gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: from}, gateway.ChannelSMTP, "buerger@example.org", false, false},
		{"imap answers by e-mail", gateway.MessageReceived{Channel: gateway.ChannelIMAP, From: from}, gateway.ChannelSMTP, "buerger@example.org", false, false},
		{"reply-to wins", gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: from,
			Metadata: map[string]string{replies.ReplyToKey: "Kanzlei <post@kanzlei.example>"}}, gateway.ChannelSMTP, "post@kanzlei.example", false, false},
		{"broken reply-to falls back to from", gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: from,
			Metadata: map[string]string{replies.ReplyToKey: "x@y\r\nBcc: evil@example"}}, gateway.ChannelSMTP, "buerger@example.org", false, false},
		{"no sender", gateway.MessageReceived{Channel: gateway.ChannelSMTP}, "", "", false, true},
		{"sender with line break", gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "a@b\nBcc: c@d"}}, "", "", false, true},
		{"sender without domain", gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "postmaster"}}, "", "", false, true},
		{"demail has no outbound yet", gateway.MessageReceived{Channel: gateway.ChannelDeMail, From: gateway.Address{Address: "b@x.de-mail.de"}}, gateway.ChannelDeMail, "b@x.de-mail.de", true, true},
		{"egvp has no outbound yet", gateway.MessageReceived{Channel: gateway.ChannelEGVP, From: gateway.Address{Address: "DE.Justiz.1.2"}}, gateway.ChannelEGVP, "DE.Justiz.1.2", true, true},
		{"portal has no outbound yet", gateway.MessageReceived{Channel: gateway.ChannelPortal, From: gateway.Address{Address: "postbox-1"}}, gateway.ChannelPortal, "postbox-1", true, true},
		{"unknown channel", gateway.MessageReceived{Channel: "fax", From: from}, "", "", false, true},
		{"api has no reply channel", gateway.MessageReceived{Channel: gateway.ChannelAPI, From: from}, gateway.ChannelAPI, "buerger@example.org", true, true},
		{"demail without sender", gateway.MessageReceived{Channel: gateway.ChannelDeMail}, "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, to, err := policy.Plan(&tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if errors.Is(err, replies.ErrNoOutbound) != tt.noOut {
				t.Fatalf("err = %v, want ErrNoOutbound %v", err, tt.noOut)
			}
			if ch != tt.ch || to.Address != tt.to {
				t.Fatalf("planned %s %q, want %s %q", ch, to.Address, tt.ch, tt.to)
			}
		})
	}
}

// fakeOutbound answers each Send with the next scripted error (nil: sent).
type fakeOutbound struct {
	mu     sync.Mutex
	script []error
	calls  []string
}

func (f *fakeOutbound) Send(ctx context.Context, r *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.ReplyID)
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	if err != nil {
		return replies.SentInfo{}, err
	}
	return replies.SentInfo{ChannelMessageID: "<" + r.ReplyID + "@test>", Response: "250 ok", Sent: sentRef(r.ReplyID)}, nil
}

func (f *fakeOutbound) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type env struct {
	log   *sqlitelog.Log
	state *sql.DB
	dir   string
	now   time.Time
	mu    sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	g := gatewaytest.New(t)
	return &env{dir: g.Dir, log: g.Log, state: g.State, now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// request records a received e-mail and an office's reply to it.
func (e *env) request(t *testing.T, key string, ch gateway.Channel) string {
	t.Helper()
	ctx := context.Background()
	in := &gateway.Intake{Log: e.log}
	rc, err := in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, key), &gateway.MessageReceived{Channel: gateway.ChannelSMTP,
		From: gateway.Address{Address: "buerger@example.org"}, Subject: "Antrag " + key, ReceivedAt: e.clock()})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.Encode(gateway.Meta{ID: "req-" + key, Stream: rc.Stream, CorrelationID: rc.Stream, CausationID: rc.EventID},
		&gateway.ReplyRequested{ReplyID: "reply-" + key, Office: "demo", Author: "sb1", Channel: ch,
			To: gateway.Address{Address: "buerger@example.org"}, Subject: "Re: Antrag " + key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	return "reply-" + key
}

func (e *env) sender(t *testing.T, out replies.Outbound) *replies.Sender {
	s, err := replies.New(replies.Config{MaxAttempts: 3, FirstBackoff: time.Minute, MaxBackoff: 10 * time.Minute},
		replies.Deps{Log: e.log, Registry: gateway.NewRegistry(), State: e.state,
			Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelSMTP: out}, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runPipeline(t *testing.T, e *env, h pipeline.Handler) context.CancelFunc {
	t.Helper()
	off, err := pubsub.NewSQLOffsets(context.Background(), e.state)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Log: e.log, Offsets: off, Registry: gateway.NewRegistry(), MaxRetries: 1, RetryInterval: time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// outcomes returns the reply events in log order, as "sent n" / "failed n [permanent]".
func outcomes(t *testing.T, l eventstore.Log, replyID string) []string {
	t.Helper()
	evs, err := l.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	var out []string
	for i := range evs {
		if evs[i].Type != "ReplySent" && evs[i].Type != "ReplyFailed" {
			continue
		}
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		switch m := p.(type) {
		case *gateway.ReplySent:
			if m.ReplyID == replyID {
				out = append(out, "sent "+itoa(m.Attempt))
				if m.Sent != sentRef(replyID) {
					t.Errorf("ReplySent.Sent %v, want the outbound's %v", m.Sent, sentRef(replyID))
				}
			}
		case *gateway.ReplyFailed:
			if m.ReplyID == replyID {
				s := "failed " + itoa(m.Attempt)
				if m.Permanent {
					s += " permanent"
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// sentRef stands for the bytes the test outbound "sent" for a reply.
func sentRef(replyID string) blob.Ref {
	return blob.Ref{SHA256: fmt.Sprintf("%064x", len(replyID)), Size: int64(len(replyID))}
}

func itoa(n int) string { return string(rune('0' + n)) }

func waitOutcomes(t *testing.T, l eventstore.Log, replyID string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := outcomes(t, l, replyID)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func retryRound(t *testing.T, e *env, s *replies.Sender) {
	t.Helper()
	r := &projection.Runner{Log: e.log, DB: e.state, Registry: gateway.NewRegistry()}
	if err := s.RetryDue(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestSentFirstTime(t *testing.T) {
	e := newEnv(t)
	out := &fakeOutbound{}
	id := e.request(t, "1", gateway.ChannelSMTP)
	runPipeline(t, e, e.sender(t, out).Handler())
	if got := waitOutcomes(t, e.log, id, 1); !reflect.DeepEqual(got, []string{"sent 1"}) {
		t.Fatalf("outcomes %v", got)
	}
}

func TestRetriesUntilSentAndSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	out := &fakeOutbound{script: []error{errors.New("421 try later"), errors.New("connection refused")}}
	id := e.request(t, "2", gateway.ChannelSMTP)
	stop := runPipeline(t, e, e.sender(t, out).Handler())
	if got := waitOutcomes(t, e.log, id, 1); !reflect.DeepEqual(got, []string{"failed 1"}) {
		t.Fatalf("outcomes %v", got)
	}
	stop()

	s := e.sender(t, out)
	retryRound(t, e, s) // not due yet
	if n := out.count(); n != 1 {
		t.Fatalf("sent %d times before the retry was due", n)
	}
	e.advance(time.Minute)
	retryRound(t, e, s)
	if got := outcomes(t, e.log, id); !reflect.DeepEqual(got, []string{"failed 1", "failed 2"}) {
		t.Fatalf("outcomes %v", got)
	}

	// A restart with a fresh state database: the schedule is rebuilt from the log.
	e.state = gatewaytest.OpenState(t, filepath.Join(e.dir, "state2.db"))
	s = e.sender(t, out)
	e.advance(90 * time.Second) // second backoff is 2 minutes
	retryRound(t, e, s)
	if n := out.count(); n != 2 {
		t.Fatalf("sent %d times before the second retry was due", n)
	}
	e.advance(30 * time.Second)
	retryRound(t, e, s)
	retryRound(t, e, s) // nothing more to do
	if got := outcomes(t, e.log, id); !reflect.DeepEqual(got, []string{"failed 1", "failed 2", "sent 3"}) {
		t.Fatalf("outcomes %v", got)
	}
	st, err := outbox.GetStatus(context.Background(), e.state, replies.Kind, gateway.DefaultTenant, id)
	if err != nil || st.State != outbox.StateDone || st.Attempt != 3 || st.Stream == "" {
		t.Fatalf("status %+v, %v", st, err)
	}
	// Replaying the pipeline from scratch sends nothing again.
	runPipeline(t, e, e.sender(t, out).Handler())
	time.Sleep(300 * time.Millisecond)
	if n := out.count(); n != 3 {
		t.Fatalf("replay sent again: %d sends", n)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	temp := errors.New("451 greylisted")
	out := &fakeOutbound{script: []error{temp, temp, temp, temp}}
	id := e.request(t, "3", gateway.ChannelSMTP)
	runPipeline(t, e, e.sender(t, out).Handler())
	waitOutcomes(t, e.log, id, 1)
	s := e.sender(t, out)
	for range 5 {
		e.advance(time.Hour)
		retryRound(t, e, s)
	}
	want := []string{"failed 1", "failed 2", "failed 3 permanent"}
	if got := outcomes(t, e.log, id); !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	st, _ := outbox.GetStatus(context.Background(), e.state, replies.Kind, gateway.DefaultTenant, id)
	if st.State != outbox.StateFailed || st.Attempt != 3 || !strings.Contains(st.LastError, "giving up after 3 attempts") {
		t.Fatalf("status %+v", st)
	}
}

func TestPermanentErrorAndMissingOutbound(t *testing.T) {
	e := newEnv(t)
	out := &fakeOutbound{script: []error{replies.Permanent(errors.New("550 no such user"))}}
	refused := e.request(t, "4", gateway.ChannelSMTP)
	demail := e.request(t, "5", gateway.ChannelDeMail)
	runPipeline(t, e, e.sender(t, out).Handler())
	if got := waitOutcomes(t, e.log, refused, 1); !reflect.DeepEqual(got, []string{"failed 1 permanent"}) {
		t.Fatalf("refused: %v", got)
	}
	if got := waitOutcomes(t, e.log, demail, 1); !reflect.DeepEqual(got, []string{"failed 1 permanent"}) {
		t.Fatalf("demail: %v", got)
	}
	if n := out.count(); n != 1 {
		t.Fatalf("outbound called %d times, want 1 (de-mail has no outbound)", n)
	}
}

func TestScheduleRebuildIsIdentical(t *testing.T) {
	e := newEnv(t)
	out := &fakeOutbound{script: []error{errors.New("temp"), replies.Permanent(errors.New("perm"))}}
	for _, k := range []string{"a", "b", "c"} {
		e.request(t, k, gateway.ChannelSMTP)
	}
	runPipeline(t, e, e.sender(t, out).Handler())
	waitOutcomes(t, e.log, "reply-c", 1)
	ctx := context.Background()
	r := &projection.Runner{Log: e.log, DB: e.state, Registry: gateway.NewRegistry()}
	sched := e.sender(t, out).Schedule()
	if err := r.CatchUp(ctx, sched); err != nil {
		t.Fatal(err)
	}
	before, _ := outbox.Dump(ctx, e.state, replies.Kind)
	if len(before) != 3 {
		t.Fatalf("schedule has %d rows", len(before))
	}
	if err := r.Rebuild(ctx, sched); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx, sched); err != nil {
		t.Fatal(err)
	}
	after, _ := outbox.Dump(ctx, e.state, replies.Kind)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("rebuild differs:\n%+v\n%+v", before, after)
	}
}

func TestOfficeCopyID(t *testing.T) {
	id := replies.OfficeCopyID("bauamt", "msg-abc")
	if office, stream, ok := replies.ParseOfficeCopyID(id); !ok || office != "bauamt" || stream != "msg-abc" {
		t.Fatalf("round trip of %s: %s %s %v", id, office, stream, ok)
	}
	for _, bad := range []string{"", "<>", "<a@b>", "<msg@bauamt.poststelle.invalid", "<@bauamt.poststelle.invalid>",
		"<msg@.poststelle.invalid>", "<m sg@bauamt.poststelle.invalid>", "<a@b@bauamt.poststelle.invalid>"} {
		if _, _, ok := replies.ParseOfficeCopyID(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestRetriesOnlyOwnedStreams checks that a sender retries only the answers
// of streams its process owns: with several gateways each due retry has one
// owner, and a second sender that does not own the stream leaves it alone.
func TestRetriesOnlyOwnedStreams(t *testing.T) {
	e := newEnv(t)
	out := &fakeOutbound{script: []error{errors.New("421 try later")}}
	id := e.request(t, "owned", gateway.ChannelSMTP)
	stop := runPipeline(t, e, e.sender(t, out).Handler())
	if got := waitOutcomes(t, e.log, id, 1); !reflect.DeepEqual(got, []string{"failed 1"}) {
		t.Fatalf("outcomes %v", got)
	}
	stop()
	e.advance(time.Minute)
	owner := func(own bool) *replies.Sender {
		s, err := replies.New(replies.Config{MaxAttempts: 3, FirstBackoff: time.Minute, MaxBackoff: 10 * time.Minute},
			replies.Deps{Log: e.log, Registry: gateway.NewRegistry(), State: e.state,
				Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelSMTP: out}, Now: e.clock,
				Owns: func(string, string) bool { return own }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	retryRound(t, e, owner(false))
	if n := out.count(); n != 1 {
		t.Fatalf("a sender that does not own the stream sent: %d attempts", n)
	}
	retryRound(t, e, owner(true))
	if got := outcomes(t, e.log, id); !reflect.DeepEqual(got, []string{"failed 1", "sent 2"}) {
		t.Fatalf("outcomes %v", got)
	}
}
