package portal

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// assignedIDs are the platform reply ids recorded for an answer.
func (e *testEnv) assignedIDs(t testing.TB, stream, replyID string) []string {
	t.Helper()
	evs, err := e.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	var ids []string
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := p.(*gateway.ReplyIDAssigned); ok && a.ReplyID == replyID {
			ids = append(ids, a.PeerID)
		}
	}
	return ids
}

// TestAnswerAtMostOnce: the platform takes no id of ours, so the outbound
// records the platform's reply id before submitting; an attempt after an
// interruption at any point of the hand-over finds that reply and never
// submits the answer twice.
func TestAnswerAtMostOnce(t *testing.T) {
	e, orig, stream, _ := fitConnectAnswerEnv(t)
	out, err := newOutbound(e.in.cfg, OutboundDeps{Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler), Evidence: e.in.deps.Evidence}, e.fake)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errLost := errors.New("connection reset after the platform's 200")
	for i, tc := range []struct {
		name string
		// interrupt prepares the first attempt's failure; nil: the first
		// attempt succeeds and its ReplySent is lost (the gateway stopped
		// before recording it).
		interrupt func(f *fakePlatform)
		// between runs after the first attempt.
		between func(t *testing.T, f *fakePlatform, stream string)
		// created is how many replies the platform ends with.
		created  int
		response string
	}{
		{name: "stopped after the platform's acceptance, before ReplySent", created: 1, response: "not sent again"},
		{name: "the platform's answer to the submit lost", interrupt: func(f *fakePlatform) { f.lostSubmit = errLost },
			created: 1, response: "not sent again"},
		{name: "stopped between creating and submitting", interrupt: func(f *fakePlatform) { f.failUpload = errLost },
			between: func(_ *testing.T, f *fakePlatform, _ string) { f.failUpload = nil }, created: 1, response: "submitted now"},
		{name: "the created reply gone at the platform before it was submitted", interrupt: func(f *fakePlatform) { f.failUpload = errLost },
			between: func(t *testing.T, f *fakePlatform, _ string) {
				f.failUpload = nil
				f.mu.Lock()
				clear(f.replies)
				f.mu.Unlock()
			}, created: 1, response: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.fake.mu.Lock()
			clear(e.fake.replies)
			e.fake.mu.Unlock()
			att := e.put(t, []byte("%PDF Bescheid"))
			att.MediaType, att.Filename = "application/pdf", "bescheid.pdf"
			req := &gateway.ReplyRequested{ReplyID: "rpl-once-" + string(rune('a'+i)), Channel: gateway.ChannelPortal, Subject: "Bescheid",
				Body: e.put(t, []byte("Anbei der Bescheid.")).Blob, Attachments: []gateway.Part{att}}
			e.request(t, stream, req)
			first, err := func() (string, error) {
				if tc.interrupt != nil {
					tc.interrupt(e.fake)
				}
				info, err := out.Send(ctx, req, orig)
				return info.ChannelMessageID, err
			}()
			if (tc.interrupt == nil) != (err == nil) {
				t.Fatalf("first attempt: %v", err)
			}
			if tc.between != nil {
				tc.between(t, e.fake, stream)
			}
			info, err := out.Send(ctx, req, orig)
			if err != nil {
				t.Fatalf("second attempt: %v", err)
			}
			if first != "" && info.ChannelMessageID != first {
				t.Errorf("the second attempt reports reply %s, the first %s", info.ChannelMessageID, first)
			}
			if !strings.Contains(info.Response, tc.response) {
				t.Errorf("response %q, want it to say %q", info.Response, tc.response)
			}
			e.fake.mu.Lock()
			created := len(e.fake.replies)
			r := e.fake.replies[info.ChannelMessageID]
			e.fake.mu.Unlock()
			if created != tc.created || r == nil || r.encData == "" {
				t.Errorf("the platform has %d replies (want %d), the reported one %+v", created, tc.created, r)
			}
			if n := e.fake.submittedReplies(); n != 1 {
				t.Errorf("%d replies submitted, want 1", n)
			}
			ids := e.assignedIDs(t, stream, req.ReplyID)
			if len(ids) == 0 || ids[len(ids)-1] != info.ChannelMessageID {
				t.Errorf("recorded reply ids %v, sent %s", ids, info.ChannelMessageID)
			}
			// A third attempt (the ReplySent lost once more) changes nothing.
			again, err := out.Send(ctx, req, orig)
			if err != nil || again.ChannelMessageID != info.ChannelMessageID || e.fake.submittedReplies() != 1 {
				t.Errorf("third attempt: %+v, %v; %d submitted", again, err, e.fake.submittedReplies())
			}
		})
	}
}

// TestAnswerCrashThroughSender runs the answer through replies.Sender's
// handler and crashes the gateway between the platform's acceptance of the
// reply and the append of the handler's outcome (the outcome is dropped, as
// a killed process never appends it). The redelivered ReplyRequested is
// attempted again; it ends in ReplySent naming the reply the platform has,
// and the platform holds one submitted reply.
func TestAnswerCrashThroughSender(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lost: the platform's answer to the submit never arrived.
		lost bool
	}{{"after the outbound returned", false}, {"while the platform answered the submit", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e, orig, stream, _ := fitConnectAnswerEnv(t)
			out, err := newOutbound(e.in.cfg, OutboundDeps{Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler), Evidence: e.in.deps.Evidence}, e.fake)
			if err != nil {
				t.Fatal(err)
			}
			s, err := replies.New(replies.Config{MaxAttempts: 3}, replies.Deps{Log: e.env.Log, Registry: gateway.NewRegistry(), State: e.env.State,
				Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelPortal: out}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			req := &gateway.ReplyRequested{ReplyID: "rpl-crash", Channel: gateway.ChannelPortal, To: orig.From, Subject: "Bescheid",
				Body: e.put(t, []byte("Anbei der Bescheid.")).Blob}
			e.request(t, stream, req)
			evs, err := e.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
			if err != nil {
				t.Fatal(err)
			}
			cause := &evs[len(evs)-1]
			h := s.Handler()
			if tc.lost {
				e.fake.lostSubmit = errors.New("connection reset")
			}
			if _, err := h.Handle(context.Background(), cause, req); err != nil {
				t.Fatal(err)
			}
			// The crash: the handler's outcome is never appended. The
			// restarted pipeline delivers the ReplyRequested again.
			got, err := h.Handle(context.Background(), cause, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("outcome %+v", got)
			}
			sent, ok := got[0].(*gateway.ReplySent)
			if !ok {
				t.Fatalf("outcome %T %+v, want ReplySent", got[0], got[0])
			}
			e.fake.mu.Lock()
			created, r := len(e.fake.replies), e.fake.replies[sent.ChannelMessageID]
			e.fake.mu.Unlock()
			if created != 1 || r == nil || e.fake.submittedReplies() != 1 || !strings.Contains(sent.Response, "not sent again") {
				t.Errorf("%d replies at the platform, %d submitted; ReplySent %+v", created, e.fake.submittedReplies(), sent)
			}
		})
	}
}
