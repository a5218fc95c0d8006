package egvpenterprise

import (
	"context"
	"encoding/xml"
	"os"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/internal/corpus"
)

// TestSamplesPruefprotokoll: the three samples as the connector records them go
// through the verification projection as the OSCI channel's do: the Prüfprotokoll
// names the route of their Prüfvermerk and the transport certificate, the beBPo
// messages satisfy the written form by their VHN, the court's does not.
func TestSamplesPruefprotokoll(t *testing.T) {
	r := newRig(t)
	for _, s := range samples {
		r.addSample(t, s, "ent-"+s)
	}
	if err := r.inbound(t).Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	satisfied := map[string]bool{"Testnachricht_1": false, "TestnachrichtEeb_1": true, "Testnachricht_xjustiz321": true}
	hs, err := verification.Handlers(context.Background(), verification.Config{}, verification.Deps{Blobs: r.env.Blobs})
	if err != nil {
		t.Fatal(err)
	}
	got := r.received(t)
	if len(got) != len(samples) {
		t.Fatalf("%d receipts", len(got))
	}
	for _, msg := range got {
		name := strings.TrimPrefix(msg.Metadata[MetaMessageID], "ent-")
		t.Run(name, func(t *testing.T) {
			if msg.Metadata[MetaTransportCertificate] == "" {
				t.Error("the transport certificate is not kept")
			}
			out, err := hs[0].Handle(context.Background(), &eventstore.Event{RecordedAt: msg.ReceivedAt}, msg)
			if err != nil {
				t.Fatal(err)
			}
			sv := out[0].(*gateway.SignaturesVerified)
			if sv.WrittenFormSatisfied != satisfied[name] || len(sv.Signatures) != 0 {
				t.Errorf("written form %v (%s), %d signatures", sv.WrittenFormSatisfied, sv.WrittenFormReason, len(sv.Signatures))
			}
			html, err := r.env.Blobs.ReadAll(context.Background(), sv.ReportHTML, 0)
			if err != nil {
				t.Fatal(err)
			}
			var pv struct {
				Route string `xml:"Uebermittlungsweg"`
			}
			raw, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", name, "pruefvermerk.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := xml.Unmarshal(raw, &pv); err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"Herkunftsnachweis / Übermittlungsweg", pv.Route, "CN=VHN - ", msg.EGVP.TransportCertificate, "EGVP Enterprise"} {
				if !strings.Contains(string(html), w) {
					t.Errorf("Prüfprotokoll lacks %q", w)
				}
			}
		})
	}
}
