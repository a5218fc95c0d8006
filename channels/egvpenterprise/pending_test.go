package egvpenterprise

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/gateway"
)

// TestPendingAnswerPolled: an answer Enterprise had not sent yet when first asked
// (WS_ASEND) is polled with backoff until a final state, which becomes its delivery
// evidence; the set of pending answers comes from the log, so a poller started anew
// (a restart) finds it again, and once the evidence is recorded nobody asks any more.
func TestPendingAnswerPolled(t *testing.T) {
	r, stream, req := answeredRig(t)
	ctx := context.Background()
	orig := r.received(t)[0]
	r.srv.SetSendState("AU_RETRY")
	o := r.outbound(t)
	o.evidence = r.evidence
	info, err := o.Send(ctx, req, orig)
	if err != nil {
		t.Fatal(err)
	}
	cause, _ := requestEvent(t, r, stream, req.ReplyID)
	ev, err := gateway.Follow("replies", cause, 0, &gateway.ReplySent{ReplyID: req.ReplyID, Channel: gateway.ChannelEGVP,
		ChannelMessageID: info.ChannelMessageID, Attempt: 1, Response: info.Response})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.env.Log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	stored, _ := r.env.Log.ReadStream(ctx, gateway.DefaultTenant, stream)
	sentAt := stored[len(stored)-1].RecordedAt
	if n := len(r.evidenceIn(t, stream)); n != 0 {
		t.Fatalf("%d pieces of evidence for a pending state", n)
	}

	now := sentAt
	poller := func() *Pending {
		p := newPending(Config{Endpoint: r.cfg.Endpoint, UserID: box, Outbound: true}, o.client, r.env.Log, r.evidence, slog.New(slog.DiscardHandler))
		p.now = func() time.Time { return now }
		return p
	}
	p := poller()
	asked := r.srv.StateRequests()
	poll := func(p *Pending, wantAsked int) {
		t.Helper()
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if n := r.srv.StateRequests() - asked; n != wantAsked {
			t.Fatalf("at +%s: getState asked %d times, want %d", now.Sub(sentAt), n, wantAsked)
		}
		asked = r.srv.StateRequests()
	}
	// Not before the first wait; then once per backoff step.
	poll(p, 0)
	now = sentAt.Add(time.Minute)
	poll(p, 1)
	poll(p, 0)
	now = now.Add(time.Minute) // the wait doubled: not yet
	poll(p, 0)
	now = now.Add(time.Minute)
	poll(p, 1)
	// A restart: the new poller finds the answer in the log and asks at once.
	p = poller()
	poll(p, 1)
	r.srv.SetState(info.ChannelMessageID, "OSCI_SENT")
	now = now.Add(time.Hour)
	poll(p, 1)
	evs := r.evidenceIn(t, stream)
	if len(evs) != 1 || evs[0].Kind != gateway.EvidenceDelivered || evs[0].ReplyID != req.ReplyID || evs[0].Attester.Role != "egvp-enterprise" {
		t.Fatalf("evidence after the final state: %+v", evs)
	}
	at, _ := time.Parse(time.RFC3339Nano, enterprisetest.StateTime)
	if !evs[0].AttestedAt.Equal(at) {
		t.Errorf("attested at %s", evs[0].AttestedAt)
	}
	now = now.Add(24 * time.Hour)
	poll(p, 0)
	// Restarted again: the evidence in the log ends it.
	poll(poller(), 0)
}

// TestPendingGivesUp: an answer still pending a week after its hand-over is no
// longer polled; one sent with a final state at once is never polled.
func TestPendingGivesUp(t *testing.T) {
	r, stream, req := answeredRig(t)
	ctx := context.Background()
	orig := r.received(t)[0]
	r.srv.SetSendState("WS_ASEND")
	o := r.outbound(t)
	o.evidence = r.evidence
	info, err := o.Send(ctx, req, orig)
	if err != nil {
		t.Fatal(err)
	}
	cause, _ := requestEvent(t, r, stream, req.ReplyID)
	ev, _ := gateway.Follow("replies", cause, 0, &gateway.ReplySent{ReplyID: req.ReplyID, Channel: gateway.ChannelEGVP,
		ChannelMessageID: info.ChannelMessageID, Attempt: 1, Response: info.Response})
	if _, err := r.env.Log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// A second answer, final at once (evidence recorded before its ReplySent).
	r.srv.SetSendState("OSCI_SENT")
	req2 := *req
	req2.ReplyID = req.ReplyID + "-2"
	info2, err := o.Send(ctx, &req2, orig)
	if err != nil {
		t.Fatal(err)
	}
	ev2, _ := gateway.Follow("replies", cause, 1, &gateway.ReplySent{ReplyID: req2.ReplyID, Channel: gateway.ChannelEGVP,
		ChannelMessageID: info2.ChannelMessageID, Attempt: 1, Response: info2.Response})
	if _, err := r.env.Log.Append(ctx, ev2); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(8 * 24 * time.Hour)
	p := newPending(Config{Endpoint: r.cfg.Endpoint, UserID: box, Outbound: true}, o.client, r.env.Log, r.evidence, slog.New(slog.DiscardHandler))
	p.now = func() time.Time { return now }
	asked := r.srv.StateRequests()
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.srv.StateRequests() - asked; n != 0 || len(p.answers) != 0 || len(p.final) != 0 {
		t.Fatalf("asked %d times; pending %v, final %v", n, p.answers, p.final)
	}
}
