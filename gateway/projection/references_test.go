package projection_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

type evidenceEnv struct {
	env    *gatewaytest.Env
	runner *projection.Runner
	rec    *gateway.EvidenceRecorder
}

func newEvidenceEnv(t *testing.T, catchUp bool) *evidenceEnv {
	t.Helper()
	env := gatewaytest.New(t)
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(context.Background(), projection.References{}); err != nil {
		t.Fatal(err)
	}
	rec := &gateway.EvidenceRecorder{Log: env.Log, Links: projection.Links{DB: env.State}}
	if catchUp {
		rec.CatchUp = func(ctx context.Context) error { return runner.CatchUp(ctx, projection.References{}) }
	}
	return &evidenceEnv{env: env, runner: runner, rec: rec}
}

func (e *evidenceEnv) receive(t *testing.T, ch gateway.Channel, key, msgID, coords string) eventstore.Event {
	t.Helper()
	ev, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(ch, key), &gateway.MessageReceived{Channel: ch,
		SenderMessageID: msgID, From: gateway.Address{Address: "buerger@example.org"}, ReceivedAt: time.Unix(1e9, 0).UTC(),
		Transport: gateway.TransportEvidence{Coordinates: coords}})
	if err != nil {
		t.Fatal(err)
	}
	return e.append(t, ev)
}

func (e *evidenceEnv) follow(t *testing.T, handler string, cause eventstore.Event, p gateway.Payload) eventstore.Event {
	t.Helper()
	return e.env.Follow(t, handler, cause, p)
}

func (e *evidenceEnv) append(t *testing.T, ev eventstore.Event) eventstore.Event {
	t.Helper()
	return e.env.Append(t, ev)
}

func (e *evidenceEnv) catchUp(t *testing.T) {
	t.Helper()
	if err := e.runner.CatchUp(context.Background(), projection.References{}); err != nil {
		t.Fatal(err)
	}
}

// streamEvidence returns the evidence events of a stream.
func (e *evidenceEnv) streamEvidence(t *testing.T, stream string) []*gateway.DeliveryEvidenceRecorded {
	t.Helper()
	return gatewaytest.Payloads[*gateway.DeliveryEvidenceRecorded](t, e.env.Log, gateway.DefaultTenant, stream)
}

var evidenceBlob = blob.Ref{SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", Size: 6}

func confirmation(kind gateway.EvidenceKind, id string, refs ...gateway.EvidenceReference) *gateway.DeliveryEvidenceRecorded {
	return &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelDeMail, Kind: kind, References: refs,
		Attester:   gateway.Attester{Role: "provider", Name: "Beispiel-Provider", ID: "beispiel.de-mail.de"},
		AttestedAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), EvidenceID: id, Evidence: evidenceBlob,
		MediaType: "message/rfc822", Verification: &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "S/MIME"}}
}

func msgRef(v string) gateway.EvidenceReference {
	return gateway.EvidenceReference{Kind: "messageId", Value: v}
}
func privRef(v string) gateway.EvidenceReference {
	return gateway.EvidenceReference{Kind: "privateId", Value: v}
}

// TestEvidenceLinking records confirmations about received messages and
// about answers, and checks where each one went and what it says.
func TestEvidenceLinking(t *testing.T) {
	ctx := context.Background()
	e := newEvidenceEnv(t, false)
	inbound := e.receive(t, gateway.ChannelDeMail, "p1", "<antrag-1@buerger.de-mail.de>", "provider-ref-1")
	e.follow(t, "reply", inbound, &gateway.ReplyRequested{ReplyID: "rpl-7", Office: "bauamt", Author: "m", Channel: gateway.ChannelDeMail,
		To: gateway.Address{Address: "buerger@buerger.de-mail.de"}, Subject: "Bescheid"})
	rq := e.follow(t, "reply2", inbound, &gateway.ReplyRequested{ReplyID: "rpl-8", Office: "bauamt", Author: "m", Channel: gateway.ChannelDeMail,
		To: gateway.Address{Address: "buerger@buerger.de-mail.de"}, Subject: "Bescheid 2"})
	e.follow(t, "sender", rq, &gateway.ReplySent{ReplyID: "rpl-8", Channel: gateway.ChannelDeMail, ChannelMessageID: "<rpl-8@kreis.de-mail.de>", Attempt: 1})
	// The same Message-ID on plain e-mail must not capture De-Mail evidence.
	e.receive(t, gateway.ChannelSMTP, "s1", "<rpl-8@kreis.de-mail.de>", "")
	// Two De-Mail messages that share a Message-ID.
	dupA := e.receive(t, gateway.ChannelDeMail, "p2", "<reused@buerger.de-mail.de>", "")
	e.receive(t, gateway.ChannelDeMail, "p3", "<reused@buerger.de-mail.de>", "")
	e.catchUp(t)

	tests := []struct {
		name                    string
		ev                      *gateway.DeliveryEvidenceRecorded
		stream, reply, linkedBy string
		unlinked                string // a part of the reason, when it is not linked
	}{
		{"message by message id", confirmation(gateway.EvidenceDelivered, "<c1@p>", msgRef("<antrag-1@buerger.de-mail.de>")),
			inbound.Stream, "", "senderMessageId", ""},
		{"message by coordinates", confirmation(gateway.EvidenceRetrieved, "<c2@p>", msgRef("provider-ref-1")),
			inbound.Stream, "", "coordinates", ""},
		{"answer by private id before it was sent", confirmation(gateway.EvidenceDispatched, "<c3@p>", privRef("rpl-7")),
			inbound.Stream, "rpl-7", "replyId", ""},
		{"answer by its message id", confirmation(gateway.EvidenceRetrieved, "<c4@p>", msgRef("<rpl-8@kreis.de-mail.de>")),
			inbound.Stream, "rpl-8", "replyMessageId", ""},
		{"first matching reference wins", confirmation(gateway.EvidenceExpired, "<c5@p>", privRef("nobody"), msgRef("<rpl-8@kreis.de-mail.de>")),
			inbound.Stream, "rpl-8", "replyMessageId", ""},
		{"unknown reference", confirmation(gateway.EvidenceNotDelivered, "<c6@p>", privRef("nobody"), msgRef("<nobody@x>")),
			"", "", "", "has this privateId or messageId"},
		{"ambiguous reference", confirmation(gateway.EvidenceDelivered, "<c7@p>", msgRef("<reused@buerger.de-mail.de>")),
			"", "", "", "names 2 messages"},
		{"no usable reference", confirmation(gateway.EvidenceDelivered, "<c8@p>", msgRef(strings.Repeat("x", 2000))),
			"", "", "", "no usable reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.rec.Record(ctx, "", tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got.Duplicate || got.Linked != (tt.unlinked == "") {
				t.Fatalf("receipt %+v", got)
			}
			if tt.unlinked == "" && got.Stream != tt.stream {
				t.Fatalf("went to %s, want %s", got.Stream, tt.stream)
			}
			if tt.unlinked != "" && (!strings.HasPrefix(got.Stream, "evd-") || got.Stream == dupA.Stream) {
				t.Fatalf("unlinked evidence went to %s", got.Stream)
			}
			evs := e.streamEvidence(t, got.Stream)
			var rec *gateway.DeliveryEvidenceRecorded
			for _, ev := range evs {
				if ev.EvidenceID == tt.ev.EvidenceID {
					rec = ev
				}
			}
			if rec == nil {
				t.Fatalf("no evidence %s in %s", tt.ev.EvidenceID, got.Stream)
			}
			if rec.ReplyID != tt.reply || rec.LinkedBy != tt.linkedBy || !strings.Contains(rec.Unlinked, tt.unlinked) ||
				(tt.unlinked == "") != (rec.Unlinked == "") || rec.Kind != tt.ev.Kind || rec.Evidence != evidenceBlob ||
				rec.Attester != tt.ev.Attester || !rec.AttestedAt.Equal(tt.ev.AttestedAt) || rec.Verification == nil {
				t.Fatalf("recorded %+v", rec)
			}
		})
	}
	// The oversized reference is named among the problems.
	evs := e.streamEvidence(t, mustRecord(t, e, confirmation(gateway.EvidenceDelivered, "<c8@p>", msgRef(strings.Repeat("x", 2000)))).Stream)
	if len(evs) != 1 || len(evs[0].Problems) != 1 || !strings.Contains(evs[0].Problems[0], "over 998") {
		t.Fatalf("oversized reference: %+v", evs)
	}
}

func mustRecord(t *testing.T, e *evidenceEnv, ev *gateway.DeliveryEvidenceRecorded) gateway.EvidenceReceipt {
	t.Helper()
	r, err := e.rec.Record(context.Background(), "", ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEvidenceOnce records the same confirmations again, as a channel does
// that fetched them twice or crashed before deleting them.
func TestEvidenceOnce(t *testing.T) {
	e := newEvidenceEnv(t, false)
	m := e.receive(t, gateway.ChannelDeMail, "p1", "<antrag-1@buerger.de-mail.de>", "")
	e.catchUp(t)
	withID := confirmation(gateway.EvidenceDelivered, "<c1@p>", msgRef("<antrag-1@buerger.de-mail.de>"))
	withoutID := confirmation(gateway.EvidenceRetrieved, "", msgRef("<antrag-1@buerger.de-mail.de>"))
	unknown := confirmation(gateway.EvidenceRetrieved, "<c3@p>", msgRef("<later@buerger.de-mail.de>"))
	first := []gateway.EvidenceReceipt{mustRecord(t, e, withID), mustRecord(t, e, withoutID), mustRecord(t, e, unknown)}
	// The unknown message arrives in between: the evidence stays where it
	// was first recorded, in triage, and is not recorded a second time.
	e.receive(t, gateway.ChannelDeMail, "p9", "<later@buerger.de-mail.de>", "")
	e.catchUp(t)
	for i, ev := range []*gateway.DeliveryEvidenceRecorded{withID, withoutID, unknown} {
		again := mustRecord(t, e, ev)
		if first[i].Duplicate || !again.Duplicate || again.EventID != first[i].EventID || again.Stream != first[i].Stream ||
			again.Linked != first[i].Linked {
			t.Fatalf("evidence %d: first %+v, again %+v", i, first[i], again)
		}
	}
	if n := len(e.streamEvidence(t, m.Stream)); n != 2 {
		t.Fatalf("%d evidence events in the message's stream, want 2", n)
	}
	if first[2].Linked || len(e.streamEvidence(t, first[2].Stream)) != 1 {
		t.Fatalf("unknown evidence: %+v", first[2])
	}
}

// TestEvidenceCatchUp records a confirmation of an answer whose request
// the index has not seen yet: the recorder brings the index up to date
// instead of sending the evidence to triage.
func TestEvidenceCatchUp(t *testing.T) {
	for _, catchUp := range []bool{false, true} {
		e := newEvidenceEnv(t, catchUp)
		m := e.receive(t, gateway.ChannelDeMail, "p1", "<antrag-1@buerger.de-mail.de>", "")
		e.follow(t, "reply", m, &gateway.ReplyRequested{ReplyID: "rpl-1", Office: "bauamt", Author: "m", Channel: gateway.ChannelDeMail})
		got := mustRecord(t, e, confirmation(gateway.EvidenceDispatched, "<c1@p>", privRef("rpl-1")))
		if got.Linked != catchUp || (catchUp && got.Stream != m.Stream) {
			t.Fatalf("catch up %v: %+v", catchUp, got)
		}
	}
}

func TestEvidenceRefused(t *testing.T) {
	e := newEvidenceEnv(t, false)
	tests := []struct {
		name string
		edit func(*gateway.DeliveryEvidenceRecorded)
	}{
		{"unknown kind", func(ev *gateway.DeliveryEvidenceRecorded) { ev.Kind = "opened-maybe" }},
		{"no channel", func(ev *gateway.DeliveryEvidenceRecorded) { ev.Channel = "" }},
		{"no identity", func(ev *gateway.DeliveryEvidenceRecorded) { ev.EvidenceID, ev.Evidence = "", blob.Ref{} }},
		{"no reference", func(ev *gateway.DeliveryEvidenceRecorded) { ev.References = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := confirmation(gateway.EvidenceDelivered, "<c1@p>", msgRef("<m@x>"))
			tt.edit(ev)
			if _, err := e.rec.Record(context.Background(), "", ev); !errors.Is(err, gateway.ErrEvidence) {
				t.Fatalf("error %v, want ErrEvidence", err)
			}
		})
	}
}

// TestEvidenceInspectors checks that inspectors see the link and complete
// linked evidence before it is recorded, leave the caller's value alone,
// and are not called for evidence nothing links.
func TestEvidenceInspectors(t *testing.T) {
	e := newEvidenceEnv(t, false)
	m := e.receive(t, gateway.ChannelDeMail, "p1", "<antrag-1@buerger.de-mail.de>", "")
	e.catchUp(t)
	var seen []gateway.EvidenceLink
	inspect := func(_ context.Context, link gateway.EvidenceLink, rec *gateway.DeliveryEvidenceRecorded) {
		seen = append(seen, link)
		rec.Problems = append(rec.Problems, "inspected")
		rec.Verification.Detail += "; inspected"
	}
	ev := confirmation(gateway.EvidenceDelivered, "<c1@p>", msgRef("<antrag-1@buerger.de-mail.de>"))
	detail := ev.Verification.Detail
	got, err := e.rec.Record(context.Background(), "", ev, inspect)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Stream != m.Stream || seen[0].Source != "senderMessageId" {
		t.Fatalf("inspector saw %+v", seen)
	}
	evs := e.streamEvidence(t, got.Stream)
	if len(evs) != 1 || !slices.Contains(evs[0].Problems, "inspected") || !strings.HasSuffix(evs[0].Verification.Detail, "; inspected") {
		t.Fatalf("recorded %+v", evs)
	}
	if len(ev.Problems) != 0 || ev.Verification.Detail != detail {
		t.Fatalf("the caller's evidence changed: %+v", ev)
	}
	if _, err := e.rec.Record(context.Background(), "", confirmation(gateway.EvidenceDelivered, "<c2@p>", msgRef("<nobody@x>")), inspect); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 {
		t.Fatalf("inspector ran on unlinked evidence: %+v", seen)
	}
}
