package demail

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// TestConfirmationHash records confirmations whose Hash names the right or
// the wrong content, of an answer we sent and of a message we received,
// and checks what the evidence says about each.
func TestConfirmationHash(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	env := gatewaytest.New(t)
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(ctx, projection.References{}); err != nil {
		t.Fatal(err)
	}
	a := &adapter{blobs: env.Blobs, trust: w.trust, max: 1 << 20, evidence: projection.NewEvidenceRecorder(runner), tenant: gateway.DefaultTenant}
	appendEv := func(e eventstore.Event, err error) *eventstore.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Log.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		return &e
	}

	// A received De-Mail whose integrity field the provider's receipt
	// confirmation repeats, and our answer to it with the bytes we submitted.
	integrity := "v=1; a=sha256/ec-dsa; c=simple/simple;\r\n h=from:to; bh=Ym9keQ==; b=c2ln"
	rawIn, _ := env.Blobs.PutBytes(ctx, []byte("From: erika@mustermann.de-mail.example\r\nX-de-mail-integrity: "+integrity+"\r\n\r\nAntrag\r\n"))
	orig := appendEv(gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelDeMail, "a/1"), &gateway.MessageReceived{
		Channel: gateway.ChannelDeMail, SenderMessageID: "in-1@provider.de-mail.example", Raw: rawIn,
		From: gateway.Address{Address: "erika@mustermann.de-mail.example"}, ReceivedAt: time.Unix(1e9, 0).UTC()}))
	answerBody := "Sehr geehrte Frau Mustermann,\r\nIhr Antrag ist eingegangen.\r\n"
	sent, _ := env.Blobs.PutBytes(ctx, []byte("From: poststelle@kreis.de-mail.example\r\nSubject: Re: Antrag\r\n\r\n"+answerBody))
	req := appendEv(gateway.Follow("api", orig, 0, &gateway.ReplyRequested{ReplyID: "rpl-1", Office: "bau", Channel: gateway.ChannelDeMail,
		To: gateway.Address{Address: "erika@mustermann.de-mail.example"}, Subject: "Re: Antrag"}))
	appendEv(gateway.Follow("replies", req, 0, &gateway.ReplySent{ReplyID: "rpl-1", Channel: gateway.ChannelDeMail, Attempt: 1, Sent: sent}))
	if err := runner.CatchUp(ctx, projection.References{}); err != nil {
		t.Fatal(err)
	}
	bh := func(body string) string {
		d := sha256.Sum256([]byte(body))
		return base64.StdEncoding.EncodeToString(d[:])
	}

	for i, tc := range []struct {
		name      string
		privateID string // links the confirmation
		hash      string
		replyID   string
		detail    string
		problem   bool
	}{
		{"answer as submitted", "rpl-1", "v=1; a=sha256/ec-dsa; bh=" + bh(answerBody) + "; b=AAAA", "rpl-1", "body hash matches the answer as submitted", false},
		{"answer with other content", "rpl-1", "v=1; a=sha256/ec-dsa; bh=" + bh("Ihr Antrag ist abgelehnt.\r\n") + "; b=AAAA", "rpl-1",
			"body hash differs from the answer as submitted", true},
		{"received message, refolded", "in-1@provider.de-mail.example", strings.ReplaceAll(integrity, "\r\n ", " "), "",
			"matches the confirmed message's X-de-mail-integrity", false},
		{"received message, other hash", "in-1@provider.de-mail.example", strings.Replace(integrity, "Ym9keQ==", "b3RoZXI=", 1), "",
			"differs from the confirmed message's X-de-mail-integrity", true},
		{"no Hash", "rpl-1", "", "rpl-1", "missing", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*")
			for j := range fields {
				switch fields[j][0] {
				case "X-de-mail-private-id":
					fields[j][1] = tc.privateID
				case "X-de-mail-message-id":
					fields[j][1] = "c-" + string(rune('a'+i)) + "@provider.de-mail.example"
				}
			}
			xml := strings.Replace(ackXML, "<Hash>v=1; a=sha256/ec-dsa; b=AAAA</Hash>", "<Hash>"+tc.hash+"</Hash>", 1)
			msg := stamp{fields: fields, body: confirmationBody(xml), alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
			raw, _ := env.Blobs.PutBytes(ctx, msg)
			rec := &gateway.MessageReceived{ReceivedAt: time.Now()}
			if err := a.recordConfirmation(ctx, msg, raw, rec); err != nil {
				t.Fatal(err)
			}
			ev := lastEvidence(t, env, orig.Stream)
			if ev.ReplyID != tc.replyID || !strings.Contains(ev.Verification.Detail, "Hash: "+tc.detail) {
				t.Fatalf("reply %q detail %q; want %q and %q", ev.ReplyID, ev.Verification.Detail, tc.replyID, tc.detail)
			}
			if got := strings.Contains(strings.Join(ev.Problems, "\n"), "confirmation Hash"); got != tc.problem {
				t.Errorf("problems %q: want a Hash problem %v", ev.Problems, tc.problem)
			}
		})
	}
}

// lastEvidence is the newest DeliveryEvidenceRecorded of stream.
func lastEvidence(t *testing.T, env *gatewaytest.Env, stream string) *gateway.DeliveryEvidenceRecorded {
	t.Helper()
	events, err := env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	for i := len(events) - 1; i >= 0; i-- {
		if p, err := reg.Decode(&events[i]); err == nil {
			if ev, ok := p.(*gateway.DeliveryEvidenceRecorded); ok {
				return ev
			}
		}
	}
	t.Fatal("no evidence in the stream")
	return nil
}
