package egvpenterprise

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/xjustiz"
)

// eebRequest is a court's XJustiz message whose document asks for an eEB, put in
// place of the Justiz sample's xjustiz_nachricht.xml (written for these tests, in the
// form of the samples' XJustiz 3.x messages).
const eebRequest = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de">
 <tns:nachrichtenkopf xjustizVersion="3.5.1">
  <tns:aktenzeichen.absender>3 K 12/26</tns:aktenzeichen.absender>
  <tns:aktenzeichen.empfaenger>1 K 519/20.KO</tns:aktenzeichen.empfaenger>
  <tns:erstellungszeitpunkt>2026-02-03T09:10:11+01:00</tns:erstellungszeitpunkt>
  <tns:auswahl_absender><tns:absender.gericht listVersionID="3.6"><code>R1101</code></tns:absender.gericht></tns:auswahl_absender>
  <tns:auswahl_empfaenger><tns:empfaenger.gericht listVersionID="3.6"><code>T6076</code></tns:empfaenger.gericht></tns:auswahl_empfaenger>
  <tns:eigeneNachrichtenID>7c1e5a2b-9d3f-4e6a-8b0c-1d2e3f4a5b6c</tns:eigeneNachrichtenID>
 </tns:nachrichtenkopf>
 <tns:grunddaten/>
 <tns:schriftgutobjekte>
  <tns:dokument><tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten><tns:datei><tns:dateiname>urteil.pdf</tns:dateiname></tns:datei>
   <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich></tns:xjustiz.fachspezifischeDaten></tns:dokument>
 </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`

// received takes a message through the inbound side and returns its receipt, the
// original an answer refers to.
func (r *rig) receive(t *testing.T, sample string, replace map[string][]byte) *gateway.MessageReceived {
	t.Helper()
	data, err := enterprisetest.SampleZIP(corpus.Path(t, "egvp", "Messages", sample), replace)
	if err != nil {
		t.Fatal(err)
	}
	id := "in-" + sample
	r.srv.Add(box, enterprisetest.Message{ID: id, ZIP: data})
	if err := r.inbound(t).Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range r.received(t) {
		if m.Metadata[MetaMessageID] == id {
			return m
		}
	}
	t.Fatal("not received")
	return nil
}

func (r *rig) outbound(t *testing.T) *Outbound {
	t.Helper()
	cfg := r.cfg
	cfg.Outbound = true
	o, err := NewOutbound(cfg, OutboundDeps{Blobs: r.env.Blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	o.now = func() time.Time { return time.Date(2026, 2, 4, 8, 0, 0, 0, time.UTC) }
	return o
}

func TestSendAnswer(t *testing.T) {
	r := newRig(t)
	orig := r.receive(t, "Testnachricht_1", nil)
	ctx := context.Background()
	body, _ := r.env.Blobs.PutBytes(ctx, []byte("Sehr geehrte Damen und Herren, ..."))
	pdf, _ := r.env.Blobs.PutBytes(ctx, []byte("%PDF-1.7 ..."))
	req := &gateway.ReplyRequested{ReplyID: "r-1", Channel: gateway.ChannelEGVP, To: gateway.Address{Address: orig.From.Address},
		Subject: "Ihre Klage", Body: body, Attachments: []gateway.Part{{Filename: `..\Bescheid.pdf`, Blob: pdf}, {Filename: "antwort.txt", Blob: pdf}}}
	info, err := r.outbound(t).Send(ctx, req, orig)
	if err != nil {
		t.Fatal(err)
	}
	sent := r.srv.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent", len(sent))
	}
	s := sent[0]
	var names []string
	for _, a := range s.Attachments {
		names = append(names, a.Name)
	}
	if s.ReceiverID != orig.EGVP.SenderSafeID || s.ReceiverKey != "USER_ID" || s.Subject != "Ihre Klage" || !s.SignMessage ||
		s.MessageType != "Allgemeine Nachricht" || s.UserID != box || info.ChannelMessageID != s.CustomID ||
		!slices.Equal(names, []string{"antwort.txt", "Bescheid.pdf", "anlage-2-antwort.txt"}) {
		t.Errorf("sent %+v (attachments %q), info %+v", s, names, info)
	}
	var d struct {
		Empfaenger string `xml:"Empfaengerkennung"`
		AzEmpf     string `xml:"Aktenzeichen_Empfaenger"`
		AzAbs      string `xml:"Aktenzeichen_Absender"`
	}
	if err := xml.Unmarshal(s.VisualXML, &d); err != nil {
		t.Fatal(err)
	}
	if d.Empfaenger != orig.EGVP.SenderSafeID || d.AzEmpf != orig.EGVP.SenderFileNumber || d.AzAbs != orig.EGVP.RecipientFileNumber {
		t.Errorf("nachricht.xml %+v; original %+v", d, orig.EGVP)
	}
	kept, err := r.env.Blobs.ReadAll(ctx, info.Sent, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The kept copy is the request as Enterprise received it.
	reqs := r.srv.Requests()
	if last := reqs[len(reqs)-1]; last.Operation != "sendAsynchroniousMessage" || !bytes.Equal(last.Body, kept) {
		t.Errorf("the kept copy (%d bytes) is not the request Enterprise received (%s, %d bytes)", len(kept), last.Operation, len(last.Body))
	}
}

func TestSendEEB(t *testing.T) {
	r := newRig(t)
	orig := r.receive(t, "Testnachricht_1", map[string][]byte{"attachments/xjustiz_nachricht.xml": []byte(eebRequest)})
	if !orig.EGVP.EEBRequested || orig.EGVP.XJustizMessageID != "7c1e5a2b-9d3f-4e6a-8b0c-1d2e3f4a5b6c" {
		t.Fatalf("the request was received as %+v", orig.EGVP)
	}
	ctx := context.Background()
	o := r.outbound(t)
	cases := []struct {
		name string
		eeb  gateway.EEBAnswer
	}{
		{"acknowledged", gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-02-03"}},
		{"refused", gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "2", Reason: "Anlage fehlt"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &gateway.ReplyRequested{ReplyID: "eeb-" + tc.name, Channel: gateway.ChannelEGVP, To: orig.From, EEB: &tc.eeb}
			if _, err := o.Send(ctx, req, orig); err != nil {
				t.Fatal(err)
			}
			s := r.srv.Sent()[i]
			if s.Subject != "EB zu: 3 K 12/26" || s.ReceiverID != orig.EGVP.SenderSafeID || len(s.Attachments) != 1 || s.Attachments[0].Name != egvp.FileXJustiz {
				t.Fatalf("sent %+v", s)
			}
			x, err := xjustiz.Parse(s.Attachments[0].Data, xjustiz.Limits{})
			if err != nil || len(x.Problems) > 0 {
				t.Fatal(err, x.Problems)
			}
			if !x.IsReceipt() || x.Header.ForeignMessageID != "7c1e5a2b-9d3f-4e6a-8b0c-1d2e3f4a5b6c" || x.Header.OwnMessageID != egvp.XJustizID(req.ReplyID) {
				t.Errorf("eEB header %+v", x.Header)
			}
			if tc.eeb.Decision == gateway.EEBAcknowledged && (x.Receipt.Refusal != nil || x.Receipt.Received.Format("2006-01-02") != "2026-02-03") {
				t.Errorf("acknowledgement %+v", x.Receipt)
			}
			if tc.eeb.Decision == gateway.EEBRefused && (x.Receipt.Refusal == nil || x.Receipt.Refusal.Code != "2") {
				t.Errorf("refusal %+v", x.Receipt)
			}
		})
	}
	// An eEB for a message that asked for none is refused for good.
	plain := r.receive(t, "TestnachrichtEeb_1", nil)
	req := &gateway.ReplyRequested{ReplyID: "eeb-x", To: plain.From, EEB: &cases[0].eeb}
	if _, err := o.Send(ctx, req, plain); !replies.IsPermanent(err) || !errors.Is(err, egvp.ErrNoRequest) {
		t.Errorf("eEB without request: %v", err)
	}
}

func TestSendErrors(t *testing.T) {
	r := newRig(t)
	orig := r.receive(t, "Testnachricht_1", nil)
	ctx := context.Background()
	body, _ := r.env.Blobs.PutBytes(ctx, []byte("Text"))
	o := r.outbound(t)
	send := func(addr string) error {
		_, err := o.Send(ctx, &gateway.ReplyRequested{ReplyID: "r", To: gateway.Address{Address: addr}, Subject: "s", Body: body}, orig)
		return err
	}
	if err := send(strings.TrimPrefix(orig.From.Address, AddressPrefix)); !replies.IsPermanent(err) {
		t.Errorf("address without prefix: %v", err)
	}
	if err := send(AddressPrefix + "DE.Justiz.someone-else"); !replies.IsPermanent(err) {
		t.Errorf("address not the sender's: %v", err)
	}
	r.srv.FailNext("sendAsynchroniousMessage", enterprisetest.FailFault, enterprisetest.FailGeneral, enterprisetest.FailHTTP)
	for i := 0; i < 3; i++ {
		if err := send(orig.From.Address); err == nil || replies.IsPermanent(err) {
			t.Errorf("failure %d: %v, want a temporary error", i, err)
		}
	}
	if err := send(orig.From.Address); err != nil {
		t.Errorf("after the failures: %v", err)
	}
	o.cfg.UserID = "not-an-account"
	if err := send(orig.From.Address); !replies.IsPermanent(err) {
		t.Errorf("unknown account: %v", err)
	}
}
