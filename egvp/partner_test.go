package egvp

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/xjustiz"
)

// request37 is request in the Nachrichtenkopf of XJustiz 3.6/3.7 (absender and
// empfaenger with their Kommunikationspartner); the version is filled in per test.
const request37 = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de xjustiz_0005_nachrichten_3_2.xsd">
 <tns:nachrichtenkopf xjustizVersion="VERSION">
  <tns:erstellungszeitpunkt>2026-12-01T09:10:11+01:00</tns:erstellungszeitpunkt>
  <tns:absender>
   <tns:informationen><tns:auswahl_kommunikationspartner><tns:gericht listVersionID="3.6"><code>R1101</code></tns:gericht></tns:auswahl_kommunikationspartner></tns:informationen>
   <tns:aktenzeichen>3 K 12/26</tns:aktenzeichen>
   <tns:eigeneNachrichtenID>8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e</tns:eigeneNachrichtenID>
  </tns:absender>
  <tns:empfaenger>
   <tns:informationen><tns:auswahl_kommunikationspartner><tns:gericht listVersionID="3.6"><code>T6076</code></tns:gericht></tns:auswahl_kommunikationspartner></tns:informationen>
   <tns:auswahl_aktenzeichen><tns:aktenzeichen.freitext>1 K 519/20.KO</tns:aktenzeichen.freitext></tns:auswahl_aktenzeichen>
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

// A court's 3.7 request (declared 3.7.0, or 3.6.2 as the 3.7.0 schema fixes it)
// reads with the fields routing uses and no problems, and its eEB goes back in the
// same layout, naming the request.
func TestReadPartnerLayout(t *testing.T) {
	for _, version := range []string{"3.7.0", "3.6.2"} {
		t.Run(version, func(t *testing.T) {
			d := withXJustiz(sampleDelivery(t, "Testnachricht_1"), strings.Replace(request37, "VERSION", version, 1))
			m, err := Read(context.Background(), d, Config{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Problems) != 0 {
				t.Fatalf("problems %q", m.Problems)
			}
			if !m.EEB.Requested || !slices.Equal(m.EEB.Documents, []string{"d1"}) || m.EEB.ForeignMessageID != "8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e" {
				t.Errorf("eEB request %+v", m.EEB)
			}
			if m.RecipientCode != "T6076" || m.MessageType != "nachricht.gds.uebermittlungSchriftgutobjekte" || m.SenderFileNumber != "3 K 12/26" ||
				m.XJustiz.Version != version || m.XJustiz.Layout != xjustiz.LayoutPartner {
				t.Errorf("code %q type %q file number %q version %q layout %d", m.RecipientCode, m.MessageType, m.SenderFileNumber, m.XJustiz.Version, m.XJustiz.Layout)
			}
			own := BusinessCard{Organisation: "Obere Landesbehörde", Name: "Präsident", SafeID: "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650", Role: "egvp_bebpo"}
			files, err := BuildReceiptAnswer(m, ReceiptAnswer{Own: own, OwnMessageID: "3c9d2e1f-4a5b-4c6d-9e7f-8a9b0c1d2e3f",
				Created: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Received: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			x, err := xjustiz.Parse(files[2].Data, xjustiz.Limits{})
			if err != nil || len(x.Problems) > 0 {
				t.Fatal(err, x.Problems)
			}
			if !x.IsReceipt() || x.Layout != xjustiz.LayoutPartner || x.Version != xjustiz.VersionPartner || x.Header.ForeignMessageID != "8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e" ||
				x.RecipientCode() != "R1101" || x.Header.RecipientFileNumber != "3 K 12/26" {
				t.Errorf("eEB version %s header %+v", x.Version, x.Header)
			}
		})
	}
}
