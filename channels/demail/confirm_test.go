package demail

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// ackXML is an Acknowledge-Message (PVD IO clause 3.5.3) about the message
// of normalFields, without its ds:Signature.
const ackXML = `<?xml version="1.0" encoding="UTF-8"?>
<Acknowledge-Message xmlns="urn:de-mail">
  <Sender>eingangsbestaetigung@provider.de-mail.example</Sender>
  <Metadata>
    <Metadate><Name>Message-ID</Name><Value>&lt;4711@provider.de-mail.example&gt;</Value><OriginalHeader>Message-ID: &lt;4711@provider.de-mail.example&gt;</OriginalHeader></Metadate>
    <Metadate><Name>X-de-mail-message-id</Name><Value>4711@provider.de-mail.example</Value><OriginalHeader>X-de-mail-message-id: 4711@provider.de-mail.example</OriginalHeader></Metadate>
  </Metadata>
  <Subject>*Eingangsbestätigung* Antrag auf Baugenehmigung</Subject>
  <Text>Hiermit wird bestätigt, dass die Nachricht im Postfach des Empfängers abgelegt wurde.</Text>
  <Hash>v=1; a=sha256/ec-dsa; b=AAAA</Hash>
  <Time>2026-03-03T10:15:07+01:00</Time>
</Acknowledge-Message>
`

// confirmationFields are the header fields table 1 requires of a
// confirmation (class B) of the given type.
func confirmationFields(typ MessageType, subject string) [][2]string {
	return [][2]string{
		{"From", "eingangsbestaetigung@provider.de-mail.example"},
		{"To", "poststelle@kreis.de-mail.example"},
		{"Date", "Tue, 03 Mar 2026 10:15:07 +0100"},
		{"Message-ID", "<c-0815@provider.de-mail.example>"},
		{"Subject", subject + " Antrag auf Baugenehmigung"},
		{"X-de-mail-sender", "eingangsbestaetigung@provider.de-mail.example"},
		{"X-de-mail-chosen-recipient", "to=poststelle@kreis.de-mail.example"},
		{"X-de-mail-originator-provider", "provider.de-mail.example"},
		{"X-de-mail-message-type", string(typ)},
		{"X-de-mail-version", "1.8"},
		{"X-de-mail-private-id", "Az-63-2026-117"},
		{"X-de-mail-message-id", "c-0815@provider.de-mail.example"},
		{"X-de-mail-actual-recipient", "to=poststelle@kreis.de-mail.example"},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/mixed; boundary="b1"`},
	}
}

// confirmationBody is the multipart/mixed of clause 3.4.1: the XML
// (base64, folded) and the PDF rendering.
func confirmationBody(xmlData string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(xmlData))
	var folded strings.Builder
	for len(enc) > 76 {
		folded.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	folded.WriteString(enc + "\r\n")
	return "--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
		"--b1\r\nContent-Type: application/xml; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		folded.String() + "--b1--\r\n"
}

func TestConfirmation(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	signed := func(fields [][2]string, b string) []byte {
		return stamp{fields: fields, body: b, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	}
	receipt := signed(confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"), confirmationBody(ackXML))
	attested := time.Date(2026, 3, 3, 9, 15, 7, 0, time.UTC)
	wantRefs := []gateway.EvidenceReference{{Kind: "privateId", Value: "Az-63-2026-117"},
		{Kind: "messageId", Value: "4711@provider.de-mail.example"}, {Kind: "messageId", Value: "<4711@provider.de-mail.example>"}}

	for _, tt := range []struct {
		name       string
		msg        []byte
		kind       gateway.EvidenceKind
		indication string
		refs       []gateway.EvidenceReference
		attested   time.Time
		problems   []string // substrings, each must occur
	}{
		{name: "receipt", msg: receipt, kind: gateway.EvidenceDelivered, indication: "TOTAL_PASSED", refs: wantRefs,
			attested: attested, problems: []string{"XML signature not verified"}},
		{name: "dispatch", msg: signed(confirmationFields(TypeConfirmationOfDispatch, "*Versandbestätigung*"), confirmationBody(ackXML)),
			kind: gateway.EvidenceDispatched, indication: "TOTAL_PASSED", refs: wantRefs, attested: attested},
		{name: "retrieval", msg: signed(confirmationFields(TypeConfirmationOfRetrieve, "*Abholbestätigung*"),
			confirmationBody(strings.Replace(ackXML, "<Time>", "<DeliveryTime>2026-03-03T10:15:07+01:00</DeliveryTime><Time>", 1))),
			kind: gateway.EvidenceRetrieved, indication: "TOTAL_PASSED", refs: wantRefs, attested: attested},
		{name: "body changed", msg: replace(receipt, "JVBERi0xLjQK", "JVBERi0xLjUK"), kind: gateway.EvidenceDelivered,
			indication: "TOTAL_FAILED", refs: wantRefs, attested: attested, problems: []string{"integrity broken"}},
		{name: "no XML", msg: signed(confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"),
			"--b1\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--b1--\r\n"), kind: gateway.EvidenceDelivered,
			indication: "TOTAL_PASSED", refs: wantRefs[:1], problems: []string{"no XML attachment"}},
		{name: "time without zone", msg: signed(confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"),
			confirmationBody(strings.Replace(ackXML, "10:15:07+01:00", "10:15:07", 1))), kind: gateway.EvidenceDelivered,
			indication: "TOTAL_PASSED", refs: wantRefs, problems: []string{"Time is not an xs:dateTime"}},
		{name: "foreign namespace", msg: signed(confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"),
			confirmationBody(strings.Replace(ackXML, "urn:de-mail", "urn:other", 1))), kind: gateway.EvidenceDelivered,
			indication: "TOTAL_PASSED", refs: wantRefs[:1], problems: []string{"want {urn:de-mail}Acknowledge-Message"}},
		{name: "hash only", msg: stamp{fields: confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"),
			body: confirmationBody(ackXML), alg: "sha256"}.message(t), kind: gateway.EvidenceDelivered,
			indication: "INDETERMINATE", refs: wantRefs, attested: attested, problems: []string{"integrity"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := blob.Ref{SHA256: "ab", Size: int64(len(tt.msg))}
			ev, ok := Confirmation(tt.msg, raw, w.trust, now)
			if !ok {
				t.Fatal("not recognised as a confirmation")
			}
			if ev.Kind != tt.kind || ev.Channel != gateway.ChannelDeMail || ev.Evidence != raw {
				t.Errorf("kind %q channel %q evidence %v", ev.Kind, ev.Channel, ev.Evidence)
			}
			if ev.EvidenceID != "c-0815@provider.de-mail.example" || ev.Attester.ID != "provider.de-mail.example" {
				t.Errorf("evidence id %q attester %+v", ev.EvidenceID, ev.Attester)
			}
			if got := ev.Verification.Indication; got != tt.indication {
				t.Errorf("indication %s (%s), want %s", got, ev.Verification.Detail, tt.indication)
			}
			if !equalRefs(ev.References, tt.refs) {
				t.Errorf("references %v, want %v", ev.References, tt.refs)
			}
			if !ev.AttestedAt.Equal(tt.attested) {
				t.Errorf("attested %v, want %v", ev.AttestedAt, tt.attested)
			}
			all := strings.Join(ev.Problems, "\n")
			for _, p := range tt.problems {
				if !strings.Contains(all, p) {
					t.Errorf("problems %q lack %q", ev.Problems, p)
				}
			}
			if len(tt.problems) == 0 && tt.indication == "TOTAL_PASSED" && !strings.Contains(all, "XML signature") {
				t.Errorf("an unsigned XML attachment must be a problem: %q", ev.Problems)
			}
		})
	}
}

func equalRefs(a, b []gateway.EvidenceReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConfirmationIgnoresOtherTypes(t *testing.T) {
	w := newWorld(t)
	msg := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	if ev, ok := Confirmation(msg, blob.Ref{}, w.trust, time.Now()); ok || ev != nil {
		t.Fatalf("a normal De-Mail read as a confirmation: %+v", ev)
	}
	if _, ok := Confirmation([]byte("X-de-mail-message-type: notification\r\n\r\n"), blob.Ref{}, w.trust, time.Now()); ok {
		t.Fatal("a notification read as a confirmation")
	}
}

// TestConfirmationLinks records a receipt confirmation with the gateway's
// recorder: it lands in the stream of the message it confirms, and the
// same confirmation again is a duplicate.
func TestConfirmationLinks(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	env := gatewaytest.New(t)
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(ctx, projection.References{}); err != nil {
		t.Fatal(err)
	}
	rec := &gateway.EvidenceRecorder{Log: env.Log, Links: projection.Links{DB: env.State},
		CatchUp: func(ctx context.Context) error { return runner.CatchUp(ctx, projection.References{}) }}
	orig, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelDeMail, "a/1"), &gateway.MessageReceived{
		Channel: gateway.ChannelDeMail, SenderMessageID: "4711@provider.de-mail.example",
		From: gateway.Address{Address: "erika.mustermann@mustermann.de-mail.example"}, ReceivedAt: time.Unix(1e9, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Log.Append(ctx, orig); err != nil {
		t.Fatal(err)
	}
	msg := stamp{fields: confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"), body: confirmationBody(ackXML),
		alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	ev, ok := Confirmation(msg, blob.Ref{SHA256: "cd", Size: int64(len(msg))}, w.trust, time.Now())
	if !ok {
		t.Fatal("not a confirmation")
	}
	got, err := rec.Record(ctx, "", ev)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Linked || got.Stream != orig.Stream || got.Duplicate {
		t.Fatalf("receipt %+v, want linked to %s", got, orig.Stream)
	}
	again, err := rec.Record(ctx, "", ev)
	if err != nil || !again.Duplicate {
		t.Fatalf("second record %+v, %v: want a duplicate", again, err)
	}
}
