package replies_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

func egvpPolicy(t *testing.T) *replies.Policy {
	t.Helper()
	p, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelEGVP: {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress},
	}, []gateway.Channel{gateway.ChannelSMTP, gateway.ChannelEGVP})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eebRequest is a court's EGVP message asking for an eEB, received on
// receivedAt (the intermediary's time).
func eebRequest(receivedAt time.Time, version string) *gateway.MessageReceived {
	return &gateway.MessageReceived{Channel: gateway.ChannelEGVP, SenderMessageID: "osci-4711",
		From: gateway.Address{Address: "osci:c0ffee", Name: "VG Koblenz"}, Subject: "Zustellung", ReceivedAt: receivedAt,
		EGVP: &gateway.EGVPFields{SenderSafeID: "DE.Justiz.vg", SenderFileNumber: "1 K 519/20.KO", RecipientFileNumber: "BA-17",
			XJustizVersion: version, EEBRequested: true, EEBDocuments: []string{"doc-1"}, Origin: "vhn"}}
}

func TestCheckEEB(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    gateway.EEBAnswer
		want string // part of the error, "" for none
	}{
		{"acknowledged", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-12-02"}, ""},
		{"acknowledged by a representative", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-12-02", DeviatingRecipient: true}, ""},
		{"refused", gateway.EEBAnswer{Decision: "refused", RefusalCode: "2", Reason: "Anlage 3 fehlt"}, ""},
		{"refused without reason", gateway.EEBAnswer{Decision: "refused", RefusalCode: "1"}, ""},
		{"no decision", gateway.EEBAnswer{ReceivedOn: "2026-12-02"}, "decision: required"},
		{"unknown decision", gateway.EEBAnswer{Decision: "maybe"}, `"maybe" is neither`},
		{"no date", gateway.EEBAnswer{Decision: "acknowledged"}, "receivedOn: required"},
		{"date with time", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-12-02T10:00:00Z"}, "not a date"},
		{"impossible date", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-02-30"}, "not a date"},
		{"German date", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "02.12.2026"}, "not a date"},
		{"acknowledged with a code", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-12-02", RefusalCode: "1"}, "refusal only"},
		{"acknowledged with a reason", gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: "2026-12-02", Reason: "x"}, "refusal only"},
		{"refused without code", gateway.EEBAnswer{Decision: "refused", Reason: "x"}, "refusalCode: required"},
		{"refused with unknown code", gateway.EEBAnswer{Decision: "refused", RefusalCode: "4"}, `"4" is not in the Codeliste`},
		{"refused with a date", gateway.EEBAnswer{Decision: "refused", RefusalCode: "1", ReceivedOn: "2026-12-02"}, "acknowledgement only"},
		{"reason too long", gateway.EEBAnswer{Decision: "refused", RefusalCode: "2", Reason: strings.Repeat("ä", 1001)}, "longer than 2000"},
		{"reason with a line break", gateway.EEBAnswer{Decision: "refused", RefusalCode: "2", Reason: "a\nb"}, "control characters"},
		{"reason not UTF-8", gateway.EEBAnswer{Decision: "refused", RefusalCode: "2", Reason: "a\xffb"}, "not UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := replies.CheckEEB(&tt.a)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, replies.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tt.want)
			}
		})
	}
}

func TestCheckEEBFor(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Received on 30 November 23:30 UTC, which is 1 December in Berlin;
	// the office answers on 2 December 10:00 in Berlin.
	receivedAt := time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, berlin)
	ack := func(on string) *gateway.EEBAnswer {
		return &gateway.EEBAnswer{Decision: "acknowledged", ReceivedOn: on}
	}
	refuse := &gateway.EEBAnswer{Decision: "refused", RefusalCode: "2"}
	smtp := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, ReceivedAt: receivedAt}
	noRequest := eebRequest(receivedAt, "3.5.1")
	noRequest.EGVP.EEBRequested = false
	for _, tt := range []struct {
		name     string
		a        *gateway.EEBAnswer
		received *gateway.MessageReceived
		want     error
		detail   string
	}{
		{"today", ack("2026-12-02"), eebRequest(receivedAt, "3.5.1"), nil, ""},
		{"the Berlin day of receipt", ack("2026-12-01"), eebRequest(receivedAt, "3.5.1"), nil, ""},
		{"the margin day before", ack("2026-11-30"), eebRequest(receivedAt, "3.5.1"), nil, ""},
		{"before the margin", ack("2026-11-29"), eebRequest(receivedAt, "3.5.1"), replies.ErrInvalid, "before the message reached the mailbox (2026-12-01)"},
		{"tomorrow", ack("2026-12-03"), eebRequest(receivedAt, "3.5.1"), replies.ErrInvalid, "in the future (today is 2026-12-02)"},
		{"refusal to 3.x", refuse, eebRequest(receivedAt, "3.5.1"), nil, ""},
		{"refusal without a known version", refuse, eebRequest(receivedAt, ""), nil, ""},
		{"refusal to 2.x", refuse, eebRequest(receivedAt, "2.4.0"), replies.ErrInvalid, "only to a request of XJustiz 3.x; this one is XJustiz 2.4.0"},
		{"acknowledgement to 2.x", ack("2026-12-02"), eebRequest(receivedAt, "2.4.0"), nil, ""},
		{"no eEB asked", ack("2026-12-02"), noRequest, replies.ErrCannotAnswer, "asks for no eEB"},
		{"not EGVP", ack("2026-12-02"), smtp, replies.ErrCannotAnswer, "on EGVP only"},
		{"invalid by itself", &gateway.EEBAnswer{Decision: "no"}, eebRequest(receivedAt, "3.5.1"), replies.ErrInvalid, "decision"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := replies.CheckEEBFor(tt.a, tt.received, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("err = %v, want %v with %q", err, tt.want, tt.detail)
			}
		})
	}
}

func TestRequestEEB(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	rq := replies.Requester{Log: g.Log, Blobs: g.Blobs, Plan: egvpPolicy(t).Plan, Now: func() time.Time { return now }}
	alice := offices.Principal{User: "alice", Role: offices.RoleOffice, Offices: []string{"rechtsamt"}}
	stream := seedRouted(t, g, "egvp:eeb-1", eebRequest(now.Add(-20*time.Hour), "3.5.1"), "rechtsamt")
	ack := &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-02"}

	res, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: ack, Via: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Channel != gateway.ChannelEGVP || res.To.Address != "osci:c0ffee" || res.Existing {
		t.Fatalf("result %+v", res)
	}
	rr := lastRequest(t, g, stream)
	if rr.EEB == nil || *rr.EEB != *ack || rr.Subject != "EB zu: 1 K 519/20.KO" || rr.Body.SHA256 != "" || rr.InReplyTo != "" {
		t.Fatalf("recorded %+v (eeb %+v)", rr, rr.EEB)
	}

	// The same request again is the same answer.
	again, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: ack, Via: "api"})
	if err != nil || !again.Existing || again.ReplyID != res.ReplyID {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	// Routed to the office again (triage, a second rule): the same request
	// is still the one answer.
	rerouted, _ := gateway.Follow("triage/manual", lastEvent(t, g, stream), 0, &gateway.MessageRouted{Offices: []string{"rechtsamt"}, DecidedBy: "post"})
	if _, err := g.Log.Append(ctx, rerouted); err != nil {
		t.Fatal(err)
	}
	again, err = rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: ack, Via: "api"})
	if err != nil || !again.Existing || again.EventID != res.EventID {
		t.Fatalf("repeat after rerouting: %+v %v (first %s)", again, err, res.EventID)
	}
	if _, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: &gateway.EEBAnswer{Decision: "refused", RefusalCode: "3"}}); !errors.Is(err, replies.ErrConflict) {
		t.Fatalf("same key, other decision after rerouting: %v", err)
	}
	// The same key with another decision, and another key at all, are
	// refused: the court gets one eEB.
	refuse := &gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "1"}
	if _, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: refuse}); !errors.Is(err, replies.ErrConflict) {
		t.Fatalf("same key, other decision: %v", err)
	}
	_, err = rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k2", EEB: refuse})
	if !errors.Is(err, replies.ErrConflict) || !strings.Contains(err.Error(), res.ReplyID) {
		t.Fatalf("second eEB: %v", err)
	}
	// An ordinary answer to the same message is still possible.
	if _, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k3", Text: []byte("Rückfrage")}); err != nil {
		t.Fatalf("text answer beside the eEB: %v", err)
	}
	// Once the first failed for good, another may go.
	failed, _ := gateway.Follow("test/fail", lastEvent(t, g, stream), 0, &gateway.ReplyFailed{ReplyID: res.ReplyID, Attempt: 1, Error: "refused", Permanent: true})
	if _, err := g.Log.Append(ctx, failed); err != nil {
		t.Fatal(err)
	}
	second, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k2", EEB: refuse})
	if err != nil || second.Existing {
		t.Fatalf("eEB after a permanent failure: %+v %v", second, err)
	}
	// The first one's request repeated is still the first, not a conflict.
	if again, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k1", EEB: ack, Via: "api"}); err != nil || !again.Existing {
		t.Fatalf("repeat of the failed one: %+v %v", again, err)
	}
	if _, err := rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "k4", EEB: ack}); !errors.Is(err, replies.ErrConflict) {
		t.Fatalf("third eEB while the second is pending: %v", err)
	}
	if n := eebCount(t, g, stream); n != 2 {
		t.Fatalf("%d eEB answers recorded, want 2", n)
	}
}

func TestRequestEEBRefused(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	rq := replies.Requester{Log: g.Log, Blobs: g.Blobs, Plan: egvpPolicy(t).Plan, Now: func() time.Time { return now }}
	alice := offices.Principal{User: "alice", Role: offices.RoleOffice, Offices: []string{"rechtsamt"}}
	ack := &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-02"}
	old := seedRouted(t, g, "egvp:eeb-2x", eebRequest(now.Add(-time.Hour), "2.4.0"), "rechtsamt")
	plain := eebRequest(now.Add(-time.Hour), "3.5.1")
	plain.EGVP.EEBRequested, plain.EGVP.EEBDocuments = false, nil
	noEEB := seedRouted(t, g, "egvp:plain", plain, "rechtsamt")
	mail := seedRouted(t, g, "smtp:eeb", &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "a@example.org"},
		ReceivedAt: now}, "rechtsamt")
	for _, tt := range []struct {
		name   string
		by     offices.Principal
		stream string
		a      replies.Answer
		want   error
	}{
		{"refusal to 2.x", alice, old, replies.Answer{EEB: &gateway.EEBAnswer{Decision: "refused", RefusalCode: "1"}}, replies.ErrInvalid},
		{"no eEB asked", alice, noEEB, replies.Answer{EEB: ack}, replies.ErrCannotAnswer},
		{"e-mail", alice, mail, replies.Answer{EEB: ack}, replies.ErrCannotAnswer},
		{"other office", offices.Principal{User: "bob", Role: offices.RoleOffice, Offices: []string{"bauamt"}}, old, replies.Answer{EEB: ack}, replies.ErrForbidden},
		{"NUL in the text", alice, old, replies.Answer{EEB: ack, Text: []byte("a\x00")}, replies.ErrInvalid},
		{"bad decision before the log is read", alice, "msg-none", replies.Answer{EEB: &gateway.EEBAnswer{Decision: "x"}}, replies.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := rq.RequestReply(ctx, tt.by, "rechtsamt", tt.stream, tt.a); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	for _, s := range []string{old, noEEB, mail} {
		if n := countRequests(t, g, s); n != 0 {
			t.Fatalf("%s: %d ReplyRequested recorded for refused requests", s, n)
		}
	}
}

// TestRequestEEBRace: many members answering the same request at once,
// each with their own key, record one eEB.
func TestRequestEEBRace(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	rq := replies.Requester{Log: g.Log, Blobs: g.Blobs, Plan: egvpPolicy(t).Plan, Now: func() time.Time { return now }}
	alice := offices.Principal{User: "alice", Role: offices.RoleOffice, Offices: []string{"rechtsamt"}}
	stream := seedRouted(t, g, "egvp:race", eebRequest(now.Add(-time.Hour), "3.5.1"), "rechtsamt")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = rq.RequestReply(ctx, alice, "rechtsamt", stream, replies.Answer{Key: "race-" + string(rune('a'+i)),
				EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-02"}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, replies.ErrConflict):
			t.Errorf("err = %v, want ErrConflict", err)
		}
	}
	if ok != 1 || eebCount(t, g, stream) != 1 {
		t.Fatalf("%d requests succeeded, %d eEBs recorded; want 1 and 1", ok, eebCount(t, g, stream))
	}
}

func eebCount(t *testing.T, g *gatewaytest.Env, stream string) int {
	n := 0
	for _, r := range requests(t, g, stream) {
		if r.EEB != nil {
			n++
		}
	}
	return n
}

func lastEvent(t *testing.T, g *gatewaytest.Env, stream string) *eventstore.Event {
	t.Helper()
	evs, err := g.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil || len(evs) == 0 {
		t.Fatal(err)
	}
	return &evs[len(evs)-1]
}

// FuzzCheckEEB: whatever a form or a client sends, an answer CheckEEBFor
// accepts is one the EGVP sender can write: a known decision with exactly
// its own fields, a real date within the bounds, a code of the Codeliste, a
// short reason without control characters.
func FuzzCheckEEB(f *testing.F) {
	f.Add("acknowledged", "2026-12-02", "", "", "3.5.1")
	f.Add("refused", "", "2", "Anlage K3 fehlt", "2.4.0")
	f.Add("refused", "2026-12-02", "9", "a\nb", "")
	f.Add("acknowledged", "2026-02-30", "1", "", "3.5.1")
	f.Add("", "0000-01-01", "", "\xff", "3")
	received := eebRequest(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), "")
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, decision, on, code, reason, version string) {
		received.EGVP.XJustizVersion = version
		a := &gateway.EEBAnswer{Decision: decision, ReceivedOn: on, RefusalCode: code, Reason: reason}
		if err := replies.CheckEEBFor(a, received, now); err != nil {
			if !errors.Is(err, replies.ErrInvalid) {
				t.Fatalf("%+v: %v is not ErrInvalid", a, err)
			}
			return
		}
		switch decision {
		case gateway.EEBAcknowledged:
			d, err := time.Parse(time.DateOnly, on)
			if err != nil || code != "" || reason != "" || d.Before(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) || d.After(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("accepted %+v", a)
			}
		case gateway.EEBRefused:
			if on != "" || (code != "1" && code != "2" && code != "3") || len(reason) > replies.MaxEEBReasonBytes ||
				strings.ContainsAny(reason, "\r\n\x00") || strings.HasPrefix(version, "2.") {
				t.Fatalf("accepted %+v to %q", a, version)
			}
		default:
			t.Fatalf("accepted decision %q", decision)
		}
	})
}
