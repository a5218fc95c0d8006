package egvpenterprise

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
)

// requestEvent is the ReplyRequested answeredRig appended.
func requestEvent(t *testing.T, r *rig, stream, replyID string) (*eventstore.Event, gateway.Payload) {
	t.Helper()
	evs, err := r.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if rq, ok := p.(*gateway.ReplyRequested); ok && rq.ReplyID == replyID {
			return &evs[i], p
		}
	}
	t.Fatal("no ReplyRequested")
	return nil, nil
}

// TestAtMostOnceAfterCrash: the gateway stops after Enterprise accepted an answer
// and before its ReplySent is recorded (the handler's output is lost, the injected
// crash). On restart the answer is not handed to Enterprise again: it fails as
// uncertain, to triage with the ids to look for; the mailroom orders a resend, which
// the retry schedule sends once, or marks it sent, which records it as sent.
func TestAtMostOnceAfterCrash(t *testing.T) {
	for _, action := range []string{replies.ResolveResend, replies.ResolveSent} {
		t.Run(action, func(t *testing.T) {
			r, stream, req := answeredRig(t)
			ctx := context.Background()
			o := r.outbound(t)
			sender, err := replies.New(replies.Config{}, replies.Deps{Log: r.env.Log, Registry: gateway.NewRegistry(), State: r.env.State,
				Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelEGVP: o}, Logger: slog.New(slog.DiscardHandler),
				// The resend is due at the time the decision was recorded.
				Now: time.Now})
			if err != nil {
				t.Fatal(err)
			}
			cause, p := requestEvent(t, r, stream, req.ReplyID)
			h := sender.Handler()

			// First run: Enterprise accepts; the crash loses the ReplySent.
			out, err := h.Handle(ctx, cause, p)
			if err != nil || len(out) != 1 {
				t.Fatalf("first attempt: %v %v", out, err)
			}
			if _, ok := out[0].(*gateway.ReplySent); !ok {
				t.Fatalf("first attempt gave %T", out[0])
			}
			if n := len(r.srv.Sent()); n != 1 {
				t.Fatalf("%d handed over", n)
			}
			// Restart: the pipeline hands the ReplyRequested over again.
			out, err = h.Handle(ctx, cause, p)
			if err != nil || len(out) != 1 {
				t.Fatalf("after the restart: %v %v", out, err)
			}
			f, ok := out[0].(*gateway.ReplyFailed)
			if !ok || !f.Permanent || !f.Uncertain || f.Attempt != 1 || !strings.Contains(f.Error, "may have been sent — check EGVP Enterprise") ||
				!strings.Contains(f.Error, egvp.XJustizID(req.ReplyID)) || !strings.Contains(f.Error, req.ReplyID) {
				t.Fatalf("after the restart: %+v", out[0])
			}
			if n := len(r.srv.Sent()); n != 1 {
				t.Fatalf("handed over again after the restart: %d", n)
			}
			ev, err := gateway.Follow(replies.HandlerName, cause, 0, f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.env.Log.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			// The mailroom sees it in triage; the eEB is not failed (another
			// answer would reach the court under another id).
			runner := &projection.Runner{Log: r.env.Log, DB: r.env.State, Registry: gateway.NewRegistry()}
			in := offices.Inbox{}
			if err := runner.CatchUp(ctx, in); err != nil {
				t.Fatal(err)
			}
			it, err := offices.GetTriage(ctx, r.env.State, stream)
			if err != nil || it.Kind != offices.TriageReplyUncertain || it.State != "open" || !strings.Contains(it.Reason, "check EGVP Enterprise") {
				t.Fatalf("triage: %+v %v", it, err)
			}
			if task, err := offices.GetEEB(ctx, r.env.State, gateway.DefaultTenant, stream); err != nil || task == nil || task.Status != offices.EEBAnswering {
				t.Fatalf("eEB task of the uncertain answer: %+v %v", task, err)
			}
			// Nothing is retried on its own.
			if err := sender.RetryDue(ctx, runner); err != nil {
				t.Fatal(err)
			}
			if n := len(r.srv.Sent()); n != 1 {
				t.Fatalf("retried without a decision: %d", n)
			}
			if _, err := replies.ResolveUncertain(ctx, r.env.Log, replies.Resolution{Stream: stream, ReplyID: req.ReplyID, Action: "maybe", By: "post1"}); err == nil {
				t.Fatal("an unknown decision was accepted")
			}
			res, err := replies.ResolveUncertain(ctx, r.env.Log, replies.Resolution{Stream: stream, ReplyID: req.ReplyID, Action: action, By: "post1",
				Note: "checked the journal"})
			if err != nil || res.Existing {
				t.Fatalf("decision: %+v %v", res, err)
			}
			if err := sender.RetryDue(ctx, runner); err != nil {
				t.Fatal(err)
			}
			if err := sender.RetryDue(ctx, runner); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{replies.ResolveResend: 2, replies.ResolveSent: 1}[action]
			if n := len(r.srv.Sent()); n != want {
				t.Fatalf("handed over %d times, want %d", n, want)
			}
			if err := runner.CatchUp(ctx, in); err != nil {
				t.Fatal(err)
			}
			if it, err := offices.GetTriage(ctx, r.env.State, stream); err != nil || it.State != "resolved" {
				t.Fatalf("triage after the decision: %+v %v", it, err)
			}
			st, err := outbox.GetStatus(ctx, r.env.State, replies.Kind, gateway.DefaultTenant, req.ReplyID)
			if err != nil || st.State != "done" {
				t.Fatalf("schedule after the decision: %+v %v", st, err)
			}
			// Deciding again is refused once it is sent.
			if _, err := replies.ResolveUncertain(ctx, r.env.Log, replies.Resolution{Stream: stream, ReplyID: req.ReplyID, Action: action, By: "post1"}); !errors.Is(err, replies.ErrNotUncertain) {
				t.Fatalf("second decision: %v", err)
			}
		})
	}
}

// TestAtMostOnceLostAnswer: the request reached Enterprise and its answer was lost
// (the connection ended): the answer is uncertain, to triage, not retried; a
// service that cannot be reached at all is a temporary failure, retried as before.
func TestAtMostOnceLostAnswer(t *testing.T) {
	r, stream, req := answeredRig(t)
	ctx := context.Background()
	newSender := func(o *Outbound) *replies.Sender {
		s, err := replies.New(replies.Config{}, replies.Deps{Log: r.env.Log, Registry: gateway.NewRegistry(), State: r.env.State,
			Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelEGVP: o}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cause, p := requestEvent(t, r, stream, req.ReplyID)

	// Nobody listens: not sent, retried later.
	down := *r
	down.cfg.Endpoint = "http://127.0.0.1:1/EGVP-WS/EGVP-WebService"
	out, err := newSender(down.outbound(t)).Handler().Handle(ctx, cause, p)
	if err != nil || len(out) != 1 {
		t.Fatalf("unreachable: %v %v", out, err)
	}
	if f, ok := out[0].(*gateway.ReplyFailed); !ok || f.Permanent || f.Uncertain {
		t.Fatalf("unreachable: %+v", out[0])
	}

	// Reached, answer lost (another answer: the first one's attempt has its
	// outcome only in the handler's output, which this test does not append).
	req2 := *req
	req2.ReplyID = req.ReplyID + "-2"
	ev, err := gateway.Follow("reply/2", cause, 0, &req2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.env.Log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	cause2, p2 := requestEvent(t, r, stream, req2.ReplyID)
	r.srv.FailNext("sendAsynchroniousMessage", enterprisetest.FailLostAnswer)
	out, err = newSender(r.outbound(t)).Handler().Handle(ctx, cause2, p2)
	if err != nil || len(out) != 1 {
		t.Fatalf("lost answer: %v %v", out, err)
	}
	f, ok := out[0].(*gateway.ReplyFailed)
	if !ok || !f.Permanent || !f.Uncertain || !strings.Contains(f.Error, "its answer was lost") || !strings.Contains(f.Error, "check EGVP Enterprise") {
		t.Fatalf("lost answer: %+v", out[0])
	}
	if n := len(r.srv.Sent()); n != 1 {
		t.Fatalf("%d handed over", n)
	}
}
