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
