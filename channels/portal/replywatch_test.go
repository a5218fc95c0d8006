package portal

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// watchEnv is a portal message received with the log, the state database,
// the real evidence recorder over projection.References, a sender's
// signature key in reply_sender_keys_file and a settable clock.
type watchEnv struct {
	*testEnv
	orig   *gateway.MessageReceived
	stream string
	out    *Outbound
	clock  *clock
	sender *jwkKeys
	mod    func(*testEnv, *Config, *gateway.IntakeDeps)
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	senderKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	w := &watchEnv{clock: &clock{t: time.Now()}, sender: &jwkKeys{sign: senderKey, signKID: "sender-1"}}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &senderKey.PublicKey, KeyID: "sender-1", Algorithm: "PS512", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(t.TempDir(), "senders.jwks")
	if err := os.WriteFile(keysFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	w.mod = func(e *testEnv, c *Config, d *gateway.IntakeDeps) {
		c.PollInterval, c.ReplyHorizon, c.ReplySenderKeysFile = time.Minute, 48*time.Hour, keysFile
		d.Now, d.Log, d.State = w.clock.now, e.env.Log, e.env.State
		runner := &projection.Runner{Log: e.env.Log, DB: e.env.State, Registry: gateway.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}
		if err := runner.Setup(context.Background(), projection.References{}); err != nil {
			t.Fatal(err)
		}
		d.Evidence = projection.NewEvidenceRecorder(runner)
	}
	w.testEnv, w.orig, w.stream, _ = fitConnectAnswerEnvWith(t, w.mod)
	if w.in.watch == nil {
		t.Fatal("no reply watch")
	}
	w.out, err = newOutbound(w.in.cfg, OutboundDeps{Blobs: w.env.Blobs, Logger: slog.New(slog.DiscardHandler), Evidence: w.in.deps.Evidence}, w.fake)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// answer sends an answer as the Sender does: the outbound's Send, then
// ReplySent, recorded at the clock's time.
func (w *watchEnv) answer(t *testing.T, replyID string) string {
	t.Helper()
	req := &gateway.ReplyRequested{ReplyID: replyID, Channel: gateway.ChannelPortal, Subject: "Bescheid",
		Body: w.put(t, []byte("Ihr Antrag ist bewilligt.")).Blob}
	w.request(t, w.stream, req)
	info, err := w.out.Send(context.Background(), req, w.orig)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := w.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, w.stream)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.Follow("replies", &evs[len(evs)-1], 0, &gateway.ReplySent{ReplyID: replyID, Channel: gateway.ChannelPortal,
		ChannelMessageID: info.ChannelMessageID, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Log.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	// The log stamps the time of recording; the watch's clock starts there.
	evs, err = w.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, w.stream)
	if err != nil {
		t.Fatal(err)
	}
	w.clock.set(evs[len(evs)-1].RecordedAt)
	return info.ChannelMessageID
}

// senderEvent appends to the case's event log a SET the sender's side
// wrote about reply replyID, signed with signer.
func (w *watchEnv) senderEvent(t *testing.T, signer *jwkKeys, jti, event, replyID string, details map[string]any) {
	t.Helper()
	d, _ := json.Marshal(details)
	payload, _ := json.Marshal(setPayload{JTI: jti, Iss: "onlinedienst.example", Iat: w.clock.now().Unix(),
		Sub: "reply:" + replyID, Txn: "case:" + w.orig.Portal.CaseID, Events: map[string]json.RawMessage{eventPrefix + event: d}})
	set, err := signer.SignSET(payload)
	if err != nil {
		t.Fatal(err)
	}
	w.fake.mu.Lock()
	w.fake.events[w.orig.Portal.CaseID] = append(w.fake.events[w.orig.Portal.CaseID], set)
	w.fake.mu.Unlock()
}

// answerEvidence is the evidence recorded about the answer.
func (w *watchEnv) answerEvidence(t *testing.T, replyID string) []*gateway.DeliveryEvidenceRecorded {
	t.Helper()
	var out []*gateway.DeliveryEvidenceRecorded
	for _, ev := range w.evidence(t) {
		if ev.ReplyID == replyID {
			out = append(out, ev)
		}
	}
	return out
}

func (w *watchEnv) round(t *testing.T, at time.Time, want int) {
	t.Helper()
	w.clock.set(at)
	n, err := w.in.watch.Round(context.Background())
	if err != nil || n != want {
		t.Fatalf("round at %s: %d event logs read (want %d), %v", at.Format(time.TimeOnly), n, want, err)
	}
}

// TestReplyWatch: after sending, the case's event log is read again with a
// growing wait; the sender side's accept-reply is recorded once as
// evidence that the answer was retrieved, verified with the sender's key,
// and ends the watch; another reply's events and a repeated SET change
// nothing.
func TestReplyWatch(t *testing.T) {
	w := newWatchEnv(t)
	platformID := w.answer(t, "rpl-w1")
	t0 := w.clock.now()
	if ev := w.answerEvidence(t, "rpl-w1"); len(ev) != 1 || ev[0].Kind != gateway.EvidenceDispatched || ev[0].LinkedBy != "replyId" {
		t.Fatalf("evidence at sending: %+v", ev)
	}
	w.round(t, t0.Add(30*time.Second), 0) // not due before one poll interval
	w.round(t, t0.Add(time.Minute), 1)    // nothing new; next wait 1m
	w.round(t, t0.Add(90*time.Second), 0) // not due yet
	w.round(t, t0.Add(2*time.Minute), 1)  // nothing new; next wait 2m
	w.round(t, t0.Add(3*time.Minute), 0)  // not due yet
	w.senderEvent(t, w.sender, "jti-other", "accept-reply", "00000000-0000-4000-8000-000000000000", map[string]any{})
	w.senderEvent(t, w.sender, "jti-accept", "accept-reply", platformID, map[string]any{})
	w.senderEvent(t, w.sender, "jti-accept", "accept-reply", platformID, map[string]any{}) // the same SET again
	w.round(t, t0.Add(4*time.Minute), 1)
	ev := w.answerEvidence(t, "rpl-w1")
	if len(ev) != 2 || ev[1].Kind != gateway.EvidenceRetrieved || ev[1].EvidenceID != "fitconnect:jti-accept" ||
		ev[1].Verification == nil || ev[1].Verification.Indication != "TOTAL_PASSED" || !strings.Contains(ev[1].Verification.Signer, "sender") ||
		len(ev[1].Problems) != 0 || ev[1].Evidence.SHA256 == "" {
		t.Fatalf("evidence after accept-reply: %+v", ev)
	}
	w.round(t, t0.Add(4*time.Hour), 0) // final: no longer waiting
	if n := len(w.answerEvidence(t, "rpl-w1")); n != 2 {
		t.Errorf("%d pieces of evidence after the end, want 2", n)
	}
}

// TestReplyWatchRejectAndForgery: a reject-reply is recorded as
// not-delivered with its details; one signed with a key neither the
// platform nor a sender has is recorded with the verdict INDETERMINATE and
// a problem.
func TestReplyWatchRejectAndForgery(t *testing.T) {
	w := newWatchEnv(t)
	platformID := w.answer(t, "rpl-w2")
	t0 := w.clock.now()
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	w.senderEvent(t, &jwkKeys{sign: stranger, signKID: "sender-1"}, "jti-forged", "reject-reply", platformID,
		map[string]any{"problems": []map[string]string{{"type": "x", "detail": "forged"}}})
	w.senderEvent(t, w.sender, "jti-reject", "reject-reply", platformID,
		map[string]any{"problems": []map[string]string{{"type": eventPrefix + "problems/encryption-issue", "detail": "cannot decrypt"}}})
	w.round(t, t0.Add(time.Minute), 1)
	ev := w.answerEvidence(t, "rpl-w2")
	if len(ev) != 3 {
		t.Fatalf("evidence: %+v", ev)
	}
	forged, rejected := ev[1], ev[2]
	if forged.Verification.Indication != "INDETERMINATE" || len(forged.Problems) != 1 {
		t.Errorf("forged SET: %+v %+v", forged, forged.Verification)
	}
	if rejected.Kind != gateway.EvidenceNotDelivered || rejected.Verification.Indication != "TOTAL_PASSED" ||
		!strings.Contains(rejected.Reason, "cannot decrypt") {
		t.Errorf("reject-reply: %+v %+v", rejected, rejected.Verification)
	}
	w.round(t, t0.Add(time.Hour), 0)
}

// TestReplyWatchHorizon: an answer with no accept-reply or reject-reply
// within reply_horizon is recorded once as expired, "no acknowledgement of
// the reply", after one last look; a watch built anew (a restart) finds
// the waiting answers in the state database.
func TestReplyWatchHorizon(t *testing.T) {
	w := newWatchEnv(t)
	w.answer(t, "rpl-w3")
	t0 := w.clock.now()
	w.round(t, t0.Add(time.Minute), 1)

	// A restart: a new inbound over the same log and state database.
	in, err := newInbound(w.in.cfg, w.in.deps, inboundOptions{api: w.fake, keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	w.in = in
	w.round(t, t0.Add(90*time.Second), 1) // no memory of the last look: due again
	w.round(t, t0.Add(47*time.Hour), 1)
	if ev := w.answerEvidence(t, "rpl-w3"); len(ev) != 1 {
		t.Fatalf("evidence before the horizon: %+v", ev)
	}
	w.round(t, t0.Add(48*time.Hour+time.Minute), 1)
	ev := w.answerEvidence(t, "rpl-w3")
	if len(ev) != 2 || ev[1].Kind != gateway.EvidenceExpired || ev[1].LinkedBy != "replyId" ||
		!strings.Contains(ev[1].Reason, "no acknowledgement of the reply") || !ev[1].AttestedAt.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("evidence after the horizon: %+v", ev)
	}
	w.round(t, t0.Add(72*time.Hour), 0)
	if n := len(w.answerEvidence(t, "rpl-w3")); n != 2 {
		t.Errorf("%d pieces of evidence, want 2", n)
	}
}
