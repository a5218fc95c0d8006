package retention_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// eraser is a blob.Eraser that remembers what it erased; fail makes the
// next erasures fail as a crash or an unreachable key store would, and
// plain names blobs stored before encryption at rest.
type eraser struct {
	mu     sync.Mutex
	erased map[blob.Ref]int
	fail   error
	plain  map[blob.Ref]bool
}

func (e *eraser) Erase(ctx context.Context, ref blob.Ref) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	if e.plain[ref] {
		return blob.ErrNotErasable
	}
	if e.erased == nil {
		e.erased = map[blob.Ref]int{}
	}
	e.erased[ref]++
	return nil
}

func (e *eraser) isErased(ref blob.Ref) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.erased[ref] > 0
}

func (e *eraser) setFail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail = err
}

// checkingEraser can also tell beforehand which blobs it cannot erase.
type checkingEraser struct{ *eraser }

func (e checkingEraser) Erasable(ctx context.Context, ref blob.Ref) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.plain[ref], nil
}

type env struct {
	g      *gatewaytest.Env
	er     *eraser
	svc    *retention.Service
	now    time.Time
	owns   func(tenant, stream string) bool
	cfg    retention.Config
	policy *retention.Policy
	// counted is what the service told its metrics.
	counted counts
}

var received = time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC)

// counts is a retention.Observer that counts what it is told.
type counts struct {
	mu       sync.Mutex
	erasures map[string]int
	blobs    int
	failed   int
}

func (c *counts) Erased(reason string, blobs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.erasures == nil {
		c.erasures = map[string]int{}
	}
	c.erasures[reason]++
	c.blobs += blobs
}

func (c *counts) EraseFailed(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed += n
}

func newEnv(t *testing.T, mutate ...func(*env)) *env {
	t.Helper()
	def := retention.Rule{Period: retention.Period{Years: 1}}
	e := &env{g: gatewaytest.New(t), er: &eraser{}, now: received,
		cfg: retention.Config{Enabled: true, Default: &def, Batch: 10}}
	var err error
	e.policy, err = retention.NewPolicy(e.cfg, map[string]retention.Rule{
		"bauamt": {Period: retention.Period{Years: 10}},
		"kasse":  {Period: retention.Period{Months: 6}, From: retention.FromReceipt}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(e)
	}
	e.rebuildService(t, e.er)
	return e
}

func (e *env) rebuildService(t *testing.T, er blob.Eraser) {
	t.Helper()
	var err error
	e.svc, err = retention.New(e.cfg, retention.Deps{Log: e.g.Log, Registry: gateway.NewRegistry(), State: e.g.State,
		Eraser: er, Policy: e.policy, Now: func() time.Time { return e.now },
		Owns: func(tenant, stream string) bool { return e.owns == nil || e.owns(tenant, stream) }, Metrics: &e.counted})
	if err != nil {
		t.Fatal(err)
	}
}

// message is one received message with its blobs.
type message struct {
	stream   string
	received eventstore.Event
	raw      blob.Ref
	part     blob.Ref
	report   blob.Ref
	token    blob.Ref
}

func (e *env) put(t *testing.T, s string) blob.Ref {
	t.Helper()
	r, err := e.g.Blobs.PutBytes(context.Background(), []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// receive records a message with a part (shared: an attachment other
// messages may carry too), verification reports and a timestamp token,
// routed to offices (none: it stays in triage).
func (e *env) receive(t *testing.T, key, shared string, offices ...string) message {
	t.Helper()
	m := message{raw: e.put(t, "raw "+key), part: e.put(t, shared), report: e.put(t, "report "+key), token: e.put(t, "token "+key)}
	rcv, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, key), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"}, ReceivedAt: received, Raw: m.raw,
		Parts: []gateway.Part{{Path: "1", MediaType: "application/pdf", Blob: m.part, Kind: "attachment"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.received, m.stream = e.append(t, rcv), rcv.Stream
	e.follow(t, "verify", m.received, &gateway.SignaturesVerified{Report: m.report, ValidationTime: received})
	e.follow(t, "timestamp", m.received, &gateway.TimestampApplied{TSA: "tsa", Token: m.token, GenTime: received, Imprint: m.raw.SHA256})
	if len(offices) > 0 {
		e.follow(t, "route", m.received, &gateway.MessageRouted{Offices: offices, DecidedBy: "rules"})
	} else {
		e.follow(t, "route", m.received, &gateway.RoutingFailed{Reason: "no rule matched"})
	}
	return m
}

func (e *env) follow(t *testing.T, handler string, cause eventstore.Event, p gateway.Payload) eventstore.Event {
	t.Helper()
	return e.g.Follow(t, handler, cause, p)
}

func (e *env) append(t *testing.T, ev eventstore.Event) eventstore.Event {
	t.Helper()
	return e.g.Append(t, ev)
}

func (e *env) eraseDue(t *testing.T, want int) {
	t.Helper()
	n, err := e.svc.EraseDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("EraseDue erased %d messages, want %d", n, want)
	}
}

// erasures returns the ContentErased events of a stream.
func (e *env) erasures(t *testing.T, stream string) []*gateway.ContentErased {
	t.Helper()
	return gatewaytest.Payloads[*gateway.ContentErased](t, e.g.Log, gateway.DefaultTenant, stream)
}

func sameRefs(got, want []blob.Ref) bool {
	cmp := func(a, b blob.Ref) int {
		if a.SHA256 < b.SHA256 {
			return -1
		}
		if a.SHA256 > b.SHA256 {
			return 1
		}
		return 0
	}
	return slices.Equal(slices.SortedFunc(slices.Values(got), cmp), slices.SortedFunc(slices.Values(want), cmp))
}

func TestErasedOnceWhenThePeriodEnds(t *testing.T) {
	e := newEnv(t)
	m := e.receive(t, "a", "shared a", "kasse")
	// Six months from 5 March end with 5 September.
	e.now = time.Date(2026, 9, 5, 21, 0, 0, 0, time.UTC)
	e.eraseDue(t, 0)
	e.now = time.Date(2026, 9, 5, 22, 0, 0, 0, time.UTC) // midnight in Berlin
	e.eraseDue(t, 1)
	e.eraseDue(t, 0)
	e.now = e.now.AddDate(1, 0, 0)
	e.eraseDue(t, 0)
	got := e.erasures(t, m.stream)
	if len(got) != 1 {
		t.Fatalf("%d ContentErased events, want 1", len(got))
	}
	ce := got[0]
	if ce.Reason != retention.ReasonExpired || ce.Rule != "office kasse: 6m from receipt" || ce.Office != "kasse" ||
		!ce.RetainUntil.Equal(time.Date(2026, 9, 5, 22, 0, 0, 0, time.UTC)) || ce.Actor != "" || len(ce.Kept) != 0 {
		t.Fatalf("erasure %+v", ce)
	}
	if !sameRefs(ce.Blobs, []blob.Ref{m.raw, m.part, m.report}) {
		t.Fatalf("erased %v, want the raw bytes, the part and the report", ce.Blobs)
	}
	for _, r := range ce.Blobs {
		if !e.er.isErased(r) {
			t.Errorf("blob %s listed as erased but its key stays", r.SHA256)
		}
	}
	if e.er.isErased(m.token) {
		t.Error("the timestamp token was erased; it is evidence, not contents")
	}
	st, err := e.svc.Status(context.Background(), gateway.DefaultTenant, m.stream)
	if err != nil || !st.Erased || st.Erasure == nil || st.Office != "kasse" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if e.counted.erasures[retention.ReasonExpired] != 1 || e.counted.blobs != 3 || e.counted.failed != 0 {
		t.Fatalf("metrics told %v erasures of %d blobs, %d failed; want one expiry of 3 blobs", e.counted.erasures, e.counted.blobs, e.counted.failed)
	}
}

func TestRulesPerOfficeAndDefault(t *testing.T) {
	e := newEnv(t)
	triage := e.receive(t, "triage", "s1")
	bau := e.receive(t, "bau", "s2", "bauamt")
	kept := e.receive(t, "archiv", "s3", "archiv")
	both := e.receive(t, "both", "s4", "kasse", "bauamt")
	// The default: a year from the end of 2026.
	e.now = time.Date(2027, 12, 31, 22, 59, 0, 0, time.UTC)
	e.eraseDue(t, 0)
	e.now = time.Date(2027, 12, 31, 23, 0, 0, 0, time.UTC)
	e.eraseDue(t, 1)
	if len(e.erasures(t, triage.stream)) != 1 {
		t.Fatal("the message never routed was not erased under the default rule")
	}
	e.now = time.Date(2036, 12, 31, 23, 0, 0, 0, time.UTC)
	e.eraseDue(t, 2)
	if got := e.erasures(t, both.stream); len(got) != 1 || got[0].Office != "bauamt" {
		t.Fatalf("a message in two offices is kept as long as the longer period: %+v", got)
	}
	if len(e.erasures(t, bau.stream)) != 1 {
		t.Fatal("bauamt's message was not erased")
	}
	e.now = time.Date(2126, 1, 1, 0, 0, 0, 0, time.UTC)
	e.eraseDue(t, 0)
	if len(e.erasures(t, kept.stream)) != 0 {
		t.Fatal("a message of an office without a retention period was erased")
	}
}

func TestNothingConfiguredErasesNothing(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.cfg.Default = nil
		var err error
		if e.policy, err = retention.NewPolicy(e.cfg, nil); err != nil {
			t.Fatal(err)
		}
	})
	e.receive(t, "a", "s")
	e.receive(t, "b", "t", "bauamt")
	e.now = received.AddDate(99, 0, 0)
	e.eraseDue(t, 0)
}

func TestLegalHold(t *testing.T) {
	e := newEnv(t)
	m := e.receive(t, "a", "s", "kasse")
	ctx := context.Background()
	if err := e.svc.Hold(ctx, gateway.DefaultTenant, m.stream, "Klage anhängig", "admin1", "VG 1 K 23/26"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Hold(ctx, gateway.DefaultTenant, m.stream, "again", "admin1", ""); !errors.Is(err, retention.ErrAlreadyHeld) {
		t.Fatalf("a second hold: %v", err)
	}
	e.now = received.AddDate(5, 0, 0)
	e.eraseDue(t, 0)
	if _, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, m.stream, "", "admin1"); !errors.Is(err, retention.ErrOnHold) {
		t.Fatalf("EraseNow on hold: %v", err)
	}
	st, err := e.svc.Status(ctx, gateway.DefaultTenant, m.stream)
	if err != nil || !st.Hold || st.HoldCase != "VG 1 K 23/26" || st.Erased {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := e.svc.Release(ctx, gateway.DefaultTenant, m.stream, "Verfahren abgeschlossen", "admin1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Release(ctx, gateway.DefaultTenant, m.stream, "again", "admin1"); !errors.Is(err, retention.ErrNotHeld) {
		t.Fatalf("a second release: %v", err)
	}
	e.eraseDue(t, 1)
	if len(e.erasures(t, m.stream)) != 1 {
		t.Fatal("released message not erased")
	}
	if err := e.svc.Hold(ctx, gateway.DefaultTenant, m.stream, "zu spät", "admin1", ""); !errors.Is(err, retention.ErrAlreadyErased) {
		t.Fatalf("a hold on an erased message: %v", err)
	}
}

func TestConcurrentHoldsOneWins(t *testing.T) {
	e := newEnv(t)
	m := e.receive(t, "a", "s", "kasse")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = e.svc.Hold(ctx, gateway.DefaultTenant, m.stream, fmt.Sprint("case ", i), "admin1", "")
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, retention.ErrAlreadyHeld) && !errors.Is(err, retention.ErrConcurrent):
			t.Fatalf("hold: %v", err)
		}
	}
	evs, _ := e.g.Log.ReadStream(ctx, gateway.DefaultTenant, m.stream)
	holds := slices.DeleteFunc(evs, func(ev eventstore.Event) bool { return ev.Type != "LegalHoldSet" })
	if ok != 1 || len(holds) != 1 {
		t.Fatalf("%d holds succeeded, %d recorded; want one of each", ok, len(holds))
	}
}

func TestSharedBlobIsKept(t *testing.T) {
	e := newEnv(t)
	short := e.receive(t, "short", "the same attachment", "kasse")
	long := e.receive(t, "long", "the same attachment", "bauamt")
	if short.part != long.part {
		t.Fatal("the test needs a shared part")
	}
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	ce := e.erasures(t, short.stream)[0]
	if !sameRefs(ce.Kept, []blob.Ref{short.part}) || !sameRefs(ce.Blobs, []blob.Ref{short.raw, short.report}) {
		t.Fatalf("erased %v, kept %v; want the shared part kept", ce.Blobs, ce.Kept)
	}
	if e.er.isErased(short.part) {
		t.Fatal("the shared part was erased while the other message keeps it")
	}
	e.now = time.Date(2037, 1, 1, 0, 0, 0, 0, time.UTC)
	e.eraseDue(t, 1)
	ce = e.erasures(t, long.stream)[0]
	if !sameRefs(ce.Blobs, []blob.Ref{long.raw, long.part, long.report}) || len(ce.Kept) != 0 {
		t.Fatalf("erased %v, kept %v; the last message to keep the part erases it", ce.Blobs, ce.Kept)
	}
	if !e.er.isErased(long.part) {
		t.Fatal("the shared part outlived both messages")
	}
}

func TestContentEqualToEvidenceIsKept(t *testing.T) {
	e := newEnv(t)
	// The part's bytes equal the message's own timestamp token.
	m := e.receive(t, "a", "token a", "kasse")
	if m.part != m.token {
		t.Fatal("the test needs a part equal to the token")
	}
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	if ce := e.erasures(t, m.stream)[0]; !sameRefs(ce.Kept, []blob.Ref{m.token}) {
		t.Fatalf("kept %v, want the blob the timestamp token is", ce.Kept)
	}
}

func TestNotErasableBlobs(t *testing.T) {
	t.Run("known beforehand", func(t *testing.T) {
		e := newEnv(t)
		m := e.receive(t, "a", "s", "kasse")
		e.er.plain = map[blob.Ref]bool{m.raw: true}
		e.rebuildService(t, checkingEraser{e.er})
		e.now = received.AddDate(1, 0, 0)
		e.eraseDue(t, 1)
		ce := e.erasures(t, m.stream)[0]
		if !sameRefs(ce.Kept, []blob.Ref{m.raw}) || !sameRefs(ce.Blobs, []blob.Ref{m.part, m.report}) {
			t.Fatalf("erased %v, kept %v; want the plaintext raw bytes kept", ce.Blobs, ce.Kept)
		}
	})
	t.Run("learnt on erasure", func(t *testing.T) {
		e := newEnv(t)
		m := e.receive(t, "a", "s", "kasse")
		e.er.plain = map[blob.Ref]bool{m.raw: true}
		e.now = received.AddDate(1, 0, 0)
		e.eraseDue(t, 1)
		if !e.er.isErased(m.part) || !e.er.isErased(m.report) {
			t.Fatal("the erasable blobs were not erased")
		}
		// The handler, retried, is not stuck on the plaintext blob.
		ev := e.erasureEvent(t, m.stream)
		if _, err := e.svc.Handler().Handle(context.Background(), &ev, e.erasures(t, m.stream)[0]); err != nil {
			t.Fatalf("handler on a blob that cannot be erased: %v", err)
		}
	})
}

func (e *env) erasureEvent(t *testing.T, stream string) eventstore.Event {
	t.Helper()
	evs, err := e.g.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == "ContentErased" {
			return ev
		}
	}
	t.Fatal("no ContentErased")
	return eventstore.Event{}
}

// TestCrashBetweenRecordAndErase: the erasure is in the log, the keys are
// not yet destroyed (the process died, or the key store failed); the
// erasure handler, run by the pipeline on this or another node, completes
// it.
func TestCrashBetweenRecordAndErase(t *testing.T) {
	e := newEnv(t)
	m := e.receive(t, "a", "s", "kasse")
	e.er.setFail(errors.New("key store unreachable"))
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	if e.er.isErased(m.raw) {
		t.Fatal("the fake did not fail")
	}
	// A restarted scheduler records no second erasure and erases nothing:
	// the handler's job.
	e.er.setFail(nil)
	e.rebuildService(t, e.er)
	e.eraseDue(t, 0)
	if len(e.erasures(t, m.stream)) != 1 {
		t.Fatal("the erasure was recorded twice")
	}
	p, err := pipeline.New(pipeline.Config{Log: e.g.Log, Offsets: e.g.Offsets, Registry: gateway.NewRegistry(),
		MaxRetries: 2, RetryInterval: time.Millisecond}, e.svc.Handler())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for !e.er.isErased(m.raw) || !e.er.isErased(m.part) || !e.er.isErased(m.report) {
		if time.Now().After(deadline) {
			t.Fatal("the erasure handler did not destroy the keys")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNonOwnerDoesNothing(t *testing.T) {
	e := newEnv(t)
	mine := e.receive(t, "mine", "s1", "kasse")
	theirs := e.receive(t, "theirs", "s2", "kasse")
	e.owns = func(_, stream string) bool { return stream == mine.stream }
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	if len(e.erasures(t, theirs.stream)) != 0 || e.er.isErased(theirs.raw) {
		t.Fatal("a process erased a message it does not own")
	}
	e.owns = func(string, string) bool { return false }
	e.eraseDue(t, 0)
	e.owns = nil
	e.eraseDue(t, 1)
}

func TestBatchBoundsARound(t *testing.T) {
	e := newEnv(t)
	for i := range 25 {
		e.receive(t, fmt.Sprint("m", i), fmt.Sprint("s", i), "kasse")
	}
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 10)
	e.eraseDue(t, 10)
	e.eraseDue(t, 5)
	e.eraseDue(t, 0)
}

func TestEraseNow(t *testing.T) {
	e := newEnv(t)
	m := e.receive(t, "a", "s", "bauamt")
	ctx := context.Background()
	if _, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, "msg-nonesuch", "", "admin1"); !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("EraseNow of a message not found: %v", err)
	}
	if _, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, m.stream, "", ""); !errors.Is(err, retention.ErrInvalidRequest) {
		t.Fatalf("EraseNow without an actor: %v", err)
	}
	ce, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, m.stream, "", "admin1")
	if err != nil {
		t.Fatal(err)
	}
	if ce.Rule != retention.RuleManual || ce.Reason != retention.ReasonRequest || ce.Actor != "admin1" || ce.Office != "bauamt" ||
		!ce.RetainUntil.Equal(time.Date(2036, 12, 31, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("manual erasure %+v", ce)
	}
	if !e.er.isErased(m.raw) {
		t.Fatal("the keys were not destroyed")
	}
	if _, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, m.stream, "", "admin1"); !errors.Is(err, retention.ErrAlreadyErased) {
		t.Fatalf("a second EraseNow: %v", err)
	}
	e.now = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	e.eraseDue(t, 0)
	if got := e.erasures(t, m.stream); len(got) != 1 {
		t.Fatalf("%d erasures after the period, want the manual one only", len(got))
	}
}

func TestWithoutEraser(t *testing.T) {
	e := newEnv(t)
	if _, err := retention.New(e.cfg, retention.Deps{Log: e.g.Log, Registry: gateway.NewRegistry(), State: e.g.State,
		Policy: e.policy}); err == nil {
		t.Fatal("enabled without an eraser")
	}
	e.cfg.Enabled = false
	e.rebuildService(t, nil)
	m := e.receive(t, "a", "s", "kasse")
	ctx := context.Background()
	if _, err := e.svc.EraseNow(ctx, gateway.DefaultTenant, m.stream, "", "admin1"); !errors.Is(err, retention.ErrCannotErase) {
		t.Fatalf("EraseNow without an eraser: %v", err)
	}
	if err := e.svc.Hold(ctx, gateway.DefaultTenant, m.stream, "Klage", "admin1", ""); err != nil {
		t.Fatalf("a hold needs no eraser: %v", err)
	}
}

// TestModelRebuild: the read model is disposable; rebuilt from the log it
// decides as before.
func TestModelRebuild(t *testing.T) {
	e := newEnv(t)
	short := e.receive(t, "short", "shared", "kasse")
	e.receive(t, "long", "shared", "bauamt")
	held := e.receive(t, "held", "x", "kasse")
	if err := e.svc.Hold(context.Background(), gateway.DefaultTenant, held.stream, "Klage", "admin1", ""); err != nil {
		t.Fatal(err)
	}
	runner := &projection.Runner{Log: e.g.Log, DB: e.g.State, Registry: gateway.NewRegistry()}
	if err := runner.CatchUp(context.Background(), retention.Model{}); err != nil {
		t.Fatal(err)
	}
	if err := runner.Rebuild(context.Background(), retention.Model{}); err != nil {
		t.Fatal(err)
	}
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	if ce := e.erasures(t, short.stream)[0]; !sameRefs(ce.Kept, []blob.Ref{short.part}) {
		t.Fatalf("after a rebuild the shared part is not kept: %+v", ce)
	}
}

func TestRun(t *testing.T) {
	t.Run("enabled", func(t *testing.T) {
		e := newEnv(t)
		m := e.receive(t, "a", "s", "kasse")
		e.now = received.AddDate(1, 0, 0)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.svc.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for !e.er.isErased(m.raw) {
			if time.Now().After(deadline) {
				t.Fatal("Run erased nothing")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run ended with %v", err)
		}
	})
	t.Run("a backlog drains at once", func(t *testing.T) {
		e := newEnv(t)
		var all []message
		for i := range 25 {
			all = append(all, e.receive(t, fmt.Sprint("m", i), fmt.Sprint("s", i), "kasse"))
		}
		erasedAll := func() bool {
			return !slices.ContainsFunc(all, func(m message) bool { return !e.er.isErased(m.raw) })
		}
		e.now = received.AddDate(1, 0, 0)
		e.cfg.Interval = time.Hour
		e.rebuildService(t, e.er)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.svc.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for !erasedAll() {
			if time.Now().After(deadline) {
				t.Fatal("the backlog waits for the next interval")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
	})
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t, func(e *env) { e.cfg.Enabled = false })
		m := e.receive(t, "a", "s", "kasse")
		e.now = received.AddDate(1, 0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := e.svc.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run ended with %v", err)
		}
		if len(e.erasures(t, m.stream)) != 0 || e.er.isErased(m.raw) {
			t.Fatal("retention not enabled, yet a message was erased")
		}
	})
}

// TestBlobSharedByAMessageArrivingMidRound: a message received after the
// round read its candidates, carrying the same attachment, keeps it.
func TestBlobSharedByAMessageArrivingMidRound(t *testing.T) {
	e := newEnv(t)
	old := e.receive(t, "old", "the same attachment", "kasse")
	arrived := false
	e.owns = func(string, string) bool {
		if !arrived {
			arrived = true
			e.receive(t, "new", "the same attachment", "bauamt")
		}
		return true
	}
	e.now = received.AddDate(1, 0, 0)
	e.eraseDue(t, 1)
	ce := e.erasures(t, old.stream)[0]
	if !sameRefs(ce.Kept, []blob.Ref{old.part}) || e.er.isErased(old.part) {
		t.Fatalf("erased %v, kept %v; the new message's attachment must stay", ce.Blobs, ce.Kept)
	}
}
