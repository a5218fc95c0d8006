package replies_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// seedRouted appends a received message routed to office and returns its stream.
func seedRouted(t *testing.T, g *gatewaytest.Env, key string, rec *gateway.MessageReceived, office string) string {
	t.Helper()
	ev, err := gateway.NewReceived("", key, rec)
	if err != nil {
		t.Fatal(err)
	}
	routed, _ := gateway.Follow("test", &ev, 0, &gateway.MessageRouted{Offices: []string{office}, DecidedBy: "rules"})
	if _, err := g.Log.Append(context.Background(), ev, routed); err != nil {
		t.Fatal(err)
	}
	return ev.Stream
}

func TestRequestReply(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	from := gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}
	mail := seedRouted(t, g, "smtp:1", &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<antrag-1@example.org>",
		From: from, Subject: "Antrag", ReceivedAt: time.Now()}, "bauamt")
	imap := seedRouted(t, g, "imap:INBOX/1/7", &gateway.MessageReceived{Channel: gateway.ChannelIMAP, SenderMessageID: "<imap-7@example.org>",
		Transport: gateway.TransportEvidence{Coordinates: "INBOX/1/7"}, From: from, Subject: "Re: Frage"}, "bauamt")
	egvp := seedRouted(t, g, "egvp:1", &gateway.MessageReceived{Channel: gateway.ChannelEGVP, From: gateway.Address{Address: "DE.Justiz.1"}}, "bauamt")
	rq := replies.Requester{Log: g.Log, Blobs: g.Blobs, Plan: testPolicy(t).Plan}
	alice := offices.Principal{User: "alice", Role: offices.RoleOffice, Offices: []string{"bauamt"}}
	text := []byte("Sehr geehrte Frau Muster")

	for _, tt := range []struct {
		name    string
		by      offices.Principal
		office  string
		stream  string
		a       replies.Answer
		wantErr error
		irt     string
		subject string
	}{
		{"smtp", alice, "bauamt", mail, replies.Answer{Key: "k1", Text: text}, nil, "<antrag-1@example.org>", "Re: Antrag"},
		{"imap threads to the sender's id", alice, "bauamt", imap, replies.Answer{Key: "k1", Text: text, Subject: "Antwort"}, nil, "<imap-7@example.org>", "Antwort"},
		{"other office", alice, "ordnungsamt", mail, replies.Answer{Key: "k2", Text: text}, replies.ErrForbidden, "", ""},
		{"auditor may not answer", offices.Principal{User: "rpa", Role: offices.RoleAuditor}, "bauamt", mail, replies.Answer{Text: text}, replies.ErrForbidden, "", ""},
		{"not routed there", offices.Principal{User: "bob", Role: offices.RoleOffice, Offices: []string{"ordnungsamt"}}, "ordnungsamt", mail, replies.Answer{Text: text}, replies.ErrNotFound, "", ""},
		{"no such stream", alice, "bauamt", "msg-nothing", replies.Answer{Text: text}, replies.ErrNotFound, "", ""},
		{"header injection", alice, "bauamt", mail, replies.Answer{Text: text, Subject: "Hallo\r\nBcc: x@y"}, replies.ErrInvalid, "", ""},
		{"empty answer", alice, "bauamt", mail, replies.Answer{Text: []byte("  \n")}, replies.ErrInvalid, "", ""},
		{"NUL in text", alice, "bauamt", mail, replies.Answer{Text: []byte("a\x00b")}, replies.ErrInvalid, "", ""},
		{"no way back", alice, "bauamt", egvp, replies.Answer{Text: text}, replies.ErrCannotAnswer, "", ""},
		{"key reused for another answer", alice, "bauamt", mail, replies.Answer{Key: "k1", Text: []byte("anders")}, replies.ErrConflict, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rq.RequestReply(ctx, tt.by, tt.office, tt.stream, tt.a)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if res.ReplyID != replies.ReplyID(tt.office, tt.stream, tt.a.Key) || res.Channel != gateway.ChannelSMTP || res.To.Address != from.Address || res.Existing {
				t.Fatalf("result %+v", res)
			}
			rr := lastRequest(t, g, tt.stream)
			if rr.ReplyID != res.ReplyID || rr.InReplyTo != tt.irt || rr.Subject != tt.subject || rr.Author != "alice" || rr.Office != tt.office {
				t.Fatalf("recorded %+v", rr)
			}
			if body, _ := g.Blobs.ReadAll(ctx, rr.Body, 0); string(body) != string(text) {
				t.Fatalf("body %q", body)
			}
		})
	}
	// Repeating a request records nothing new.
	again, err := rq.RequestReply(ctx, alice, "bauamt", mail, replies.Answer{Key: "k1", Text: text})
	if err != nil || !again.Existing {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	if n := countRequests(t, g, mail); n != 1 {
		t.Fatalf("%d ReplyRequested after a repeat", n)
	}
}

// TestReplyIDScheme pins the reply id scheme documented in wire-format.md.
func TestReplyIDScheme(t *testing.T) {
	if got := replies.ReplyID("bauamt", "msg-1", "k1"); got != "rpl-139c84be1f33bc74e51edba4072a5d29" {
		t.Fatalf("ReplyID = %s", got)
	}
}

func TestReplySubject(t *testing.T) {
	for in, want := range map[string]string{"Antrag": "Re: Antrag", "RE: Antrag": "RE: Antrag", "a\r\nb": "Re: a  b", "": "Re: "} {
		if got := replies.ReplySubject(in); got != want {
			t.Errorf("ReplySubject(%q) = %q, want %q", in, got, want)
		}
	}
}

func requests(t *testing.T, g *gatewaytest.Env, stream string) []*gateway.ReplyRequested {
	t.Helper()
	evs, err := g.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.ReplyRequested
	for i := range evs {
		if evs[i].Type == "ReplyRequested" {
			p, err := gateway.NewRegistry().Decode(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.(*gateway.ReplyRequested))
		}
	}
	return out
}

func lastRequest(t *testing.T, g *gatewaytest.Env, stream string) *gateway.ReplyRequested {
	rs := requests(t, g, stream)
	if len(rs) == 0 {
		t.Fatal("no ReplyRequested")
	}
	return rs[len(rs)-1]
}

func countRequests(t *testing.T, g *gatewaytest.Env, stream string) int {
	return len(requests(t, g, stream))
}
