package oscichannel

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/routing"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// egvpContent is an EGVP content container: the Visitenkarte inline, the XJustiz
// message as an attachment, as the EGVP clients send them.
func egvpContent(card []byte) string {
	return `<osci:ContentContainer xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" Id="project_coco">` +
		`<osci:Content Id="c1"><osci:Base64Content Id="visitenkarte.xml">` + base64.StdEncoding.EncodeToString(card) + `</osci:Base64Content></osci:Content>` +
		`<osci:Content Id="c2" href="cid:xjustiz_nachricht.xml"></osci:Content></osci:ContentContainer>`
}

// egvpDelivery is an acceptDelivery from the intermediary (osci_manager, or dave
// posing as it) carrying an EGVP container signed by alice and encrypted for bob; the
// process card carries the inspections report.
func egvpDelivery(t testing.TB, card, xj []byte, id, intermediary string, report []osci.Inspection) []byte {
	return egvpDeliveryFrom(t, pair(t, "alice_signature_4096"), card, xj, id, intermediary, report)
}

// egvpDeliveryFrom is egvpDelivery with the originator's signature key pair given:
// its certificate is the transport signature's (a VHN, in the origin tests).
func egvpDeliveryFrom(t testing.TB, alice *KeyPair, card, xj []byte, id, intermediary string, report []osci.Inspection) []byte {
	ctx := context.Background()
	aliceC, bob := pair(t, "alice_cipher_4096"), pair(t, "bob_cipher_4096")
	const cid = "xjustiz_nachricht.xml"
	signed, err := osci.SignContainer(ctx, []byte(egvpContent(card)), osci.SignOptions{Signer: alice.Key,
		CertificateID: osci.CertificateID("originator", "signature", alice.Cert), Attachments: []string{cid},
		Open: func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(xj)), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctFile := filepath.Join(t.TempDir(), "ct")
	ct, err := os.Create(ctFile)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := osci.Encryptor{Recipients: []*x509.Certificate{bob.X509}}.EncryptContainer(ctx, signed,
		[]osci.AttachmentPlain{{ContentID: cid, Body: bytes.NewReader(xj), Out: ct}})
	if err != nil {
		t.Fatal(err)
	}
	size, _ := ct.Seek(0, io.SeekCurrent)
	ct.Close()
	certs := []osci.CertificateEntry{
		{Role: "CipherCertificateOriginator", ID: osci.CertificateID("originator", "cipher", aliceC.Cert), Cert: aliceC.Cert},
		{Role: "CipherCertificateAddressee", ID: osci.CertificateID("addressee", "cipher", bob.Cert), Cert: bob.Cert},
		{Role: "SignatureCertificateOriginator", ID: osci.CertificateID("originator", "signature", alice.Cert), Cert: alice.Cert}}
	m, mc := pair(t, intermediary+"_signature_4096"), pair(t, intermediary+"_cipher_4096")
	pc := bundle(id)
	pc.Report = report
	manager := osci.Supplier{Signer: m.Key, SignatureCertificate: m.Cert, CipherCertificate: mc.Cert}
	a := &osci.Answer{
		Message: osci.Message{Type: osci.AcceptDelivery, Control: osci.ControlBlock{Challenge: "Y2gt" + id, HasChallenge: true},
			Operation:                   osci.Operation{ProcessCards: []osci.ProcessCardBundle{pc}},
			NonIntermediaryCertificates: certs, ContentPackage: enc.XML},
		Attachments:      []*osci.Part{{ContentID: cid, Size: size, Data: fileSpooled(ctFile)}},
		EncryptFor:       bob.X509,
		CertificateRoles: []string{"CipherCertificateIntermediary", "SignatureCertificateIntermediary"},
	}
	var out bytes.Buffer
	if err := manager.WriteAnswer(ctx, &out, a); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// request37 is a court's request in the Nachrichtenkopf of XJustiz 3.6/3.7
// (absender/empfaenger with their Kommunikationspartner), asking for an eEB.
const request37 = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de xjustiz_0005_nachrichten_3_2.xsd">
 <tns:nachrichtenkopf xjustizVersion="3.7.0">
  <tns:erstellungszeitpunkt>2026-12-01T09:10:11+01:00</tns:erstellungszeitpunkt>
  <tns:absender>
   <tns:informationen><tns:auswahl_kommunikationspartner><tns:gericht listVersionID="3.6"><code>R1101</code></tns:gericht></tns:auswahl_kommunikationspartner></tns:informationen>
   <tns:aktenzeichen>4 Ca 99/20</tns:aktenzeichen>
   <tns:eigeneNachrichtenID>8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e</tns:eigeneNachrichtenID>
  </tns:absender>
  <tns:empfaenger>
   <tns:informationen><tns:auswahl_kommunikationspartner><tns:gericht listVersionID="3.6"><code>T6076</code></tns:gericht></tns:auswahl_kommunikationspartner></tns:informationen>
   <tns:auswahl_aktenzeichen><tns:aktenzeichen.freitext>AZ-2026/17</tns:aktenzeichen.freitext></tns:auswahl_aktenzeichen>
  </tns:empfaenger>
  <tns:herstellerinformation><tns:nameDesProdukts>Fachverfahren</tns:nameDesProdukts><tns:herstellerDesProdukts>Land</tns:herstellerDesProdukts><tns:version>3.7</tns:version></tns:herstellerinformation>
 </tns:nachrichtenkopf>
 <tns:grunddaten/>
 <tns:schriftgutobjekte>
  <tns:dokument><tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten><tns:datei><tns:dateiname>urteil.pdf</tns:dateiname></tns:datei>
   <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich></tns:xjustiz.fachspezifischeDaten></tns:dokument>
 </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`

const egvpChannelRules = `
rules:
  - id: arbeitsgericht
    match: {xjustiz: {aktenzeichen: ["4 Ca */20"]}}
    offices: [personalamt]
  - id: eeb-answers
    match: {xjustiz: {message_type: nachricht.eeb.zuruecklaufend}}
    offices: [zustellung]
`

// TestReceiveEGVP: a delivery with an EGVP container gets the typed fields of its
// Visitenkarte and XJustiz message, egvp's problems on the receipt, and the routing
// rules on XJustiz fields decide for it.
func TestReceiveEGVP(t *testing.T) {
	set, err := routing.Parse([]byte(egvpChannelRules), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample := func(name, file string) []byte {
		b, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", name, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	alice := pair(t, "alice_signature_4096").Cert
	inspected := []osci.Inspection{{Timestamp: osci.Timestamp{Plain: creation}, X509SubjectName: alice.Subject.String(),
		X509IssuerName: alice.Issuer.String(), X509Serial: alice.SerialNumber, CertType: "advanced",
		MathResult: "ok", OfflineResult: "valid", OnlineResult: "ok"}}
	const (
		uninspected = "the process card has no inspection of the transport certificate"
		notVHN      = "the transport signature's certificate is not a VHN certificate"
		justizClaim = "egvp: the Visitenkarte claims a justiz mailbox, the transport certificate proves none"
		justizID    = "DE.Justiz.233a8870-2319-4dbc-9f68-a4cc9da8f429.9999"
	)
	tests := []struct {
		name         string
		card, xj     []byte
		intermediary string
		report       []osci.Inspection
		want         gateway.EGVPFields
		problems     []string
		offices      string
	}{
		{"Klage from the Arbeitsgericht", sample("Testnachricht_1", "additionals/visitenkarte.xml"), sample("Testnachricht_1", "attachments/xjustiz_nachricht.xml"),
			"osci_manager", inspected,
			gateway.EGVPFields{SenderSafeID: justizID, SenderRole: "egvp_justiz",
				SenderFileNumber: "4 Ca 614/20", RecipientFileNumber: "22-114-B19\n SB/jaw",
				MessageType: "nachricht.gds.uebermittlung_schriftgutobjekte", XJustizVersion: "2.4.0",
				XJustizMessageID: "F9D36902-B60A-4A38-AA40-69ED89874A2F", Origin: "sender-signed", OriginReason: notVHN},
			[]string{justizClaim}, "personalamt"},
		{"returning eEB, no inspection", sample("TestnachrichtEeb_1", "additionals/visitenkarte.xml"), sample("TestnachrichtEeb_1", "attachments/xjustiz_nachricht.xml"),
			"osci_manager", nil,
			gateway.EGVPFields{SenderSafeID: "DE.Justiz.836cga01-ffff-2856-85ef-268df5e8b136.5555", SenderRole: "egvp_bebpo",
				RecipientFileNumber: "1 K 519/20.KO", MessageType: "nachricht.eeb.zuruecklaufend", RecipientCode: "T6076", XJustizVersion: "2.4.0",
				XJustizMessageID: "714967a2-5e13-4c07-91c2-41adb4537bbc", XJustizForeignMessageID: "e238a754-f63d-4196-98e6-89c50f015b2e",
				Origin: "sender-signed", OriginReason: uninspected},
			[]string{"egvp: the Visitenkarte claims a bebpo mailbox, the transport certificate proves none"}, "zustellung"},
		{"XJustiz 3.7 request asking for an eEB", sample("Testnachricht_1", "additionals/visitenkarte.xml"), []byte(request37),
			"osci_manager", inspected,
			gateway.EGVPFields{SenderSafeID: justizID, SenderRole: "egvp_justiz",
				SenderFileNumber: "4 Ca 99/20", RecipientFileNumber: "AZ-2026/17",
				MessageType: "nachricht.gds.uebermittlungSchriftgutobjekte", RecipientCode: "T6076", XJustizVersion: "3.7.0",
				XJustizMessageID: "8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e", EEBRequested: true, EEBDocuments: []string{"d1"},
				Origin: "sender-signed", OriginReason: notVHN},
			[]string{justizClaim}, "personalamt"},
		{"XJustiz message unreadable", sample("Testnachricht_1", "additionals/visitenkarte.xml"), []byte("kein XML"),
			"osci_manager", inspected,
			gateway.EGVPFields{SenderSafeID: justizID, SenderRole: "egvp_justiz", Origin: "sender-signed", OriginReason: notVHN},
			[]string{"egvp: xjustiz_nachricht.xml: xjustiz: not a readable XML document: xmldsig: parse at offset 8: text outside the document element", justizClaim}, ""},
		{"process card from another intermediary", sample("Testnachricht_1", "additionals/visitenkarte.xml"), sample("Testnachricht_1", "attachments/xjustiz_nachricht.xml"),
			"dave", inspected,
			gateway.EGVPFields{SenderSafeID: justizID, SenderRole: "egvp_justiz",
				SenderFileNumber: "4 Ca 614/20", RecipientFileNumber: "22-114-B19\n SB/jaw",
				MessageType: "nachricht.gds.uebermittlung_schriftgutobjekte", XJustizVersion: "2.4.0",
				XJustizMessageID: "F9D36902-B60A-4A38-AA40-69ED89874A2F", Origin: "sender-signed",
				OriginReason: "the intermediary's signature over the process card was not verified"},
			[]string{"osci: the message is not signed by the configured intermediary", justizClaim}, "personalamt"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []*gateway.MessageReceived
			p, _ := passiveHandler(t, &got)
			body := egvpDelivery(t, tc.card, tc.xj, base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "egvp-%d", i)), tc.intermediary, tc.report)
			p.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
			if len(got) != 1 {
				t.Fatalf("%d receipts", len(got))
			}
			m := got[0]
			if m.EGVP == nil {
				t.Fatalf("no egvp section; problems %q", m.Problems)
			}
			e := *m.EGVP
			if e.TransportCertificate == "" {
				t.Error("no transport certificate fingerprint")
			}
			e.TransportCertificate = ""
			if fmt.Sprintf("%+v", e) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("egvp\n got %+v\nwant %+v", e, tc.want)
			}
			if !slices.Equal(m.Problems, tc.problems) {
				t.Errorf("problems %q, want %q", m.Problems, tc.problems)
			}
			d := set.Decide(routing.NewInput(m, routing.Facts{}))
			if got := strings.Join(d.Offices, ","); got != tc.offices {
				t.Errorf("offices %q (rules %v), want %q", got, d.Rules, tc.offices)
			}
		})
	}
}
