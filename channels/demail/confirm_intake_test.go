package demail

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// TestIntakeRecordsConfirmationAsEvidence delivers a provider's receipt
// confirmation through the SMTP intake: it becomes delivery evidence in the
// stream of the message it confirms, the confirmation itself is kept as a
// receipt, and a redelivery adds neither evidence nor a second receipt.
func TestIntakeRecordsConfirmationAsEvidence(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	env := gatewaytest.New(t)
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(ctx, projection.References{}); err != nil {
		t.Fatal(err)
	}
	evidence := projection.NewEvidenceRecorder(runner)
	orig, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelDeMail, "a/1"), &gateway.MessageReceived{
		Channel: gateway.ChannelDeMail, SenderMessageID: "4711@provider.de-mail.example",
		From: gateway.Address{Address: "erika.mustermann@mustermann.de-mail.example"}, ReceivedAt: time.Unix(1e9, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Log.Append(ctx, orig); err != nil {
		t.Fatal(err)
	}
	g := newSMTPGateway(t, w.ca)
	g.start(t, gateway.IntakeDeps{Intake: &gateway.Intake{Log: env.Log}, Evidence: evidence, Blobs: env.Blobs,
		Logger: slog.New(slog.DiscardHandler)}, 0)
	msg := stamp{fields: confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"), body: confirmationBody(ackXML),
		alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	for round := range 2 {
		if a := g.deliver(t, msg, &g.client, true); !a.Accepted {
			t.Fatalf("round %d: confirmation refused: %+v", round, a)
		}
	}
	var evidenceIn, receipts int
	events, err := env.Log.Read(ctx, 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	for i := range events {
		p, err := reg.Decode(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case *gateway.DeliveryEvidenceRecorded:
			if events[i].Stream != orig.Stream || p.Kind != gateway.EvidenceDelivered {
				t.Errorf("evidence %+v in stream %s, want kind delivered in %s", p, events[i].Stream, orig.Stream)
			}
			evidenceIn++
		case *gateway.MessageReceived:
			receipts++
		}
	}
	if evidenceIn != 1 || receipts != 2 {
		t.Fatalf("%d evidence events and %d receipts, want 1 and 2 (the original and the confirmation)", evidenceIn, receipts)
	}
}
