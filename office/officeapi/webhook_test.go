package officeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

var hookSecret = []byte("0123456789abcdef-secret")

// receiver is a webhook endpoint that answers each POST with the next
// scripted status (the last one repeats) and keeps what it was sent.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []delivery
}

type delivery struct {
	id, event, signature string
	body                 []byte
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Get(DeliveryHeader), req.Header.Get(EventHeader), req.Header.Get(SignatureHeader), b})
		code := r.script[min(len(r.got), len(r.script))-1]
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var hookPolicy = WebhookConfig{MaxAttempts: 4, FirstBackoff: time.Minute, MaxBackoff: 10 * time.Minute, PollInterval: time.Hour}

func hookDirectory(t *testing.T, urls ...string) *offices.Directory {
	t.Helper()
	var hooks []offices.Webhook
	for _, u := range urls {
		hooks = append(hooks, offices.Webhook{URL: u, Secret: hookSecret})
	}
	dir, err := offices.NewDirectory(offices.Config{Offices: []offices.Office{{ID: "a", Webhooks: hooks}}})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// webhookEvents renders the log's webhook events in order as
// "attempted|delivered|failed <attempt> <status> <url index>".
func webhookEvents(t *testing.T, l eventstore.Log, urls ...string) []string {
	t.Helper()
	evs, err := l.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	idx := func(u string) int {
		for i, x := range urls {
			if x == u {
				return i
			}
		}
		return -1
	}
	reg := gateway.NewRegistry()
	var out []string
	for i := range evs {
		if !strings.HasPrefix(evs[i].Type, "Webhook") {
			continue
		}
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		switch m := p.(type) {
		case *gateway.WebhookAttempted:
			out = append(out, fmt.Sprintf("attempted %d %d %d", m.Attempt, m.Status, idx(m.URL)))
		case *gateway.WebhookDelivered:
			out = append(out, fmt.Sprintf("delivered %d %d %d", m.Attempt, m.Status, idx(m.URL)))
		case *gateway.WebhookFailed:
			out = append(out, fmt.Sprintf("failed %d %d %d", m.Attempt, m.Status, idx(m.URL)))
		}
	}
	return out
}

// runHandler runs h in a real pipeline over the whole log until the log
// holds want webhook events, then stops it.
func runHandler(t *testing.T, l eventstore.Log, state string, h pipeline.Handler, want int, urls ...string) {
	t.Helper()
	db := gatewaytest.OpenState(t, state)
	off, err := pubsub.NewSQLOffsets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Log: l, Offsets: off, Registry: gateway.NewRegistry(), MaxRetries: 1, RetryInterval: time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for len(webhookEvents(t, l, urls...)) < want {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline recorded %v, want %d webhook events", webhookEvents(t, l, urls...), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routedMessage records a received message routed to office a.
func routedMessage(t *testing.T, l eventstore.Log, key string, at time.Time) *eventstore.Event {
	t.Helper()
	ctx := context.Background()
	rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, key), &gateway.MessageReceived{Channel: gateway.ChannelSMTP,
		From: gateway.Address{Address: "buerger@example.org"}, Subject: "Bauantrag " + key, ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	routed, err := gateway.Follow("routing", &rec, 0, &gateway.MessageRouted{Offices: []string{"a"}, Rule: "r1", DecidedBy: "rules"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, rec, routed); err != nil {
		t.Fatal(err)
	}
	return &routed
}

func openLog(t *testing.T, path string) *sqlitelog.Log {
	t.Helper()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: path, Signer: gatewaytest.Key})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func retryRound(t *testing.T, l eventstore.Log, db string, w *Webhooks) {
	t.Helper()
	st := gatewaytest.OpenState(t, db)
	if err := w.RetryDue(context.Background(), &projection.Runner{Log: l, DB: st, Registry: gateway.NewRegistry()}); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookRetryAfterRestart: the first attempt fails, the gateway
// stops, and the gateway started again retries at the time the log names —
// not before — with the same delivery id and a valid signature each time,
// until the receiver accepts.
func TestWebhookRetryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	rcv := newReceiver(t, 503, 503, 204)
	logPath := filepath.Join(dir, "log.db")
	l := openLog(t, logPath)
	routedMessage(t, l, "1", clk.Now())
	w, err := NewWebhooks(hookPolicy, WebhookDeps{Log: l, Directory: hookDirectory(t, rcv.srv.URL), State: gatewaytest.OpenState(t, filepath.Join(dir, "state1.db")), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	runHandler(t, l, filepath.Join(dir, "state1.db"), w.Handler(), 1, rcv.srv.URL)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Started again, with a state database that has never seen the log:
	// the schedule comes from the log alone.
	l = openLog(t, logPath)
	defer l.Close()
	state := filepath.Join(dir, "state2.db")
	w, err = NewWebhooks(hookPolicy, WebhookDeps{Log: l, Directory: hookDirectory(t, rcv.srv.URL), State: gatewaytest.OpenState(t, state), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    []string
	}{
		{0, []string{"attempted 1 503 0"}},                // not due yet
		{59 * time.Second, []string{"attempted 1 503 0"}}, // a second early
		{time.Second, []string{"attempted 1 503 0", "attempted 2 503 0"}},
		{time.Minute, []string{"attempted 1 503 0", "attempted 2 503 0"}}, // the second backoff is 2 minutes
		{time.Minute, []string{"attempted 1 503 0", "attempted 2 503 0", "delivered 3 204 0"}},
		{time.Hour, []string{"attempted 1 503 0", "attempted 2 503 0", "delivered 3 204 0"}}, // nothing more to do
	}
	for i, s := range steps {
		clk.advance(s.advance)
		retryRound(t, l, state, w)
		if got := webhookEvents(t, l, rcv.srv.URL); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: log has %v, want %v", i, got, s.want)
		}
	}
	got := rcv.deliveries()
	if len(got) != 3 {
		t.Fatalf("receiver got %d deliveries, want 3", len(got))
	}
	var wp WebhookPayload
	if err := json.Unmarshal(got[0].body, &wp); err != nil {
		t.Fatal(err)
	}
	if wp.DeliveryID == "" || wp.Office != "a" || wp.Message.Subject != "Bauantrag 1" || wp.Routing.Rule != "r1" {
		t.Fatalf("payload %+v", wp)
	}
	at := []time.Time{clk.Now().Add(-time.Hour - 3*time.Minute), clk.Now().Add(-time.Hour - 2*time.Minute), clk.Now().Add(-time.Hour)}
	for i, d := range got {
		if d.id != wp.DeliveryID || d.event != "message.routed" || string(d.body) != string(got[0].body) {
			t.Errorf("delivery %d: id %q event %q, body changed %v; want the same delivery %q", i, d.id, d.event, string(d.body) != string(got[0].body), wp.DeliveryID)
		}
		if err := VerifySignature(hookSecret, d.signature, d.body, at[i], time.Second); err != nil {
			t.Errorf("delivery %d signed for another time: %v (%s)", i, err, d.signature)
		}
	}
	st, err := outbox.GetStatus(context.Background(), gatewaytest.OpenState(t, state), WebhookKind, gateway.DefaultTenant, wp.DeliveryID)
	if err != nil || st.State != outbox.StateDone || st.Attempt != 3 {
		t.Fatalf("schedule: %+v %v", st, err)
	}

	// Replaying the pipeline from the start pushes nothing again.
	runHandler(t, l, filepath.Join(dir, "state3.db"), w.Handler(), 3, rcv.srv.URL)
	time.Sleep(200 * time.Millisecond)
	if n := len(rcv.deliveries()); n != 3 {
		t.Fatalf("replay pushed again: %d deliveries", n)
	}
}

func TestWebhookSignature(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	body := []byte(`{"deliveryId":"dlv-1"}`)
	sig := Sign(hookSecret, now, body)
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"valid", hookSecret, sig, body, now.Add(time.Minute), nil},
		{"wrong secret", []byte("other-secret-0123456"), sig, body, now, ErrBadSignature},
		{"altered body", hookSecret, sig, append(body[:len(body):len(body)], ' '), now, ErrBadSignature},
		{"replayed later", hookSecret, sig, body, now.Add(time.Hour), ErrStale},
		{"no mac", hookSecret, "t=1772355600", body, now, ErrBadSignature},
		{"garbage", hookSecret, "v1=zz,t=x", body, now, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifySignature(tt.secret, tt.header, tt.body, tt.at, 0); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// follow appends what a handler returned, numbered as the pipeline does.
func follow(t *testing.T, l eventstore.Log, handler string, cause *eventstore.Event, out []gateway.Payload) {
	t.Helper()
	var evs []eventstore.Event
	for i, p := range out {
		e, err := gateway.Follow(handler, cause, i, p)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if _, err := l.Append(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookFailsToTriage: of two webhooks, one accepts and one always
// fails; the failing one is retried until the attempts are spent, then the
// mailroom sees it in the triage list, while the message stays in the
// office's queue and shows as delivered by webhook.
func TestWebhookFailsToTriage(t *testing.T) {
	e := newTestEnv(t)
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	good, dead := newReceiver(t, 200), newReceiver(t, 500)
	urls := []string{good.srv.URL, dead.srv.URL}
	w, err := NewWebhooks(WebhookConfig{MaxAttempts: 2, FirstBackoff: time.Minute, MaxBackoff: time.Hour, PollInterval: time.Hour},
		WebhookDeps{Log: e.log, Directory: hookDirectory(t, urls...), State: e.db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ma := e.seed("ma", "a", "a.pdf")
	evs, _ := e.log.ReadStream(context.Background(), gateway.DefaultTenant, ma.Stream)
	routed := &evs[len(evs)-1]
	p, _ := gateway.NewRegistry().Decode(routed)
	h := w.Handler()
	out, err := h.Handle(context.Background(), routed, p)
	if err != nil {
		t.Fatal(err)
	}
	follow(t, e.log, h.Name, routed, out)
	if again, err := h.Handle(context.Background(), routed, p); err != nil || len(again) != 0 {
		t.Fatalf("handled again: %v %v", again, err)
	}
	clk.advance(time.Minute)
	if err := w.RetryDue(context.Background(), e.runner); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if err := w.RetryDue(context.Background(), e.runner); err != nil {
		t.Fatal(err)
	}
	want := []string{"delivered 1 200 0", "attempted 1 500 1", "failed 2 500 1"}
	if got := webhookEvents(t, e.log, urls...); !reflect.DeepEqual(got, want) {
		t.Fatalf("log has %v, want %v", got, want)
	}
	if n, m := len(good.deliveries()), len(dead.deliveries()); n != 1 || m != 2 {
		t.Fatalf("deliveries: good %d, dead %d", n, m)
	}
	e.catchUp()
	var tl triageList
	if err := json.Unmarshal([]byte(readBody(t, e.do(creds{user: "post", pw: pwM}, "GET", "/triage", ""))), &tl); err != nil {
		t.Fatal(err)
	}
	if len(tl.Items) != 1 || tl.Items[0].Kind != "webhook" || tl.Items[0].Stream != ma.Stream ||
		!strings.Contains(tl.Items[0].Reason, dead.srv.URL) || !strings.Contains(tl.Items[0].Reason, "giving up after 2 attempts") {
		t.Fatalf("triage: %+v", tl.Items)
	}
	m, err := offices.GetMessage(context.Background(), e.db, "a", ma.Stream)
	if err != nil || !reflect.DeepEqual(m.DeliveredVia, []string{"queue", "webhook"}) && !reflect.DeepEqual(m.DeliveredVia, []string{"webhook"}) {
		t.Fatalf("message in the queue: %+v %v", m.DeliveredVia, err)
	}
}

// TestWebhookRemovedFailsPermanently: a webhook taken out of the
// configuration between attempts is not retried again and again.
func TestWebhookRemovedFailsPermanently(t *testing.T) {
	g := gatewaytest.New(t)
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	rcv := newReceiver(t, 503)
	routed := routedMessage(t, g.Log, "2", clk.Now())
	p, _ := gateway.NewRegistry().Decode(routed)
	w, err := NewWebhooks(hookPolicy, WebhookDeps{Log: g.Log, Directory: hookDirectory(t, rcv.srv.URL), State: g.State, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Handler().Handle(context.Background(), routed, p)
	if err != nil {
		t.Fatal(err)
	}
	follow(t, g.Log, WebhookHandlerName, routed, out)
	w, err = NewWebhooks(hookPolicy, WebhookDeps{Log: g.Log, Directory: hookDirectory(t), State: g.State, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if err := w.RetryDue(context.Background(), &projection.Runner{Log: g.Log, DB: g.State, Registry: gateway.NewRegistry()}); err != nil {
		t.Fatal(err)
	}
	want := []string{"attempted 1 503 0", "failed 2 0 0"}
	if got := webhookEvents(t, g.Log, rcv.srv.URL); !reflect.DeepEqual(got, want) {
		t.Fatalf("log has %v, want %v", got, want)
	}
	if n := len(rcv.deliveries()); n != 1 {
		t.Fatalf("removed webhook called again: %d deliveries", n)
	}
}

// TestWebhookLegacyDeliveryNotRepeated: a log written before webhooks were
// scheduled records an accepted push only as MessageDelivered{via:
// webhook}; handling its MessageRouted again pushes nothing.
func TestWebhookLegacyDeliveryNotRepeated(t *testing.T) {
	g := gatewaytest.New(t)
	rcv := newReceiver(t, 204)
	routed := routedMessage(t, g.Log, "3", time.Now())
	follow(t, g.Log, WebhookHandlerName, routed, []gateway.Payload{&gateway.MessageDelivered{Office: "a", Via: "webhook", Target: rcv.srv.URL}})
	p, _ := gateway.NewRegistry().Decode(routed)
	w, err := NewWebhooks(hookPolicy, WebhookDeps{Log: g.Log, Directory: hookDirectory(t, rcv.srv.URL), State: g.State})
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Handler().Handle(context.Background(), routed, p)
	if err != nil || len(out) != 0 || len(rcv.deliveries()) != 0 {
		t.Fatalf("pushed again: %v %v, %d deliveries", out, err, len(rcv.deliveries()))
	}
}
