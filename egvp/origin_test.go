package egvp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// sampleDelivery is the beBPo sample TestnachrichtEeb_1 or the Justiz sample
// Testnachricht_1, to be altered by a test.
func sampleDelivery(t *testing.T, name string) Delivery {
	t.Helper()
	return readDelivery(t, corpus.Path(t, "egvp", "Messages", name), false, true)
}

func inline(d Delivery, id string) *osci.Content {
	for _, c := range d.Envelope.ContentPackage.Containers {
		for _, ct := range c.Contents {
			if ct.Base64ID == id {
				return ct
			}
		}
	}
	return nil
}

func editCard(old, new string) func(*testing.T, *Delivery, *Config) {
	return func(t *testing.T, d *Delivery, _ *Config) {
		ct := inline(*d, FileCard)
		if !bytes.Contains(ct.Base64, []byte(old)) {
			t.Fatalf("the Visitenkarte has no %q", old)
		}
		ct.Base64 = bytes.Replace(ct.Base64, []byte(old), []byte(new), 1)
	}
}

func TestOrigin(t *testing.T) {
	tests := []struct {
		name, sample string
		modify       func(*testing.T, *Delivery, *Config)
		level        Level
		reason       string
		problem      string
	}{
		{"beBPo VHN", "TestnachrichtEeb_1", nil, LevelVHN, "VHN of a bebpo mailbox", ""},
		{"Justiz VHN", "Testnachricht_1", nil, LevelVHN, "VHN of a justiz mailbox", ""},
		{"intermediary not verified", "TestnachrichtEeb_1", func(_ *testing.T, d *Delivery, _ *Config) { d.IntermediaryVerified = false },
			LevelSenderSigned, "was not verified", "claims a bebpo mailbox, the transport certificate proves none"},
		{"another mailbox's SAFE-ID", "TestnachrichtEeb_1", editCard("a19afb3b-f92b", "a19afb3b-0000"),
			LevelSenderSigned, "not that of the sending mailbox", "the VHN certificate is for \"DE.Justiz.a19afb3b-f92b"},
		{"claims a beBPo, is the Justiz", "Testnachricht_1", editCard("egvp_justiz", "egvp_bebpo"),
			LevelVHN, "VHN of a justiz mailbox", "claims a bebpo mailbox, the transport certificate proves justiz"},
		{"no transport certificate", "TestnachrichtEeb_1", func(_ *testing.T, d *Delivery, _ *Config) {
			c := d.Envelope.NonIntermediaryCertificates
			c.Entries = slices.DeleteFunc(c.Entries, func(e osci.CertificateEntry) bool { return e.Role == "SignatureCertificateOriginator" })
		}, LevelNone, "no transport signature certificate", "claims a bebpo mailbox"},
		{"expired at receipt", "TestnachrichtEeb_1", func(_ *testing.T, d *Delivery, _ *Config) {
			d.Envelope.ProcessCards()[0].Card.Creation.Plain = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		}, LevelSenderSigned, "not valid at receipt", "claims a bebpo mailbox, the transport certificate proves none"},
		{"inspection negative", "TestnachrichtEeb_1", func(_ *testing.T, d *Delivery, _ *Config) {
			d.Envelope.ProcessCards()[0].Report[0].OnlineResult = "revoked"
		}, LevelSenderSigned, "inspection of the transport certificate is not positive", "claims a bebpo mailbox, the transport certificate proves none"},
		{"not a VHN certificate", "TestnachrichtEeb_1", func(t *testing.T, d *Delivery, _ *Config) {
			e := transportEntry(d)
			c, err := cert.Parse(e.Cert.Raw)
			if err != nil {
				t.Fatal(err)
			}
			c.Subject.CommonName = "Transportsignatur"
			e.Cert = c
		}, LevelSenderSigned, "not a VHN certificate", "claims a bebpo mailbox, the transport certificate proves none"},
		{"issuer not a configured anchor", "TestnachrichtEeb_1", func(t *testing.T, _ *Delivery, cfg *Config) {
			cfg.VHNAnchors = []*cert.Certificate{readCert(t, "TestnachrichtEeb_1", "osci-manager.crt")}
		}, LevelSenderSigned, "not issued by a configured VHN CA", "claims a bebpo mailbox, the transport certificate proves none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := sampleDelivery(t, tc.sample)
			var cfg Config
			if tc.modify != nil {
				tc.modify(t, &d, &cfg)
			}
			m, err := Read(context.Background(), d, cfg, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			o := m.Origin
			if o.Level != tc.level || !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("level %s (%s), want %s (%s)", o.Level, o.Reason, tc.level, tc.reason)
			}
			if tc.problem == "" && len(m.Problems) > 0 || tc.problem != "" && !slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, tc.problem) }) {
				t.Errorf("problems %q, want %q", m.Problems, tc.problem)
			}
			if want := "239554e6b0e24a2eaf04dcdab58fb80c30ef022494cf1533a7dda6650ba9cc0a"; tc.sample == "TestnachrichtEeb_1" && o.Level != LevelNone && tc.name != "not a VHN certificate" && o.CertificateSHA256 != want {
				t.Errorf("certificate %s, want the SHA-256 of originator_transportsignatur.crt", o.CertificateSHA256)
			}
			if (o.Level == LevelVHN) != (o.Route != "") {
				t.Errorf("route %q at level %s", o.Route, o.Level)
			}
		})
	}
}

func transportEntry(d *Delivery) *osci.CertificateEntry {
	c := d.Envelope.NonIntermediaryCertificates
	for i := range c.Entries {
		if c.Entries[i].Role == "SignatureCertificateOriginator" {
			return &c.Entries[i]
		}
	}
	return nil
}

func readCert(t *testing.T, sample, name string) *cert.Certificate {
	t.Helper()
	der, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", sample, "certificates", name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A court's document with an eEB request, in place of the sample's XJustiz message.
const request = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de xjustiz_0005_nachrichten_3_4.xsd">
 <tns:nachrichtenkopf xjustizVersion="3.5.1">
  <tns:aktenzeichen.absender>3 K 12/26</tns:aktenzeichen.absender>
  <tns:aktenzeichen.empfaenger>1 K 519/20.KO</tns:aktenzeichen.empfaenger>
  <tns:erstellungszeitpunkt>2026-02-03T09:10:11+01:00</tns:erstellungszeitpunkt>
  <tns:auswahl_absender><tns:absender.gericht listVersionID="3.6"><code>R1101</code></tns:absender.gericht></tns:auswahl_absender>
  <tns:auswahl_empfaenger><tns:empfaenger.gericht listVersionID="3.6"><code>T6076</code></tns:empfaenger.gericht></tns:auswahl_empfaenger>
  <tns:eigeneNachrichtenID>8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e</tns:eigeneNachrichtenID>
 </tns:nachrichtenkopf>
 <tns:grunddaten/>
 <tns:schriftgutobjekte>
  <tns:dokument><tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten><tns:datei><tns:dateiname>urteil.pdf</tns:dateiname></tns:datei>
   <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich></tns:xjustiz.fachspezifischeDaten></tns:dokument>
 </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`

func withXJustiz(d Delivery, doc string) Delivery {
	orig := d.Attachment
	d.Attachment = func(id string) *osci.Part {
		if id == FileXJustiz {
			return &osci.Part{ContentID: id, Size: int64(len(doc)), SHA256: sha256.Sum256([]byte(doc)), Data: memory(doc)}
		}
		return orig(id)
	}
	return d
}

func TestReadFields(t *testing.T) {
	d := withXJustiz(sampleDelivery(t, "TestnachrichtEeb_1"), request)
	m, err := Read(context.Background(), d, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.EEB.Requested || !slices.Equal(m.EEB.Documents, []string{"d1"}) || m.EEB.ForeignMessageID != "8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e" || !m.EEB.Deadline.IsZero() {
		t.Errorf("eEB request %+v", m.EEB)
	}
	if m.RecipientCode != "T6076" || m.MessageType != "nachricht.gds.uebermittlungSchriftgutobjekte" || m.SenderFileNumber != "3 K 12/26" {
		t.Errorf("code %q type %q file number %q", m.RecipientCode, m.MessageType, m.SenderFileNumber)
	}
	// nachricht.xml leaves the sender's Aktenzeichen empty and agrees on the recipient's.
	if len(m.Problems) != 0 {
		t.Errorf("problems %q", m.Problems)
	}
}

func TestReadFlags(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*testing.T, *Delivery, *Config)
		want   string
	}{
		{"Aktenzeichen disagree", func(_ *testing.T, d *Delivery, _ *Config) {
			*d = withXJustiz(*d, strings.Replace(request, "1 K 519/20.KO", "2 K 1/26", 1))
		}, `recipient's Aktenzeichen: nachricht.xml says "1 K 519/20.KO", the XJustiz message "2 K 1/26"`},
		{"XJustiz not XML", func(_ *testing.T, d *Delivery, _ *Config) { *d = withXJustiz(*d, "kein XML") }, "xjustiz_nachricht.xml: xjustiz: not a readable XML document"},
		{"XJustiz wrong version", func(_ *testing.T, d *Delivery, _ *Config) {
			*d = withXJustiz(*d, strings.Replace(request, `"3.5.1"`, `"2.4.0"`, 1))
		}, "xjustiz_nachricht.xml: xjustizVersion 2.4.0 declared"},
		{"attachment missing", func(_ *testing.T, d *Delivery, _ *Config) {
			orig := d.Attachment
			d.Attachment = func(id string) *osci.Part {
				if id == FileXJustiz {
					return nil
				}
				return orig(id)
			}
		}, "attachment xjustiz_nachricht.xml is missing"},
		{"Visitenkarte unknown element", editCard("<Titel/>", "<Titel/><Geheim>x</Geheim>"), "Visitenkarte: unexpected element Geheim"},
		{"Visitenkarte broken", editCard("<Titel/>", "<Titel>"), "visitenkarte.xml: reading Visitenkarte"},
		{"no Visitenkarte", func(_ *testing.T, d *Delivery, _ *Config) { inline(*d, FileCard).Base64ID = "other.xml" }, "no visitenkarte.xml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := sampleDelivery(t, "TestnachrichtEeb_1")
			tc.modify(t, &d, nil)
			m, err := Read(context.Background(), d, Config{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("problems %q, want %q", m.Problems, tc.want)
			}
		})
	}
}

func TestReadRefuses(t *testing.T) {
	d := sampleDelivery(t, "TestnachrichtEeb_1")
	for _, c := range d.Envelope.ContentPackage.Containers {
		c.ID = "other"
	}
	if _, err := Read(context.Background(), d, Config{}, Limits{}); err == nil || !strings.Contains(err.Error(), "no project_coco") {
		t.Errorf("err %v", err)
	}
	if _, err := Read(context.Background(), Delivery{Envelope: &osci.Envelope{}}, Config{}, Limits{}); err == nil {
		t.Error("an envelope without content package read")
	}
	d = sampleDelivery(t, "TestnachrichtEeb_1")
	d.Attachment = nil
	if m, err := Read(context.Background(), d, Config{}, Limits{}); err != nil || !slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, "is missing") }) {
		t.Errorf("without attachments: %v, %v", err, m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, sampleDelivery(t, "TestnachrichtEeb_1"), Config{}, Limits{}); err == nil {
		t.Error("read with a cancelled context")
	}
}

func TestPairSignatures(t *testing.T) {
	parts := []Part{{Name: "a.pdf"}, {Name: "a.pdf.p7s"}, {Name: "a.pdf.pkcs7"}, {Name: "b.p7s"}, {Name: "c.xml"}, {Name: ".p7s"}}
	pairSignatures(parts)
	if !slices.Equal(parts[0].Signatures, []string{"a.pdf.p7s", "a.pdf.pkcs7"}) || parts[1].SignatureOf != "a.pdf" || parts[2].SignatureOf != "a.pdf" {
		t.Errorf("a.pdf: %+v %+v %+v", parts[0], parts[1], parts[2])
	}
	if parts[3].SignatureOf != "" || parts[4].Signatures != nil || parts[5].SignatureOf != "" {
		t.Errorf("unpaired: %+v %+v %+v", parts[3], parts[4], parts[5])
	}
}

func TestParseInfo(t *testing.T) {
	got, err := parseInfo([]byte("#Fri Oct 29 10:20:52 CEST 2021\nuser_id=DE.Justiz.x\nsubject=EB zu\\: 1 K 519/20.KO\nname=Pr\\u00E4sident\n  spaced : v \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user_id": "DE.Justiz.x", "subject": "EB zu: 1 K 519/20.KO", "name": "Präsident", "spaced": "v "}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseInfo([]byte("a=" + strings.Repeat("x", maxInfoBytes))); err == nil {
		t.Error("oversize additional_infos read")
	}
	if _, err := parseInfo([]byte("a=\xff")); err == nil {
		t.Error("non-UTF-8 read")
	}
	var many strings.Builder
	for i := range maxInfoEntries + 1 {
		fmt.Fprintf(&many, "k%d=v\n", i)
	}
	if _, err := parseInfo([]byte(many.String())); err == nil {
		t.Error("too many entries read")
	}
}
