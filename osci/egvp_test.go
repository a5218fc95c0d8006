package osci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/internal/corpus"
)

// pruefvermerk is the part of the receiver's check report (pruefvermerk.xml) the
// samples are compared with.
type pruefvermerk struct {
	Eingangszeitpunkt      string `xml:"Eingangszeitpunkt"`
	Nachrichtenkennzeichen string `xml:"Nachrichtenkennzeichen"`
	Nachrichtentyp         string `xml:"Nachricht>Nachrichtentyp"`
	Dokumente              []struct {
		OriginalDateiName string `xml:"OriginalDateiName"`
	} `xml:"Dokument"`
}

func readPruefvermerk(t *testing.T, dir string) pruefvermerk {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pruefvermerk.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var p pruefvermerk
	if err := xml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

type egvpCase struct {
	message string
	// damaged: the sample's binary attachments went through a text conversion in
	// its source repository (line ends and every byte over 0x7f not valid UTF-8
	// replaced by U+FFFD), so their Content-Length no longer matches and the
	// framing must refuse the file; attachments/ holds the genuine files.
	damaged bool
	// from the inspection sheet (inspectionsheet.html): containers with their
	// inline contents and attachments.
	containers map[string][2][]string
	// The Prüfvermerk masks part of some message ids with 9s; where it does, the
	// id decoded from the message is given here.
	messageID string
	// forwarded is the intermediary's forwarding time in the process card: the
	// moment the receiver fetched the message, seconds before it made the inspection
	// sheet ("Prüfprotokoll vom", equal for the first two samples, 3 s later for the
	// third).
	forwarded string
	sigAlg    string
	// inspections are the serial numbers in the inspection report, the originator's
	// transport signature certificate first.
	inspections []string
}

var egvpCases = []egvpCase{
	{
		message: "Testnachricht_1",
		containers: map[string][2][]string{
			"project_coco": {{"visitenkarte.xml", "visitenkarte.xsl", "herstellerinformation.xml"}, {"99 - Klage.pdf", "xjustiz_nachricht.xml"}},
			"govello_coco": {{"additional_infos"}, nil},
		},
		messageID:   "govapp_16327447360386892418543498345325",
		forwarded:   "27.09.2021, 14:22:20",
		sigAlg:      "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
		inspections: []string{"9104414177657485945", "1585575853226", "1574072311557"},
	},
	{
		message: "TestnachrichtEeb_1",
		containers: map[string][2][]string{
			"project_coco": {{"herstellerinformation.xml", "nachricht.xml", "nachricht.xsl", "visitenkarte.xml", "visitenkarte.xsl"}, {"xjustiz_nachricht.xml"}},
			"govello_coco": {{"additional_infos"}, nil},
		},
		messageID:   "govapp_1635495652029962964207292623458",
		forwarded:   "29.10.2021, 10:35:01",
		sigAlg:      "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
		inspections: []string{"5930334713391546401", "1609165918300", "1574072311557"},
	},
	{
		message: "Testnachricht_xjustiz321",
		damaged: true,
		containers: map[string][2][]string{
			"project_coco": {{"nachricht.xml", "nachricht.xsl", "visitenkarte.xml", "visitenkarte.xsl", "herstellerinformation.xml"}, {"001_Ermittlungsübersicht_Abverfügung.pdf", "002_Antrag_auf_richterliche_Entscheidung_zur_Wohnungsdurchsuchung.pdf", "003_Sachverhalt.pdf", "xjustiz_nachricht.xml"}},
			"govello_coco": {{"additional_infos"}, nil},
		},
		forwarded: "08.12.2021, 11:12:51",
		sigAlg:    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
	},
}

func TestEGVPSamples(t *testing.T) {
	for _, tc := range egvpCases {
		t.Run(tc.message, func(t *testing.T) {
			dir := corpus.Path(t, "egvp", "Messages", tc.message)
			report := readPruefvermerk(t, dir)
			mp, env := readSample(t, dir, tc.damaged)
			checkReport(t, tc, report, env)
			checkContainers(t, tc, dir, env)
			checkCertificates(t, dir, env)
			checkInspectionSheet(t, dir, env)
			if tc.damaged {
				return
			}
			checkAttachments(t, dir, mp, report)
			if err := env.CheckAttachments(mp); err != nil {
				t.Errorf("attachments: %v", err)
			}
			checkSupplierSignature(t, tc, dir, env, mp)
		})
	}
}

// readSample reads the message; a damaged one must be refused by the framing, and its
// envelope is then taken out by hand.
func readSample(t *testing.T, dir string, damaged bool) (*Multipart, *Envelope) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "oscicontentdata.osci"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := ReadMessage(context.Background(), bytes.NewReader(raw), Limits{}, DirSpool{Dir: t.TempDir()})
	if damaged {
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "Content-Length") {
			t.Fatalf("damaged sample read with error %v, want a Content-Length mismatch", err)
		}
		mp = &Multipart{Envelope: firstPart(t, raw)}
		// The damage is in this copy: the sizes the sender announced are those of
		// the receiver's genuine files.
		heads := regexp.MustCompile(`Content-ID: <([^>]+)>\r?\nContent-Length: (\d+)`).FindAllSubmatch(raw, -1)
		if len(heads) != 4 {
			t.Fatalf("%d attachment headers", len(heads))
		}
		for _, h := range heads {
			st, err := os.Stat(filepath.Join(dir, "attachments", string(h[1])))
			if err != nil || strconv.FormatInt(st.Size(), 10) != string(h[2]) {
				t.Errorf("<%s>: announced %s bytes, attachments/ has %v", h[1], h[2], st)
			}
		}
	} else if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(mp.Envelope, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return mp, env
}

func firstPart(t *testing.T, raw []byte) []byte {
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

func checkReport(t *testing.T, tc egvpCase, report pruefvermerk, env *Envelope) {
	t.Helper()
	if env.Type != ResponseToMediateDelivery || len(env.Feedback()) != 1 || env.Feedback()[0].Code != CodeDialogOpen {
		t.Errorf("type %s, feedback %+v; want responseToMediateDelivery with 0801", env.Type, env.Feedback())
	}
	cards := env.ProcessCards()
	if len(cards) != 1 {
		t.Fatalf("%d process cards, want 1", len(cards))
	}
	pc := cards[0]
	id, err := base64.StdEncoding.DecodeString(pc.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	want := report.Nachrichtenkennzeichen
	if tc.messageID != "" {
		want = tc.messageID
	}
	if string(id) != want {
		t.Errorf("message id %q, want %q", id, want)
	}
	if ext := env.Extensions[0]; ext.Selection == nil || !slices.Equal(ext.Selection.MessageIDs, []string{pc.MessageID}) {
		t.Errorf("the fetch response's selection %+v does not name the process card's message", ext.Selection)
	}
	const layout = "02.01.2006, 15:04:05"
	if pc.Card.Creation == nil || pc.Card.Creation.Plain.Format(layout) != report.Eingangszeitpunkt {
		t.Errorf("creation %+v, want the Eingangszeitpunkt %s", pc.Card.Creation, report.Eingangszeitpunkt)
	}
	if pc.Card.Forwarding == nil || pc.Card.Forwarding.Plain.Format(layout) != tc.forwarded {
		t.Errorf("forwarding %+v, want %s", pc.Card.Forwarding, tc.forwarded)
	}
	if pc.Card.Subject != report.Nachrichtentyp || pc.Card.Reception != nil {
		t.Errorf("subject %q, reception %v; want %q and none", pc.Card.Subject, pc.Card.Reception, report.Nachrichtentyp)
	}
	if len(pc.Report) != 3 {
		t.Fatalf("%d inspections, want 3", len(pc.Report))
	}
	for i, in := range pc.Report {
		if in.MathResult != "ok" || in.OfflineResult != "valid" {
			t.Errorf("inspection %d: %s/%s, want ok/valid as the report's overall result", i, in.MathResult, in.OfflineResult)
		}
		if tc.inspections != nil && in.X509Serial.String() != tc.inspections[i] {
			t.Errorf("inspection %d: serial %s, want %s", i, in.X509Serial, tc.inspections[i])
		}
	}
	// The transport signature certificate is the only one checked online.
	if first := pc.Report[0]; first.CertType != "advanced" || first.OnlineResult != "ok" || pc.Report[1].OnlineResult != "" {
		t.Errorf("inspection 0: %s online %q; inspection 1 online %q", first.CertType, first.OnlineResult, pc.Report[1].OnlineResult)
	}
}

func checkContainers(t *testing.T, tc egvpCase, dir string, env *Envelope) {
	t.Helper()
	got := map[string][2][]string{}
	for _, c := range env.ContentPackage.Containers {
		var inline, att []string
		for _, ct := range c.Contents {
			if a := ct.AttachmentID(); a != "" {
				att = append(att, a)
				continue
			}
			inline = append(inline, ct.Base64ID)
			// The receiver stored the inline contents beside the message; the
			// source repository masked ids in some and normalised line ends, so
			// only the document element can be compared.
			if want, err := os.ReadFile(filepath.Join(dir, "additionals", ct.Base64ID)); err == nil && rootName(t, want) != rootName(t, ct.Base64) {
				t.Errorf("content %s is not the document of additionals/%s", ct.Base64ID, ct.Base64ID)
			}
		}
		got[c.ID] = [2][]string{inline, att}
	}
	for id, want := range tc.containers {
		if !slices.Equal(got[id][0], want[0]) || !slices.Equal(got[id][1], want[1]) {
			t.Errorf("container %s: %q, want %q", id, got[id], want)
		}
	}
	if len(got) != len(tc.containers) {
		t.Errorf("containers %v", got)
	}
}

func rootName(t *testing.T, data []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no document element: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Space + " " + se.Name.Local
		}
	}
}

func checkCertificates(t *testing.T, dir string, env *Envelope) {
	t.Helper()
	want := map[string]string{
		"CipherCertificateAddressee":       "addressee.crt",
		"CipherCertificateOriginator":      "originator.crt",
		"SignatureCertificateOriginator":   "originator_transportsignatur.crt",
		"SignatureCertificateIntermediary": "osci-manager.crt",
	}
	for role, file := range want {
		der, err := os.ReadFile(filepath.Join(dir, "certificates", file))
		if err != nil {
			t.Fatal(err)
		}
		entries := append(env.NonIntermediaryCertificates.Role(role), env.IntermediaryCertificates.Role(role)...)
		if len(entries) != 1 || !bytes.Equal(entries[0].Cert.Raw, der) {
			t.Errorf("%s is not certificates/%s", role, file)
		}
	}
	readers, _ := filepath.Glob(filepath.Join(dir, "certificates", "readers", "*.crt"))
	entries := env.NonIntermediaryCertificates.Role("CipherCertificateOtherReader")
	if len(readers) != 1 || len(entries) != 1 {
		t.Fatalf("%d reader files, %d reader certificates", len(readers), len(entries))
	}
	der, _ := os.ReadFile(readers[0])
	if !bytes.Equal(entries[0].Cert.Raw, der) {
		t.Errorf("the reader's certificate is not %s", readers[0])
	}
}

func checkAttachments(t *testing.T, dir string, mp *Multipart, report pruefvermerk) {
	t.Helper()
	var names []string
	for _, d := range report.Dokumente {
		names = append(names, d.OriginalDateiName)
	}
	var ids []string
	for _, p := range mp.Parts {
		ids = append(ids, p.ContentID)
		want, err := os.ReadFile(filepath.Join(dir, "attachments", p.ContentID))
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if p.SHA256 != sha256.Sum256(got) || p.Size != int64(len(got)) {
			t.Errorf("part <%s>: size and hash are not those of the spooled bytes", p.ContentID)
		}
		// The PDFs are byte for byte the receiver's files; git normalised the
		// line ends of the XML files in the source repository.
		if !bytes.Equal(got, want) && !(strings.HasSuffix(p.ContentID, ".xml") && bytes.Equal(bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n")), want)) {
			t.Errorf("part <%s> differs from attachments/%s", p.ContentID, p.ContentID)
		}
	}
	slices.Sort(names)
	slices.Sort(ids)
	if !slices.Equal(ids, names) {
		t.Errorf("attachments %q, the Prüfvermerk lists %q", ids, names)
	}
}

// checkSupplierSignature: the export keeps the intermediary's SignedInfo as it signed it,
// so the value verifies with the intermediary's certificate, and the certificate blocks
// it signed are unchanged; the receiver rewrote the control block, the body (decrypted)
// and the attachments, dropped the feature description and renamed the fetch response,
// so those references fail, and the check must say so.
func checkSupplierSignature(t *testing.T, tc egvpCase, dir string, env *Envelope, mp *Multipart) {
	t.Helper()
	chk, err := env.VerifySignature(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	res := chk.Result
	if chk.Block != "SupplierSignature" || res.Algorithm != tc.sigAlg || res.ValueErr != nil {
		t.Fatalf("%s %s: value %v", chk.Block, res.Algorithm, res.ValueErr)
	}
	manager, _ := os.ReadFile(filepath.Join(dir, "certificates", "osci-manager.crt"))
	if chk.Signer == nil || !bytes.Equal(res.Signer.Raw, manager) {
		t.Errorf("signer is not the intermediary's certificate")
	}
	status := map[string]xmldsig.RefStatus{}
	for _, r := range res.References {
		status[r.URI] = r.Status
	}
	for uri, want := range map[string]xmldsig.RefStatus{
		"#nonintermediarycertificates": xmldsig.RefOK,
		"#intermediarycertificates":    xmldsig.RefOK,
		"#RequestSignatureMandatory":   xmldsig.RefOK,
		"#controlblock":                xmldsig.RefDigestMismatch,
		"#body":                        xmldsig.RefDigestMismatch,
		"#featuredescription":          xmldsig.RefNotFound,
	} {
		if status[uri] != want {
			t.Errorf("reference %s: %s, want %s", uri, status[uri], want)
		}
	}
	for _, p := range mp.Parts {
		if chk.Attachments[p.ContentID] != xmldsig.RefDigestMismatch {
			t.Errorf("attachment <%s>: %s, want a mismatch (the export holds it decrypted)", p.ContentID, chk.Attachments[p.ContentID])
		}
	}
	if chk.Valid() || chk.Code() != CodeSignatureInvalid {
		t.Errorf("rewritten export accepted: valid %v, code %s", chk.Valid(), chk.Code())
	}
}

// sheetCert is a certificate as the inspection sheet (inspectionsheet.html) shows it.
var sheetCertRE = regexp.MustCompile(`Zertifikat des (Empfängers|Absenders) (.*?) Inhaber.*?Gültig ab ([0-9.]+, [0-9:]+) Gültig bis ([0-9.]+, [0-9:]+) Seriennummer (\d+)`)

// checkInspectionSheet compares the addressee's and the originator's cipher
// certificates with what the receiver's inspection sheet says of them: holder, validity
// (local time in Germany) and serial number.
func checkInspectionSheet(t *testing.T, dir string, env *Envelope) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "inspectionsheet.html"))
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?s)<style.*?</style>`).ReplaceAllString(string(raw), "")
	text = regexp.MustCompile(`<[^>]+>`).ReplaceAllString(text, " ")
	text = strings.Join(strings.Fields(html.UnescapeString(text)), " ")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range sheetCertRE.FindAllStringSubmatch(text, -1) {
		role := map[string]string{"Empfängers": "CipherCertificateAddressee", "Absenders": "CipherCertificateOriginator"}[m[1]]
		entries := env.NonIntermediaryCertificates.Role(role)
		if len(entries) != 1 {
			t.Fatalf("%d %s", len(entries), role)
		}
		x, err := entries[0].Cert.X509()
		if err != nil {
			t.Fatal(err)
		}
		const layout = "02.01.2006, 15:04:05"
		got := []string{x.Subject.CommonName, x.NotBefore.In(berlin).Format(layout), x.NotAfter.In(berlin).Format(layout), x.SerialNumber.String()}
		if !slices.Equal(got, m[2:6]) {
			t.Errorf("%s: %q, the inspection sheet says %q", role, got, m[2:6])
		}
		found++
	}
	if found != 2 {
		t.Fatalf("%d certificates on the inspection sheet, want 2", found)
	}
}
