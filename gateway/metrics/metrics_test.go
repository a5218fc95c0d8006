package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// appendMessage records one message's history: received at t0, verified,
// routed and delivered one and three seconds later.
func appendMessage(t *testing.T, l eventstore.Log, key string, t0 time.Time, ch gateway.Channel) {
	t.Helper()
	ctx := context.Background()
	recv, err := gateway.NewReceived(gateway.DefaultTenant, key, &gateway.MessageReceived{Channel: ch, ReceivedAt: t0,
		From: gateway.Address{Address: "buerger@example.org"}, Raw: blob.Ref{SHA256: strings.Repeat("a", 64), Size: 1234}})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(n int, p gateway.Payload, at time.Time) eventstore.Event {
		e, err := gateway.Follow("test", &recv, n, p)
		if err != nil {
			t.Fatal(err)
		}
		e.RecordedAt = at
		return e
	}
	events := []eventstore.Event{recv,
		follow(1, &gateway.SignaturesVerified{Signatures: []gateway.SignatureSummary{{Part: "1", Format: "PAdES", Indication: "TOTAL_PASSED"}},
			WrittenFormSatisfied: true}, t0),
		follow(2, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"}, t0),
		follow(3, &gateway.MessageDelivered{Office: "bauamt", Via: "queue"}, t0),
		follow(4, &gateway.ReplySent{ReplyID: "r1", Channel: ch}, t0),
		follow(5, &gateway.ReplyFailed{ReplyID: "r2", Permanent: true}, t0),
	}
	if _, err := l.Append(ctx, events...); err != nil {
		t.Fatal(err)
	}
}

func TestObserverCounts(t *testing.T) {
	env := gatewaytest.New(t)
	m := New()
	o := &Observer{Log: env.Log, Registry: gateway.NewRegistry(), Metrics: m}
	ctx := context.Background()
	// Events before the observer starts are history, not this process's.
	appendMessage(t, env.Log, "before", time.Now(), gateway.ChannelSMTP)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.intake.WithLabelValues("smtp")); got != 0 {
		t.Fatalf("intake counted %v events from before the start", got)
	}
	appendMessage(t, env.Log, "m1", time.Now(), gateway.ChannelSMTP)
	appendMessage(t, env.Log, "m2", time.Now(), gateway.ChannelDeMail)
	appendMessage(t, env.Log, "m3", time.Now(), gateway.ChannelSMTP)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"intake smtp", testutil.ToFloat64(m.intake.WithLabelValues("smtp")), 2},
		{"intake demail", testutil.ToFloat64(m.intake.WithLabelValues("demail")), 1},
		{"intake bytes smtp", testutil.ToFloat64(m.intakeBytes.WithLabelValues("smtp")), 2 * 1234},
		{"signatures passed", testutil.ToFloat64(m.signatures.WithLabelValues("TOTAL_PASSED", "PAdES")), 3},
		{"written form", testutil.ToFloat64(m.writtenForm.WithLabelValues("true")), 3},
		{"routed by rules", testutil.ToFloat64(m.routed.WithLabelValues("rules")), 3},
		{"delivered to queues", testutil.ToFloat64(m.deliveries.WithLabelValues("queue")), 3},
		{"answers sent smtp", testutil.ToFloat64(m.answers.WithLabelValues("sent", "smtp")), 2},
		{"answers failed", testutil.ToFloat64(m.answers.WithLabelValues("failed_permanently", "")), 3},
		{"received events", testutil.ToFloat64(m.events.WithLabelValues("MessageReceived")), 3},
		{"observed offset", testutil.ToFloat64(m.observed.WithLabelValues("0")), 24},
		{"delivery lag samples", float64(testutil.CollectAndCount(m.deliveryLag)), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	body := scrape(t, m.Handler())
	for _, want := range []string{"poststelle_delivery_lag_seconds_count 3", `poststelle_intake_messages_total{channel="smtp"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestPositionsAndReadiness(t *testing.T) {
	env := gatewaytest.New(t)
	ctx := context.Background()
	appendMessage(t, env.Log, "m1", time.Now(), gateway.ChannelSMTP)
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(ctx, projection.Messages{}); err != nil {
		t.Fatal(err)
	}
	m := New()
	m.Registry().MustRegister(&Positions{Log: env.Log, DB: env.State})
	r := &Readiness{Log: env.Log, DB: env.State, Blobs: env.Blobs, Projections: []string{projection.Messages{}.Name()}}
	if err := r.Check(ctx); err == nil {
		t.Fatal("ready before Start")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(ctx); err == nil || !strings.Contains(err.Error(), "partition 0 at 0 of 6") {
		t.Fatalf("ready before the projection ran: %v", err)
	}
	body := scrape(t, m.Handler())
	for _, want := range []string{`poststelle_log_end_offset{partition="0"} 6`} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	// Run the projection until it has caught up.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx, projection.Messages{}) }()
	deadline := time.Now().Add(20 * time.Second)
	for r.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the projection ran: %v", r.Check(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	body = scrape(t, m.Handler())
	name := projection.Messages{}.Name()
	if want := `poststelle_projection_lag_events{partition="0",projection="` + name + `"} 0`; !strings.Contains(body, want) {
		t.Errorf("exposition lacks %q:\n%s", want, body)
	}
	// More events: the projection is behind, the node stays ready (it
	// caught up once), and the lag shows.
	appendMessage(t, env.Log, "m2", time.Now(), gateway.ChannelSMTP)
	body = scrape(t, m.Handler())
	if want := `poststelle_projection_lag_events{partition="0",projection="` + name + `"} 6`; !strings.Contains(body, want) {
		t.Errorf("exposition lacks %q:\n%s", want, body)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatalf("unready after catching up once: %v", err)
	}
	// An unreachable store makes the node unready.
	r.Blobs = failingBlobs{r.Blobs}
	if err := r.Check(ctx); err == nil || !strings.Contains(err.Error(), "blob store") {
		t.Fatalf("ready with an unreachable blob store: %v", err)
	}
}

type failingBlobs struct{ blob.Backend }

func (failingBlobs) Ping(context.Context) error { return errors.New("connection refused") }

func TestMux(t *testing.T) {
	m := New()
	var ready error = errors.New("catching up")
	mux := m.Mux(func(context.Context) error { return ready })
	for _, c := range []struct {
		path string
		want int
		body string
	}{
		{"/healthz", 200, `"ok"`},
		{"/readyz", 503, `catching up`},
		{"/metrics", 200, "go_goroutines"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.want || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.path, rec.Code, rec.Body.String(), c.want, c.body)
		}
	}
	ready = nil
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz when ready: %d", rec.Code)
	}
}

func TestBlobsTimed(t *testing.T) {
	m := New()
	b := m.Blobs(gatewaytest.New(t).Blobs)
	ctx := context.Background()
	ref, err := b.PutBytes(ctx, []byte("Posteingang"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, ref, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, strings.NewReader("too long"), 3); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatal(err)
	}
	body := scrape(t, m.Handler())
	for _, want := range []string{`poststelle_blob_operation_seconds_count{op="put"} 2`, `poststelle_blob_operation_seconds_count{op="read_all"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(body, "poststelle_blob_errors_total{") {
		t.Error("a refused oversized message counted as a store error")
	}
}

// assigningLog is a log whose subscribers share partitions in groups.
type assigningLog struct {
	eventstore.Log
	groups map[string][]int32
}

func (a assigningLog) Assignments() map[string][]int32 { return a.groups }

func TestConsumerGroupAssignment(t *testing.T) {
	env := gatewaytest.New(t)
	m := New()
	m.Registry().MustRegister(&Positions{Log: assigningLog{env.Log, map[string][]int32{"poststelle.projection/messages": {0, 2}}}, DB: env.State})
	body := scrape(t, m.Handler())
	for _, want := range []string{`poststelle_consumer_group_assignment{group="poststelle.projection/messages",partition="0"} 1`,
		`poststelle_consumer_group_assignment{group="poststelle.projection/messages",partition="2"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(body, `partition="1"} 1`) {
		t.Error("a partition the group does not give this node is listed")
	}
}
