package oscichannel

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/egvprecord"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/internal/gatewaytest"
	"github.com/poststelle/poststelle/osci"
	"github.com/poststelle/poststelle/xjustiz"
)

// The parties of the EGVP answers: the court (alice's keys) asks bob's authority for
// an eEB.
const (
	courtSafeID = "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"
	ourSafeID   = "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650"
	requestID   = "714967a2-5e13-4c07-91c2-41adb4537bbc"
)

// eebRequest3 is a court's 3.x Schriftgutobjekte message asking for an eEB.
const eebRequest3 = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de xjustiz_0005_nachrichten_3_0.xsd">
  <tns:nachrichtenkopf xjustizVersion="3.5.1">
    <tns:aktenzeichen.absender>1 K 519/20.KO</tns:aktenzeichen.absender>
    <tns:aktenzeichen.empfaenger>AZ-2026/17</tns:aktenzeichen.empfaenger>
    <tns:erstellungszeitpunkt>2026-11-30T09:00:00.000+01:00</tns:erstellungszeitpunkt>
    <tns:auswahl_absender><tns:absender.gericht listVersionID="3.3"><code>T6076</code></tns:absender.gericht></tns:auswahl_absender>
    <tns:auswahl_empfaenger><tns:empfaenger.sonstige>Stadt Musterstadt</tns:empfaenger.sonstige></tns:auswahl_empfaenger>
    <tns:eigeneNachrichtenID>` + requestID + `</tns:eigeneNachrichtenID>
  </tns:nachrichtenkopf>
  <tns:grunddaten/>
  <tns:schriftgutobjekte>
    <tns:dokument>
      <tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
      <tns:xjustiz.fachspezifischeDaten>
        <tns:datei><tns:dateiname>beschluss.pdf</tns:dateiname></tns:datei>
        <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich>
      </tns:xjustiz.fachspezifischeDaten>
    </tns:dokument>
  </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>
`

// world is an authority's sender against the stand-in intermediary, with a log the
// evidence is recorded in.
type world struct {
	env *gatewaytest.Env
	mb  *mailbox
	out *Outbound
	now time.Time
	// origEvent is the last message recorded, which answers follow.
	origEvent eventstore.Event
}

func newWorld(t *testing.T, modify func(*Config)) *world {
	t.Helper()
	w := &world{env: gatewaytest.New(t), mb: newMailbox(t), now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	srv := httptest.NewServer(w.mb)
	t.Cleanup(srv.Close)
	cfg := authorityConfig(t, srv.URL+"/")
	cfg.Outbound = true
	cfg.BusinessCard = &BusinessCardConfig{Organisation: "Stadt Musterstadt", City: "Musterstadt", SafeID: ourSafeID, Role: "egvp_bebpo"}
	if modify != nil {
		modify(&cfg)
	}
	runner := &projection.Runner{Log: w.env.Log, DB: w.env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(context.Background(), projection.References{}); err != nil {
		t.Fatal(err)
	}
	out, err := NewOutbound(cfg, OutboundDeps{Blobs: w.env.Blobs, Logger: slog.New(slog.DiscardHandler),
		Evidence: projection.NewEvidenceRecorder(runner), Now: func() time.Time { return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	w.out = out
	return w
}

// received records the court's message: its Visitenkarte and XJustiz message kept as
// decrypted parts, its egvp section as the channel fills it, alice's cipher
// certificate when withCipher.
func (w *world) received(t *testing.T, xj string, withCipher bool) (*gateway.MessageReceived, string) {
	t.Helper()
	ctx := context.Background()
	card := egvp.BuildBusinessCard(egvp.BusinessCard{Organisation: "Verwaltungsgericht Koblenz", SafeID: courtSafeID, Role: "egvp_justiz"})
	files := []egvp.File{{Name: egvp.FileCard, Inline: true, Data: card}, {Name: egvp.FileXJustiz, Data: []byte(xj)}}
	m, err := egvp.ReadFiles(files, egvp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	msg := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, SenderMessageID: "Y291cnQtMQ==", From: gateway.Address{Address: SafeAddressPrefix + courtSafeID},
		Subject: "Beschluss", ReceivedAt: w.now, Metadata: map[string]string{}, EGVP: egvprecord.Fields(m)}
	for i, f := range files {
		ref, err := w.env.Blobs.PutBytes(ctx, f.Data)
		if err != nil {
			t.Fatal(err)
		}
		msg.Parts = append(msg.Parts, gateway.Part{Path: "e1." + string(rune('1'+i)), Filename: f.Name, Blob: ref, MediaType: "application/octet-stream", Kind: "attachment"})
	}
	if withCipher {
		msg.Metadata[MetaOriginatorCipher] = base64.StdEncoding.EncodeToString(pair(t, "alice_cipher_4096").Cert.Raw)
	}
	ev, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelEGVP, msg.SenderMessageID+xj[len(xj)-40:]), msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	w.origEvent = ev
	return msg, ev.Stream
}

// request records the office's answer in the message's stream, as the requester does.
func (w *world) request(t *testing.T, stream string, req *gateway.ReplyRequested) {
	t.Helper()
	ev, err := gateway.Follow("reply/"+req.ReplyID, &w.origEvent, 0, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Log.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// arrived decrypts the n-th delivery stored at the intermediary as the court does,
// checks bob's content signature and reads it as EGVP.
func (w *world) arrived(t *testing.T, n int) *egvp.Message {
	t.Helper()
	ctx := context.Background()
	st := w.mb.stored[n]
	dc, err := osci.DecryptContainer(ctx, st.Envelope.ContentPackage.Encrypted[0], st.Message, decrypterOf(t, "alice_cipher_4096"), osci.Limits{}, osci.DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	parts := func(cid string) *osci.Part { return dc.Attachments[cid] }
	checks, err := osci.VerifyContainer(ctx, dc.Doc, dc.Container, []*osci.Certificates{st.Envelope.NonIntermediaryCertificates}, parts)
	if err != nil || len(checks) != 1 || !checks[0].Valid() || !checks[0].Signer.Cert.Equal(pair(t, "bob_signature_4096").Cert) {
		t.Fatalf("content signature %v %+v", err, checks)
	}
	env := *st.Envelope
	env.ContentPackage = &osci.ContentPackage{Containers: []*osci.ContentContainer{dc.Container}}
	m, err := egvp.Read(ctx, egvp.Delivery{Envelope: &env, Attachment: parts}, egvp.Config{}, egvp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// evidence is the delivery evidence recorded in stream.
func (w *world) evidence(t *testing.T, stream string) []*gateway.DeliveryEvidenceRecorded {
	t.Helper()
	evs, err := w.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.DeliveryEvidenceRecorded
	for i := range evs {
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := p.(*gateway.DeliveryEvidenceRecorded); ok {
			out = append(out, d)
		}
	}
	return out
}

// TestSendEEB: the office's acknowledgement and refusal of the court's eEB request
// arrive in the court's mailbox, decrypt with its key, carry bob's valid content
// signature and read as the XJustiz eEB the request asked for: fremdeNachrichtenID the
// request's id, both Aktenzeichen swapped, our SAFE-ID and Visitenkarte; the
// intermediary's process card is recorded as delivery evidence of the answer; a
// resend carries the same XJustiz id.
func TestSendEEB(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		eeb  gateway.EEBAnswer
		want xjustiz.Receipt
	}{
		{"acknowledged", gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}, xjustiz.Receipt{Received: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}},
		{"refused", gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "2", Reason: "Anlage fehlt"}, xjustiz.Receipt{Refusal: &xjustiz.Refusal{Code: "2", Reason: "Anlage fehlt"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			orig, stream := w.received(t, eebRequest3, true)
			eeb := tc.eeb
			req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("zustellung", stream, tc.name), Office: "zustellung", Channel: gateway.ChannelEGVP,
				To: gateway.Address{Address: SafeAddressPrefix + courtSafeID}, Subject: "EB zu: 1 K 519/20.KO", EEB: &eeb}
			w.request(t, stream, req)
			info, err := w.out.Send(ctx, req, orig)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Response) > 200 || !strings.Contains(info.Response, "process card creation=") {
				t.Errorf("response %q", info.Response)
			}
			m := w.arrived(t, 0)
			// The only complaint is the proof of origin: the sample PKI issues no VHN.
			for _, p := range m.Problems {
				if !strings.Contains(p, "the transport certificate proves none") {
					t.Errorf("problem %q", p)
				}
			}
			x := m.XJustiz
			if x == nil || !x.IsReceipt() || len(x.Problems) != 0 {
				t.Fatalf("not an eEB: %+v", x)
			}
			h := x.Header
			if h.ForeignMessageID != requestID || h.OwnMessageID != egvp.XJustizID(req.ReplyID) || h.SenderFileNumber != "AZ-2026/17" ||
				h.RecipientFileNumber != "1 K 519/20.KO" || x.RecipientCode() != "T6076" || !h.CreatedTime.Equal(w.now) {
				t.Errorf("header %+v", h)
			}
			if x.Receipt.Received != tc.want.Received || (x.Receipt.Refusal == nil) != (tc.want.Refusal == nil) ||
				(tc.want.Refusal != nil && *x.Receipt.Refusal != *tc.want.Refusal) {
				t.Errorf("receipt %+v, want %+v", x.Receipt, tc.want)
			}
			if m.SenderSafeID != ourSafeID || m.RecipientSafeID != courtSafeID || m.Card.Organisation != "Stadt Musterstadt" || m.Subject != "EB zu: 1 K 519/20.KO" {
				t.Errorf("EGVP %s -> %s card %+v subject %q", m.SenderSafeID, m.RecipientSafeID, m.Card, m.Subject)
			}
			evs := w.evidence(t, stream)
			if len(evs) != 1 {
				t.Fatalf("%d pieces of evidence, want the delivery", len(evs))
			}
			e := evs[0]
			if e.Kind != gateway.EvidenceDelivered || e.ReplyID != req.ReplyID || e.LinkedBy != "replyId" || !e.AttestedAt.Equal(creation) ||
				e.Attester.Role != "intermediary" || e.Evidence.SHA256 == "" || e.Verification == nil || e.Verification.Indication != "TOTAL_PASSED" ||
				!slices.Contains(e.References, gateway.EvidenceReference{Kind: "osciMessageId", Value: info.ChannelMessageID}) ||
				!slices.Contains(e.References, gateway.EvidenceReference{Kind: "xjustizMessageId", Value: egvp.XJustizID(req.ReplyID)}) {
				t.Errorf("evidence %+v", e)
			}
			// A resend after a crash: a new OSCI message id, the same XJustiz id.
			again, err := w.out.Send(ctx, req, orig)
			if err != nil {
				t.Fatal(err)
			}
			if again.ChannelMessageID == info.ChannelMessageID || w.arrived(t, 1).XJustiz.Header.OwnMessageID != h.OwnMessageID {
				t.Errorf("resend: message id %s (first %s), XJustiz id changed", again.ChannelMessageID, info.ChannelMessageID)
			}
		})
	}
}

// TestSendEEBRefused: an eEB the message did not ask for, a refusal to a 2.x
// request, an unknown decision, a wrong address and a missing Visitenkarte fail
// permanently, and nothing is stored at the intermediary.
func TestSendEEBRefused(t *testing.T) {
	ctx := context.Background()
	sample, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", "Testnachricht_1", "attachments", "xjustiz_nachricht.xml"))
	if err != nil {
		t.Fatal(err)
	}
	noRequest := strings.Replace(eebRequest3, "<tns:ruecksendungEEB.erforderlich>true", "<tns:ruecksendungEEB.erforderlich>false", 1)
	request2 := strings.Replace(string(sample), "<tns:ruecksendung_EEB_erforderlich>false", "<tns:ruecksendung_EEB_erforderlich>true", 1)
	ack := gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}
	for _, tc := range []struct {
		name, xj, to, want string
		eeb                gateway.EEBAnswer
		noCard             bool
	}{
		{"no request", noRequest, SafeAddressPrefix + courtSafeID, "asks for no eEB", ack, false},
		{"refusal in 2.x", request2, "", "XJustiz 3 only", gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "1"}, false},
		{"unknown decision", eebRequest3, SafeAddressPrefix + courtSafeID, "neither", gateway.EEBAnswer{Decision: "maybe"}, false},
		{"bad date", eebRequest3, SafeAddressPrefix + courtSafeID, "date of receipt", gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "1.12.2026"}, false},
		{"other address", eebRequest3, courtSafeID, "is not the sender's safe:", ack, false},
		{"no business card", eebRequest3, SafeAddressPrefix + courtSafeID, "business_card", ack, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, func(c *Config) {
				if tc.noCard {
					c.BusinessCard = nil
				}
			})
			orig, stream := w.received(t, tc.xj, true)
			to := tc.to
			if to == "" {
				to = SafeAddressPrefix + orig.EGVP.SenderSafeID
			}
			eeb := tc.eeb
			req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("zustellung", stream, "k"), Channel: gateway.ChannelEGVP, To: gateway.Address{Address: to}, EEB: &eeb}
			_, err := w.out.Send(ctx, req, orig)
			if err == nil || !replies.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a permanent one saying %q", err, tc.want)
			}
			if len(w.mb.stored) != 0 {
				t.Errorf("%d deliveries stored", len(w.mb.stored))
			}
		})
	}
	t.Run("eEB to a plain OSCI message", func(t *testing.T) {
		w := newWorld(t, nil)
		aliceC := pair(t, "alice_cipher_4096")
		orig := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, From: gateway.Address{Address: cipherAddress(aliceC.Cert)},
			Metadata: map[string]string{MetaOriginatorCipher: base64.StdEncoding.EncodeToString(aliceC.Cert.Raw)}}
		_, err := w.out.Send(ctx, &gateway.ReplyRequested{ReplyID: "r", To: orig.From, EEB: &ack}, orig)
		if err == nil || !replies.IsPermanent(err) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestSendEGVPAnswer: the office's text answer with an attachment goes to the court's
// SAFE-ID as an EGVP message whose XJustiz Nachrichtenkopf references the original
// and lists the text and the attachment as documents; without a cipher certificate
// in the message, the directory's is used (one of an old event's "osci:" address
// too), and with neither the answer fails permanently.
func TestSendEGVPAnswer(t *testing.T) {
	ctx := context.Background()
	dirCert := func(c *Config) {
		c.Directory = []DirectoryEntry{{SafeID: courtSafeID, CipherCertFile: corpus.Path(t, "osci", "zertifikate", "alice_cipher_4096.cer")}}
	}
	for _, tc := range []struct {
		name       string
		withCipher bool
		config     func(*Config)
		want       string
	}{
		{"cipher certificate of the message", true, nil, ""},
		{"directory", false, dirCert, ""},
		{"neither", false, nil, "osci.directory lists none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.config)
			orig, stream := w.received(t, eebRequest3, tc.withCipher)
			body, err := w.env.Blobs.PutBytes(ctx, []byte("Sehr geehrte Damen und Herren, anbei unsere Stellungnahme."))
			if err != nil {
				t.Fatal(err)
			}
			att, err := w.env.Blobs.PutBytes(ctx, []byte("%PDF-1.7 Stellungnahme"))
			if err != nil {
				t.Fatal(err)
			}
			req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("rechtsamt", stream, "k"), Channel: gateway.ChannelEGVP,
				To: gateway.Address{Address: SafeAddressPrefix + courtSafeID}, Subject: "Re: Beschluss", Body: body,
				Attachments: []gateway.Part{{Filename: "stellungnahme.pdf", Blob: att}}}
			w.request(t, stream, req)
			_, err = w.out.Send(ctx, req, orig)
			if tc.want != "" {
				if err == nil || !replies.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want a permanent one saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := w.arrived(t, 0)
			x := m.XJustiz
			if x == nil || x.Type != xjustiz.TypeDocuments || len(x.Problems) != 0 {
				t.Fatalf("XJustiz %+v", x)
			}
			h := x.Header
			if h.ForeignMessageID != requestID || h.OwnMessageID != egvp.XJustizID(req.ReplyID) || h.SenderFileNumber != "AZ-2026/17" || h.RecipientFileNumber != "1 K 519/20.KO" || x.RecipientCode() != "T6076" {
				t.Errorf("header %+v", h)
			}
			var names []string
			for _, d := range x.Documents {
				names = append(names, d.FileNames...)
			}
			if !slices.Equal(names, []string{"antwort.txt", "anlage-1.pdf"}) || m.RecipientSafeID != courtSafeID || m.SenderSafeID != ourSafeID || m.Subject != "Re: Beschluss" {
				t.Errorf("documents %v, %s -> %s, subject %q", names, m.SenderSafeID, m.RecipientSafeID, m.Subject)
			}
			var files []string
			for _, p := range m.Parts {
				files = append(files, p.Name)
			}
			if !slices.Equal(files, []string{egvp.FileDescription, egvp.FileCard, egvp.FileXJustiz, "antwort.txt", "anlage-1.pdf"}) {
				t.Errorf("files %v", files)
			}
			if evs := w.evidence(t, stream); len(evs) != 1 || evs[0].ReplyID != req.ReplyID {
				t.Errorf("evidence %+v", evs)
			}
		})
	}
	t.Run("old event addressed to the cipher certificate", func(t *testing.T) {
		w := newWorld(t, nil)
		orig, stream := w.received(t, eebRequest3, true)
		body, _ := w.env.Blobs.PutBytes(ctx, []byte("Text"))
		req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("rechtsamt", stream, "old"), To: gateway.Address{Address: cipherAddress(pair(t, "alice_cipher_4096").Cert)}, Body: body}
		if _, err := w.out.Send(ctx, req, orig); err != nil {
			t.Fatal(err)
		}
		if m := w.arrived(t, 0); m.RecipientSafeID != courtSafeID {
			t.Errorf("addressed to %q", m.RecipientSafeID)
		}
	})
	t.Run("kept files that are not the message received", func(t *testing.T) {
		w := newWorld(t, nil)
		orig, stream := w.received(t, eebRequest3, true)
		orig.EGVP.XJustizMessageID = "other"
		req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("rechtsamt", stream, "x"), To: gateway.Address{Address: SafeAddressPrefix + courtSafeID}, Body: blob.Ref{}}
		if _, err := w.out.Send(ctx, req, orig); err == nil || !replies.IsPermanent(err) {
			t.Fatalf("error %v", err)
		}
	})
}

// passive is the authority's passive recipient recording into the world's log, with
// the world's evidence recorder.
func (w *world) passive(t *testing.T) *Passive {
	t.Helper()
	runner := &projection.Runner{Log: w.env.Log, DB: w.env.State, Registry: gateway.NewRegistry()}
	cfg := authorityConfig(t, "http://127.0.0.1:1/")
	cfg.Passive = &PassiveConfig{Listen: "127.0.0.1:0"}
	p, err := NewPassive(cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: w.env.Log}, Evidence: projection.NewEvidenceRecorder(runner),
		Blobs: w.env.Blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ln.Close() })
	return p
}

// TestReturningEEB: a returning eEB whose fremdeNachrichtenID is the XJustiz id of an
// answer recorded on the channel is linked to that answer as delivery evidence (read
// for an acknowledgement, not delivered for a refusal); one for an id we never used is
// a problem on the message, and it is recorded all the same.
func TestReturningEEB(t *testing.T) {
	w := newWorld(t, nil)
	_, stream := w.received(t, eebRequest3, true)
	req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("rechtsamt", stream, "k"), Channel: gateway.ChannelEGVP, To: gateway.Address{Address: SafeAddressPrefix + courtSafeID}}
	w.request(t, stream, req)
	p := w.passive(t)
	card := egvp.BuildBusinessCard(egvp.BusinessCard{Organisation: "Verwaltungsgericht Koblenz", SafeID: courtSafeID, Role: "egvp_justiz"})
	eeb := func(foreign string, refusal *xjustiz.Refusal) []byte {
		a := xjustiz.Answer{Generation: xjustiz.Generation3, SenderFileNumber: "1 K 519/20.KO", RecipientFileNumber: "AZ-2026/17",
			Created: w.now, Sender: xjustiz.Party{Kind: "gericht", Code: "T6076", ListVersion: "3.6"}, Recipient: xjustiz.Party{Kind: "sonstige", Name: ourSafeID},
			OwnMessageID: xjustiz.NewDocumentID(foreign, 0), ForeignMessageID: foreign, Refusal: refusal}
		if refusal == nil {
			a.Received = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
		}
		b, err := xjustiz.BuildReceipt(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const unknownProblem = "eEB for a request this mailbox did not send"
	for i, tc := range []struct {
		name     string
		foreign  string
		refusal  *xjustiz.Refusal
		kind     gateway.EvidenceKind
		problem  bool
		evidence int
	}{
		{"acknowledges our answer", egvp.XJustizID(req.ReplyID), nil, gateway.EvidenceRead, false, 1},
		{"refuses our answer", egvp.XJustizID(req.ReplyID), &xjustiz.Refusal{Code: "1", Reason: "nicht beteiligt"}, gateway.EvidenceNotDelivered, false, 2},
		{"unknown id of our form", egvp.XJustizID(replies.ReplyID("rechtsamt", stream, "never")), nil, "", true, 2},
		{"foreign id", "e238a754-f63d-4196-98e6-89c50f015b2e", nil, "", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := base64.StdEncoding.EncodeToString([]byte("eeb-" + string(rune('a'+i))))
			body := egvpDelivery(t, card, eeb(tc.foreign, tc.refusal), id, "osci_manager", nil)
			rr := httptest.NewRecorder()
			p.ServeHTTP(rr, httptest.NewRequest("POST", "/", strings.NewReader(string(body))))
			got := receivedByID(t, w, id)
			if got == nil {
				t.Fatalf("not recorded (HTTP %d)", rr.Code)
			}
			if got.EGVP == nil || got.EGVP.MessageType != xjustiz.TypeReceipt || got.From.Address != SafeAddressPrefix+courtSafeID {
				t.Fatalf("received %+v", got)
			}
			has := slices.ContainsFunc(got.Problems, func(p string) bool { return strings.Contains(p, unknownProblem) })
			if has != tc.problem {
				t.Errorf("problems %q; want the unknown-request problem: %v", got.Problems, tc.problem)
			}
			evs := w.evidence(t, stream)
			if len(evs) != tc.evidence {
				t.Fatalf("%d pieces of evidence in the answered stream, want %d", len(evs), tc.evidence)
			}
			if tc.kind != "" {
				e := evs[len(evs)-1]
				if e.Kind != tc.kind || e.ReplyID != req.ReplyID || e.Attester.Role != "addressee" || e.Attester.ID != courtSafeID || e.Evidence != got.Raw {
					t.Errorf("evidence %+v", e)
				}
				if tc.refusal == nil && !e.AttestedAt.Equal(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("attested at %s", e.AttestedAt)
				}
				if tc.refusal != nil && !strings.Contains(e.Reason, "nicht beteiligt") {
					t.Errorf("reason %q", e.Reason)
				}
			}
		})
	}
}

// receivedByID is the MessageReceived of the OSCI message id in the world's log.
func receivedByID(t *testing.T, w *world, id string) *gateway.MessageReceived {
	t.Helper()
	evs, err := w.env.Log.Read(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := p.(*gateway.MessageReceived); ok && m.SenderMessageID == id {
			return m
		}
	}
	return nil
}

// TestSendEvidenceRetrieved: once the intermediary's process card shows the addressee
// fetched the answer, the answer has its retrieved evidence beside the delivered one,
// at the card's reception time.
func TestSendEvidenceRetrieved(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, nil)
	w.mb.reception = creation.Add(time.Minute)
	orig, stream := w.received(t, eebRequest3, true)
	req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("zustellung", stream, "r"), Channel: gateway.ChannelEGVP, To: gateway.Address{Address: SafeAddressPrefix + courtSafeID},
		EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}}
	w.request(t, stream, req)
	if _, err := w.out.Send(ctx, req, orig); err != nil {
		t.Fatal(err)
	}
	evs := w.evidence(t, stream)
	if len(evs) != 2 || evs[0].Kind != gateway.EvidenceDelivered || evs[1].Kind != gateway.EvidenceRetrieved ||
		!evs[1].AttestedAt.Equal(w.mb.reception) || evs[1].ReplyID != req.ReplyID || evs[1].Evidence.SHA256 == "" || evs[1].Evidence == evs[0].Evidence {
		t.Fatalf("evidence %+v", evs)
	}
	// Sent again (a crash before ReplySent): a second delivery under a new OSCI id,
	// with evidence of its own, linked to the same answer.
	again, err := w.out.Send(ctx, req, orig)
	if err != nil {
		t.Fatal(err)
	}
	evs = w.evidence(t, stream)
	if len(evs) != 4 || evs[3].ReplyID != req.ReplyID || !slices.Contains(evs[3].References, gateway.EvidenceReference{Kind: "osciMessageId", Value: again.ChannelMessageID}) {
		t.Errorf("after the resend: %+v", evs)
	}
}

// TestSendWithVHN: with osci.vhn set (carol's key standing in for a VHN certificate),
// the storeDelivery is signed with it, which makes it the message's transport
// certificate (SignatureCertificateOriginator) for the court's proof of origin, while
// the content stays signed by bob's signature key, listed as another author.
func TestSendWithVHN(t *testing.T) {
	ctx := context.Background()
	vhn := p12(t, "carol_signature_4096")
	w := newWorld(t, func(c *Config) { c.VHN = &vhn })
	orig, stream := w.received(t, eebRequest3, true)
	req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("zustellung", stream, "vhn"), Channel: gateway.ChannelEGVP, To: gateway.Address{Address: SafeAddressPrefix + courtSafeID},
		EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}}
	if _, err := w.out.Send(ctx, req, orig); err != nil {
		t.Fatal(err)
	}
	carol := pair(t, "carol_signature_4096").Cert
	st := w.mb.stored[0]
	if st.Signature == nil || !st.Signature.Valid() || !st.Signer().Equal(carol) || !st.Certificate("SignatureCertificateOriginator").Equal(carol) {
		t.Fatalf("storeDelivery signed by %v (valid %v), want the VHN", st.Signer(), st.Signature != nil && st.Signature.Valid())
	}
	if !st.Certificate("SignatureCertificateOtherAuthor").Equal(pair(t, "bob_signature_4096").Cert) {
		t.Error("the content's author is not listed as another author")
	}
	m := w.arrived(t, 0) // bob's content signature holds
	sum := sha256.Sum256(carol.Raw)
	if m.Origin.CertificateSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("transport certificate %s, want the VHN's", m.Origin.CertificateSHA256)
	}
}
