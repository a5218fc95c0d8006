package demail

import (
	"context"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
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

// confirmationFields are the header fields the test provider writes on a
// confirmation (class B) of the given type about the message of
// normalFields; subject is the TR's prefix, which the type decides.
func confirmationFields(typ MessageType, subject string) [][2]string {
	var of strings.Builder
	for _, f := range normalFields("yes") {
		of.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	fields, err := demailtest.Confirmation{Type: string(typ), Of: []byte(of.String() + "\r\n"), To: "poststelle@kreis.de-mail.example",
		ID: "c-0815@provider.de-mail.example", Time: time.Date(2026, 3, 3, 10, 15, 7, 0, time.FixedZone("", 3600))}.Fields()
	if err != nil {
		panic("test provider: " + err.Error())
	}
	for _, f := range fields {
		if f[0] == "Subject" && !strings.HasPrefix(f[1], subject+" ") {
			panic("test provider: subject " + f[1] + ", want " + subject)
		}
	}
	return fields
}

// confirmationBody is the multipart/mixed of clause 3.4.1: the XML
// (base64, folded) and the PDF rendering.
func confirmationBody(xmlData string) string { return demailtest.Body(xmlData) }

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
	rec := projection.NewEvidenceRecorder(runner)
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

// signAck gives the Acknowledge-Message an enveloped RSA-SHA256 signature
// (table 23) made with key, carrying der in ds:KeyInfo.
func signAck(t *testing.T, key *rsa.PrivateKey, der []byte) string {
	t.Helper()
	doc, err := demailtest.SignXML(ackXML, key, der)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestConfirmationXMLSignature checks the XML signature of the attachment:
// verified when made with a certificate of the configured provider's CA,
// not verified when the XML was changed after signing or the certificate
// is another CA's.
func TestConfirmationXMLSignature(t *testing.T) {
	w := newWorld(t)
	foreignTrust, err := NewTrust([]Provider{{Name: "provider.de-mail.example", Anchors: []*cert.Certificate{w.otherCA.cert}}})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Providers: []ProviderConfig{{Name: providerName, CAFile: caFile(t, w.ca)}}}
	w.qualify(t, &c)
	qualified, err := c.LoadTrust()
	if err != nil {
		t.Fatal(err)
	}
	signedXML := signAck(t, w.rsaKey, w.rsaCert)
	for _, tt := range []struct {
		name          string
		xml           string
		trust         *Trust
		outcome       string
		qualification string
	}{
		{"qualified seal of the provider", signedXML, qualified, "XML signature: verified (signed by CN=", trust.QESeal},
		{"provider's certificate, no trusted list", signedXML, w.trust, "XML signature: verified (signed by CN=", NotChecked},
		{"changed after signing", strings.Replace(signedXML, "10:15:07+01:00", "10:16:07+01:00", 1), w.trust,
			"XML signature: not verified: reference 1: xmldsig: reference digest mismatch", ""},
		{"another CA's certificate", signedXML, foreignTrust, "XML signature: not verified: signature value holds, but the certificate is not provider", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := stamp{fields: confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"), body: confirmationBody(tt.xml),
				alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
			ev, ok := Confirmation(msg, blob.Ref{}, tt.trust, time.Now())
			if !ok {
				t.Fatal("not a confirmation")
			}
			if !strings.Contains(ev.Verification.Detail, tt.outcome) {
				t.Errorf("detail %q lacks %q", ev.Verification.Detail, tt.outcome)
			}
			xmlProblem := strings.Contains(strings.Join(ev.Problems, "\n"), "XML signature not verified")
			if verified := strings.Contains(tt.outcome, ": verified"); xmlProblem == verified {
				t.Errorf("problems %q: want an XML signature problem %v", ev.Problems, !verified)
			}
			if ev.Verification.Qualification != tt.qualification {
				t.Errorf("qualification %q, want %q", ev.Verification.Qualification, tt.qualification)
			}
			notQualified := strings.Contains(strings.Join(ev.Problems, "\n"), "XML signature not qualified")
			if want := tt.qualification == NotChecked; notQualified != want {
				t.Errorf("problems %q: want a not-qualified problem %v", ev.Problems, want)
			}
			if tt.qualification == trust.QESeal && len(ev.Problems) != 0 {
				t.Errorf("a qualified confirmation has problems %q", ev.Problems)
			}
		})
	}
}
