package offices

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// TestInboxEvidence records confirmations of a De-Mail message and of its
// answer through the EvidenceRecorder, and one no message matches: the
// office sees the first two on the message, the mailroom the third in
// triage, and a rebuild reproduces both.
func TestInboxEvidence(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Inbox{}
	refs := projection.References{}
	if err := e.run.Setup(ctx, refs); err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelDeMail, "p1"), &gateway.MessageReceived{
		Channel: gateway.ChannelDeMail, SenderMessageID: "<antrag@buerger.de-mail.de>", Subject: "Antrag",
		From: gateway.Address{Address: "buerger@buerger.de-mail.de"}, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	rcv := e.append(t, ev)
	routed := e.follow(t, "route", rcv, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	e.follow(t, "reply", routed, &gateway.ReplyRequested{ReplyID: "rep-1", Office: "bauamt", Author: "mueller",
		Channel: gateway.ChannelDeMail, To: gateway.Address{Address: "buerger@buerger.de-mail.de"}, Subject: "Bescheid"})
	rec := projection.NewEvidenceRecorder(e.run)
	attested := time.Date(2026, 1, 3, 8, 0, 0, 0, time.UTC)
	record := func(kind gateway.EvidenceKind, id, ref string) gateway.EvidenceReceipt {
		t.Helper()
		r, err := rec.Record(ctx, "", &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelDeMail, Kind: kind,
			References: []gateway.EvidenceReference{{Kind: "privateId", Value: ref}},
			Attester:   gateway.Attester{Role: "provider", Name: "Beispiel-Provider", ID: "beispiel.de-mail.de"},
			AttestedAt: attested, EvidenceID: id, Evidence: blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 9}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	record(gateway.EvidenceDispatched, "<c1@p>", "rep-1")
	record(gateway.EvidenceDelivered, "<c2@p>", "<antrag@buerger.de-mail.de>")
	lost := record(gateway.EvidenceRetrieved, "<c3@p>", "rep-unknown")
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}

	m, err := GetMessage(ctx, e.db, "bauamt", rcv.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Evidence) != 2 {
		t.Fatalf("evidence: %+v", m.Evidence)
	}
	if a, b := m.Evidence[0], m.Evidence[1]; a.Kind != gateway.EvidenceDispatched || a.ReplyID != "rep-1" || a.LinkedBy != "replyId" ||
		!a.AttestedAt.Equal(attested) || a.RecordedAt.IsZero() || a.EventID == "" || a.Evidence.Size != 9 ||
		b.Kind != gateway.EvidenceDelivered || b.ReplyID != "" || b.LinkedBy != "senderMessageId" {
		t.Fatalf("evidence: %+v", m.Evidence)
	}
	if msgs, _ := ListInbox(ctx, e.db, "bauamt", 0); len(msgs) != 1 || msgs[0].Evidence != nil {
		t.Fatalf("listing: %+v", msgs)
	}
	it, err := GetTriage(ctx, e.db, lost.Stream)
	if err != nil || it.Kind != "evidence" || it.State != "open" || !strings.Contains(it.Reason, "privateId") || !strings.Contains(it.Reason, "retrieved") {
		t.Fatalf("unlinked evidence in triage: %+v %v", it, err)
	}

	before, err := Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run.Rebuild(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if after, _ := Dump(ctx, e.db); after != before || !strings.Contains(before, "evidence\t") {
		t.Fatalf("rebuilt inbox differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestInboxExpiredAnswer: evidence that an answer was not acknowledged in
// time (kind expired, about an answer) stays on the message and opens a
// triage item of kind reply; the same kind about the message itself does
// not.
func TestInboxExpiredAnswer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Inbox{}
	if err := e.run.Setup(ctx, projection.References{}); err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelPortal, "d:s1"), &gateway.MessageReceived{
		Channel: gateway.ChannelPortal, SenderMessageID: "s1", Subject: "Antrag", ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	rcv := e.append(t, ev)
	routed := e.follow(t, "route", rcv, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	e.follow(t, "reply", routed, &gateway.ReplyRequested{ReplyID: "rep-9", Office: "bauamt", Author: "mueller",
		Channel: gateway.ChannelPortal, Subject: "Bescheid"})
	rec := projection.NewEvidenceRecorder(e.run)
	if _, err := rec.Record(ctx, "", &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelPortal, Kind: gateway.EvidenceExpired,
		References: []gateway.EvidenceReference{{Kind: "replyId", Value: "rep-9"}},
		Attester:   gateway.Attester{Role: "portal", Name: "FIT-Connect event log"}, AttestedAt: time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC),
		EvidenceID: "no-ack:r-9", Reason: "no acknowledgement of the reply"}); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	it, err := GetTriage(ctx, e.db, rcv.Stream)
	if err != nil || it.Kind != "reply" || it.State != "open" || !strings.Contains(it.Reason, "rep-9") ||
		!strings.Contains(it.Reason, "no acknowledgement of the reply") {
		t.Fatalf("triage: %+v %v", it, err)
	}
	if m, err := GetMessage(ctx, e.db, "bauamt", rcv.Stream); err != nil || len(m.Evidence) != 1 || m.Evidence[0].Kind != gateway.EvidenceExpired {
		t.Fatalf("evidence on the message: %+v %v", m.Evidence, err)
	}
	hs := TriageQueue()
	for _, h := range hs {
		if h.Topic != "DeliveryEvidenceRecorded" {
			continue
		}
		for _, tc := range []struct {
			ev   *gateway.DeliveryEvidenceRecorded
			want string
		}{
			{&gateway.DeliveryEvidenceRecorded{Kind: gateway.EvidenceExpired, ReplyID: "rep-9"}, "reply"},
			{&gateway.DeliveryEvidenceRecorded{Kind: gateway.EvidenceExpired}, ""},
			{&gateway.DeliveryEvidenceRecorded{Kind: gateway.EvidenceRetrieved, ReplyID: "rep-9"}, ""},
		} {
			out, err := h.Handle(ctx, rcv, tc.ev)
			got := ""
			if len(out) == 1 {
				got = out[0].(*gateway.TriageQueued).Kind
			}
			if err != nil || got != tc.want {
				t.Errorf("%+v: triage %q, want %q (%v)", tc.ev, got, tc.want, err)
			}
		}
	}
}
