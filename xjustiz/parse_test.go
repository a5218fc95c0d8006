package xjustiz

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

type sampleCase struct {
	path       []string
	root       string
	typeCode   string
	version    string
	generation Generation
	header     Header
	docs       []Document
	receipt    *Receipt
}

// The expected fields are those of the receivers' check reports (pruefvermerk.xml:
// AbsenderAktenzeichen, EmpfaengerAktenzeichen) and of the documents as written.
var samples = []sampleCase{
	{
		path: []string{"egvp", "Messages", "Testnachricht_1", "attachments", "xjustiz_nachricht.xml"},
		root: "nachricht.gds.uebermittlung_schriftgutobjekte.0005005", typeCode: "0005005",
		version: "2.4.0", generation: Generation2,
		header: Header{
			SenderFileNumber: "4 Ca 614/20", RecipientFileNumber: "22-114-B19\n SB/jaw",
			Created: "2020-05-06T09:38:44.01", Floating: true,
			Sender:       Party{Kind: "gericht", Code: "T6078", ListVersion: "2.6"},
			Recipient:    Party{Kind: "sonstige", Name: "Joswig & Partner"},
			OwnMessageID: "F9D36902-B60A-4A38-AA40-69ED89874A2F",
		},
		docs: []Document{{ID: "2F78D25A-1AF1-4E48-8D7F-9FBBA70177A6", FileNames: []string{"99 - Klage.pdf"}}},
	},
	{
		path: []string{"egvp", "Messages", "TestnachrichtEeb_1", "attachments", "xjustiz_nachricht.xml"},
		root: "nachricht.eeb.zuruecklaufend.2200007", typeCode: "2200007",
		version: "2.4.0", generation: Generation2,
		header: Header{
			RecipientFileNumber: "1 K 519/20.KO",
			Created:             "2021-10-29T10:20:47.675+02:00",
			Sender:              Party{Kind: "sonstige", Name: "Oberverwaltungsgericht Rheinland-Pfalz"},
			Recipient:           Party{Kind: "gericht", Code: "T6076", ListVersion: "2.6"},
			OwnMessageID:        "714967a2-5e13-4c07-91c2-41adb4537bbc",
			ForeignMessageID:    "e238a754-f63d-4196-98e6-89c50f015b2e",
		},
		receipt: &Receipt{Received: time.Date(2021, 10, 29, 0, 0, 0, 0, time.UTC)},
	},
	{
		path: []string{"egvp", "Messages", "Testnachricht_xjustiz321", "attachments", "xjustiz_nachricht.xml"},
		root: "nachricht.gds.uebermittlungSchriftgutobjekte.0005005", typeCode: "0005005",
		version: "3.2.1", generation: Generation3,
		header: Header{
			SenderFileNumber: "Ohne",
			Created:          "2021-12-08T11:03:52.313+01:00",
			Sender:           Party{Kind: "sonstige", Name: "DE.Justiz.5d5d58af-adff-55b7-875c-6548acd55b74.2222"},
			Recipient:        Party{Kind: "sonstige", Name: "DE.Justiz.568b4987-2701-4c8d-8a56-abb554fad842.1111"},
			OwnMessageID:     "62f956dd-af24-4ab3-a6ae-fbe28244b380",
		},
		docs: []Document{
			{ID: "b2043c91-024e-4179-afe7-b060ad67a2f8", FileNames: []string{"001_Ermittlungsübersicht_Abverfügung.pdf"}},
			{ID: "8319d06f-7b93-46a8-a7e0-409d53e417d2", FileNames: []string{"003_Sachverhalt.pdf"}},
			{ID: "c249b7c5-bf46-4058-92b4-c6a779b0401f", FileNames: []string{"002_Antrag_auf_richterliche_Entscheidung_zur_Wohnungsdurchsuchung.pdf"}},
		},
	},
	{
		path: []string{"fitconnect", "fit-connect-adapter", "xjustiz_nachricht.xml"},
		root: "nachricht.gds.uebermittlungSchriftgutobjekte.0005005", typeCode: "0005005",
		version: "3.4.1", generation: Generation3,
		header: Header{
			SenderFileNumber: "Aktenzeichen",
			Created:          "2025-01-13T13:38:06.591Z",
			Sender:           Party{Kind: "sonstige", Name: "Digitalservice"},
			Recipient:        Party{Kind: "sonstige", Name: "Digitalservice"},
			OwnMessageID:     "4f28f648-5bd7-22b5-7c14-fba1cee8e5de",
		},
	},
}

func TestParseSamples(t *testing.T) {
	for _, tc := range samples {
		t.Run(strings.Join(tc.path[:len(tc.path)-1], "/"), func(t *testing.T) {
			data, err := os.ReadFile(corpus.Path(t, tc.path...))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Problems) != 0 {
				t.Errorf("problems %q in a real sample", m.Problems)
			}
			if m.Root != tc.root || m.TypeCode != tc.typeCode || m.Version != tc.version || m.Generation != tc.generation || m.Namespace != Namespace {
				t.Errorf("root %s code %s version %s generation %d ns %s", m.Root, m.TypeCode, m.Version, m.Generation, m.Namespace)
			}
			h := m.Header
			want := tc.header
			if h.CreatedTime.IsZero() {
				t.Error("erstellungszeitpunkt not parsed")
			}
			h.CreatedTime = time.Time{}
			if h != want {
				t.Errorf("header\n got %+v\nwant %+v", h, want)
			}
			if tc.docs != nil && !slices.EqualFunc(m.Documents, tc.docs, docEqual) {
				t.Errorf("documents %+v, want %+v", m.Documents, tc.docs)
			}
			if m.EEBRequested() {
				t.Error("no sample asks for an eEB")
			}
			if (tc.receipt == nil) != (m.Receipt == nil) || tc.receipt != nil && (!m.Receipt.Received.Equal(tc.receipt.Received) || m.Receipt.Refusal != nil) {
				t.Errorf("receipt %+v, want %+v", m.Receipt, tc.receipt)
			}
			if m.IsReceipt() != (tc.receipt != nil) {
				t.Errorf("IsReceipt %v", m.IsReceipt())
			}
		})
	}
}

func docEqual(a, b Document) bool {
	return a.ID == b.ID && a.EEBRequired == b.EEBRequired && slices.Equal(a.FileNames, b.FileNames)
}

// A request as a court sends it: XJustiz 3 with one document asking for an eEB.
const request3 = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de xjustiz_0005_nachrichten_3_4.xsd">
 <tns:nachrichtenkopf xjustizVersion="3.5.1">
  <tns:aktenzeichen.absender>3 K 12/26</tns:aktenzeichen.absender>
  <tns:aktenzeichen.empfaenger>AZ-2026/17</tns:aktenzeichen.empfaenger>
  <tns:erstellungszeitpunkt>2026-02-03T09:10:11.123+01:00</tns:erstellungszeitpunkt>
  <tns:auswahl_absender><tns:absender.gericht listVersionID="3.6"><code>R1101</code></tns:absender.gericht></tns:auswahl_absender>
  <tns:auswahl_empfaenger><tns:empfaenger.sonstige>Stadt Musterstadt</tns:empfaenger.sonstige></tns:auswahl_empfaenger>
  <tns:eigeneNachrichtenID>0b9c0a7e-7a43-4b8e-9d51-7b9b0c0d2f11</tns:eigeneNachrichtenID>
 </tns:nachrichtenkopf>
 <tns:grunddaten/>
 <tns:schriftgutobjekte>
  <tns:dokument>
   <tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten>
    <tns:datei><tns:dateiname>urteil.pdf</tns:dateiname></tns:datei>
    <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich>
   </tns:xjustiz.fachspezifischeDaten>
  </tns:dokument>
  <tns:dokument>
   <tns:identifikation><tns:id>d2</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten>
    <tns:datei><tns:dateiname>anlage.pdf</tns:dateiname></tns:datei>
    <tns:ruecksendungEEB.erforderlich>false</tns:ruecksendungEEB.erforderlich>
   </tns:xjustiz.fachspezifischeDaten>
  </tns:dokument>
 </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`

func TestParseRequest(t *testing.T) {
	m, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 {
		t.Fatalf("problems %q", m.Problems)
	}
	if !m.EEBRequested() || !m.Documents[0].EEBRequired || m.Documents[1].EEBRequired {
		t.Errorf("eEB request %+v", m.Documents)
	}
	if m.RecipientCode() != "" || m.Header.Sender.String() != "gericht:R1101" {
		t.Errorf("recipient code %q, sender %s", m.RecipientCode(), m.Header.Sender)
	}
}

// Messages that are not what they say are read, and flagged.
func TestParseFlags(t *testing.T) {
	swap := func(old, new string) string { return strings.Replace(request3, old, new, 1) }
	tests := []struct {
		name, doc, want string
	}{
		{"namespace", strings.ReplaceAll(request3, `xmlns:tns="http://www.xjustiz.de"`, `xmlns:tns="http://example.org"`), "namespace"},
		{"root", strings.ReplaceAll(request3, "uebermittlungSchriftgutobjekte.0005005", "uebermittlungSchriftgutobjekte"), "not an XJustiz message"},
		{"version 2 declared", swap(`xjustizVersion="3.5.1"`, `xjustizVersion="2.4.0"`), "declared, but the nachrichtenkopf uses XJustiz 3"},
		{"schema 2", swap("nachrichten_3_4.xsd", "nachrichten_2_4.xsd"), "schema xjustiz_0005_nachrichten_2_4.xsd is XJustiz 2"},
		{"no version", swap(` xjustizVersion="3.5.1"`, ""), "no xjustizVersion"},
		{"future version", swap(`xjustizVersion="3.5.1"`, `xjustizVersion="9.0"`), "not a version this gateway reads"},
		{"version without minor", swap(`xjustizVersion="3.5.1"`, `xjustizVersion="3"`), ""},
		{"version garbage", swap(`xjustizVersion="3.5.1"`, `xjustizVersion="x"`), "not a version this gateway reads"},
		{"mixed", swap("<tns:eigeneNachrichtenID>", "<tns:eigene_Nachrichten_ID>x</tns:eigene_Nachrichten_ID><tns:eigeneNachrichtenID>"), "mixes XJustiz 2 and 3"},
		{"unknown header element", swap("<tns:eigeneNachrichtenID>", "<tns:geheim>x</tns:geheim><tns:eigeneNachrichtenID>"), "unknown element geheim"},
		{"bad time", swap("2026-02-03T09:10:11.123+01:00", "gestern"), "not an xs:dateTime"},
		{"no id", swap("0b9c0a7e-7a43-4b8e-9d51-7b9b0c0d2f11", ""), "no eigene Nachrichten-ID"},
		{"no sender", swap(`<tns:auswahl_absender><tns:absender.gericht listVersionID="3.6"><code>R1101</code></tns:absender.gericht></tns:auswahl_absender>`, ""), "no absender"},
		{"header not first", swap(` <tns:nachrichtenkopf `, ` <tns:grunddaten/><tns:nachrichtenkopf `), "does not start with its nachrichtenkopf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && len(m.Problems) > 0 || tc.want != "" && !hasProblem(m, tc.want) {
				t.Errorf("problems %q, want one with %q (none for \"\")", m.Problems, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		lim  Limits
	}{
		{"not xml", "Hallo", Limits{}},
		{"dtd", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`, Limits{}},
		{"too large", request3, Limits{MaxBytes: 100}},
		{"unclosed", "<tns:a xmlns:tns='http://www.xjustiz.de'>", Limits{}},
		{"deep", strings.Repeat("<a>", 200) + strings.Repeat("</a>", 200), Limits{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.doc), tc.lim); !errors.Is(err, ErrFormat) {
				t.Errorf("err %v, want ErrFormat", err)
			}
		})
	}
}

func TestParseDocumentCap(t *testing.T) {
	m, err := Parse([]byte(request3), Limits{MaxDocuments: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Documents) != 1 || !slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, "more than 1 documents") }) {
		t.Errorf("%d documents, problems %q", len(m.Documents), m.Problems)
	}
}

func replaceOnce(s, old, new string) string { return strings.Replace(s, old, new, 1) }

func hasProblem(m *Message, sub string) bool {
	return slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, sub) })
}
