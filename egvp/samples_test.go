package egvp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// pruefvermerk is the receiver's check report of a sample.
type pruefvermerk struct {
	Uebermittlungsweg        string `xml:"Uebermittlungsweg"`
	Eingangszeitpunkt        string `xml:"Eingangszeitpunkt"`
	Nachrichtenkennzeichen   string `xml:"Nachrichtenkennzeichen"`
	AuthentifizierteAbsender string `xml:"AuthentifizierteAbsender"`
	Nachricht                struct {
		Nachrichtentyp         string `xml:"Nachrichtentyp"`
		AbsenderAktenzeichen   string `xml:"AbsenderAktenzeichen"`
		EmpfaengerAktenzeichen string `xml:"EmpfaengerAktenzeichen"`
		Betreff                string `xml:"Betreff"`
		Freitext               string `xml:"Freitext"`
	} `xml:"Nachricht"`
	Absender   reportCard `xml:"Absender"`
	Empfaenger reportCard `xml:"Empfaenger"`
	Dokumente  []struct {
		OriginalDateiName string `xml:"OriginalDateiName"`
	} `xml:"Dokument"`
}

type reportCard struct {
	Anrede, Bundesland, Hausnummer, Land, Name, Organisation, Ort, Postleitzahl, Strasse, Telefon, Titel, Vorname string
	Email                                                                                                         string `xml:"E-Mail"`
	NutzerID                                                                                                      string `xml:"Nutzer_ID"`
	RollenID                                                                                                      string `xml:"Rollen_ID"`
	Organisationszusatz                                                                                           string
}

// msgProps is the receiver's EGVPMessageProps (MsgProps.xml).
type msgProps struct {
	OSCISubject string   `xml:"OSCISubject"`
	MsgSubject  string   `xml:"MsgSubject"`
	VhnText     string   `xml:"VhnText"`
	Contents    []string `xml:"OSCIContent>OSCIContentName"`
	Attachments []string `xml:"Attachment>Filename"`
}

type sample struct {
	name string
	// damaged: the source repository's text conversion broke the binary attachments
	// (see osci.TestEGVPSamples); the envelope is taken out by hand and the
	// attachments from attachments/.
	damaged bool
	// The source repository masked message ids and SAFE-IDs in the reports (9s, or a
	// made-up id) but not in the message: the ids as the message carries them.
	messageID string
	safeIDs   map[string]string
	mailbox   string
	receipt   bool
}

var sampleCases = []sample{
	{
		name:      "Testnachricht_1",
		messageID: "govapp_16327447360386892418543498345325",
		safeIDs:   map[string]string{"DE.Justiz.233a8870-2319-4dbc-9f68-a4cc9da8f429.9999": "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"},
		mailbox:   "justiz",
	},
	{
		name:      "TestnachrichtEeb_1",
		messageID: "govapp_1635495652029962964207292623458",
		safeIDs: map[string]string{
			"DE.Justiz.836cga01-ffff-2856-85ef-268df5e8b136.5555": "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650",
			"DE.Justiz.233a8870-2319-4dbc-9f68-a4cc9da8f429.9999": "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7",
		},
		mailbox: "bebpo",
		receipt: true,
	},
	{
		name:    "Testnachricht_xjustiz321",
		damaged: true,
		safeIDs: map[string]string{
			"DE.Justiz.5d5d58af-adff-55b7-875c-6548acd55b74.2222": "DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31",
			"DE.Justiz.568b4987-2701-4c8d-8a56-abb554fad842.1111": "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7",
		},
		mailbox: "bebpo",
	},
}

func TestReadSamples(t *testing.T) {
	for _, tc := range sampleCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := corpus.Path(t, "egvp", "Messages", tc.name)
			var report pruefvermerk
			var props msgProps
			readXML(t, filepath.Join(dir, "pruefvermerk.xml"), &report)
			readXML(t, filepath.Join(dir, "MsgProps.xml"), &props)
			// The receiver verified the original; the export holds the body
			// decrypted, so the intermediary's signature no longer verifies over it.
			m, err := Read(context.Background(), readDelivery(t, dir, tc.damaged, true), Config{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Problems) != 0 {
				t.Errorf("problems %q", m.Problems)
			}
			checkReport(t, tc, m, report)
			checkProps(t, m, props)
			if tc.receipt != (m.XJustiz != nil && m.XJustiz.IsReceipt()) {
				t.Errorf("eEB answer %v, want %v", !tc.receipt, tc.receipt)
			}
			if m.EEB.Requested {
				t.Error("no sample asks for an eEB")
			}
		})
	}
}

func checkReport(t *testing.T, tc sample, m *Message, r pruefvermerk) {
	t.Helper()
	wantID := r.Nachrichtenkennzeichen
	if tc.messageID != "" {
		wantID = tc.messageID
	}
	got := map[string]string{
		"Nachrichtenkennzeichen": m.MessageID,
		"Eingangszeitpunkt":      m.Received.Format("02.01.2006, 15:04:05"),
		"Uebermittlungsweg":      m.Origin.Route,
		"Nachrichtentyp":         m.OSCISubject,
		"AbsenderAktenzeichen":   m.SenderFileNumber,
		"EmpfaengerAktenzeichen": m.RecipientFileNumber,
		"Betreff":                m.Subject,
		"Freitext":               normalise(m.Text),
		"Absender Nutzer_ID":     m.SenderSafeID,
		"Empfaenger Nutzer_ID":   m.RecipientSafeID,
	}
	want := map[string]string{
		"Nachrichtenkennzeichen": wantID,
		"Eingangszeitpunkt":      r.Eingangszeitpunkt,
		"Uebermittlungsweg":      r.Uebermittlungsweg,
		"Nachrichtentyp":         r.Nachricht.Nachrichtentyp,
		"AbsenderAktenzeichen":   strings.TrimSpace(r.Nachricht.AbsenderAktenzeichen),
		"EmpfaengerAktenzeichen": strings.TrimSpace(r.Nachricht.EmpfaengerAktenzeichen),
		"Betreff":                r.Nachricht.Betreff,
		"Freitext":               normalise(r.Nachricht.Freitext),
		"Absender Nutzer_ID":     tc.safeIDs[r.Absender.NutzerID],
		// The recipient's SAFE-ID is in the message only where nachricht.xml names it.
		"Empfaenger Nutzer_ID": "",
	}
	if m.Description != nil {
		want["Empfaenger Nutzer_ID"] = tc.safeIDs[r.Empfaenger.NutzerID]
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, the report says %q", k, got[k], w)
		}
	}
	c := m.Card
	card := reportCard{
		Anrede: c.Salutation, Bundesland: c.State, Hausnummer: c.HouseNumber, Land: c.Country, Name: c.Name,
		Organisation: c.Organisation, Ort: c.City, Postleitzahl: c.PostCode, Strasse: c.Street, Telefon: c.Phone,
		Titel: c.Title, Vorname: c.FirstName, Email: c.Email, RollenID: c.Role, Organisationszusatz: c.OrganisationUnit,
	}
	r.Absender.NutzerID = ""
	if card != r.Absender {
		t.Errorf("Absender\n got %+v\nwant %+v", card, r.Absender)
	}
	var docs []string
	for _, d := range r.Dokumente {
		docs = append(docs, d.OriginalDateiName)
	}
	if got := attachmentNames(m); !slices.Equal(got, docs) {
		t.Errorf("documents %q, the report lists %q", got, docs)
	}
	if (r.AuthentifizierteAbsender == "ja") != (m.Origin.Level == LevelVHN) || m.Origin.Mailbox != tc.mailbox {
		t.Errorf("origin %+v; the report says authenticated %s", m.Origin, r.AuthentifizierteAbsender)
	}
}

func checkProps(t *testing.T, m *Message, p msgProps) {
	t.Helper()
	if m.Origin.Route != p.VhnText || m.Subject != p.MsgSubject || m.OSCISubject != p.OSCISubject {
		t.Errorf("route %q subject %q osci subject %q; MsgProps: %q %q %q", m.Origin.Route, m.Subject, m.OSCISubject, p.VhnText, p.MsgSubject, p.OSCISubject)
	}
	var inline []string
	for _, pt := range m.Parts {
		if pt.Inline && pt.Container == ContainerProject && !strings.HasSuffix(pt.Name, ".xsl") {
			inline = append(inline, pt.Name)
		}
	}
	slices.Sort(inline)
	want := slices.Sorted(slices.Values(p.Contents))
	if !slices.Equal(inline, want) {
		t.Errorf("contents %q, MsgProps %q", inline, want)
	}
	if got := attachmentNames(m); !slices.Equal(got, p.Attachments) {
		t.Errorf("attachments %q, MsgProps %q", got, p.Attachments)
	}
}

func attachmentNames(m *Message) []string {
	var out []string
	for _, p := range m.Parts {
		if !p.Inline {
			out = append(out, p.Name)
		}
	}
	return out
}

// normalise folds line ends: git normalised those of the XML files in the source
// repository.
func normalise(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func readXML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// readDelivery reads a sample as the OSCI channel would hand it over.
func readDelivery(t testing.TB, dir string, damaged, verified bool) Delivery {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "oscicontentdata.osci"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := osci.ReadMessage(context.Background(), bytes.NewReader(raw), osci.Limits{}, osci.DirSpool{Dir: t.TempDir()})
	if damaged {
		if !errors.Is(err, osci.ErrFormat) {
			t.Fatalf("damaged sample read with error %v", err)
		}
		mp = &osci.Multipart{Envelope: firstPart(t, raw)}
		files, _ := filepath.Glob(filepath.Join(dir, "attachments", "*"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			mp.Parts = append(mp.Parts, &osci.Part{ContentID: filepath.Base(f), Size: int64(len(data)), SHA256: sha256.Sum256(data), Data: memory(data)})
		}
	} else if err != nil {
		t.Fatal(err)
	}
	env, err := osci.ParseEnvelope(mp.Envelope, osci.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return Delivery{Envelope: env, Attachment: mp.Part, IntermediaryVerified: verified}
}

type memory []byte

func (m memory) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m)), nil }

func firstPart(t testing.TB, raw []byte) []byte {
	t.Helper()
	_, rest, _ := bytes.Cut(raw, []byte("boundary="))
	b, _, _ := bytes.Cut(rest, []byte(";"))
	p, err := multipart.NewReader(bytes.NewReader(raw), string(b)).NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
