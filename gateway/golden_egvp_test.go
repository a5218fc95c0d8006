package gateway

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
)

// TestGoldenEGVP pins the encoding of the egvp section of MessageReceived, every
// field set, as TestGoldenEncodings does for the other payloads.
func TestGoldenEGVP(t *testing.T) {
	p := &MessageReceived{Channel: ChannelEGVP, SenderMessageID: "govapp_1635495652029962964207292623458",
		From: Address{Address: "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650", Name: "Präsident des Oberverwaltungsgerichts"},
		To:   []Address{{Address: "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"}}, Subject: "EB zu: 1 K 519/20.KO",
		ReceivedAt: goldenTime, Raw: goldenRef, Transport: TransportEvidence{Coordinates: "osci/govapp_1635495652029962964207292623458"},
		EGVP: &EGVPFields{SenderSafeID: "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650", SenderRole: "egvp_bebpo",
			RecipientSafeID: "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7", SenderFileNumber: "AZ-2026/17",
			RecipientFileNumber: "1 K 519/20.KO", MessageType: "nachricht.gds.uebermittlungSchriftgutobjekte", RecipientCode: "T6076",
			XJustizVersion: "3.5.1", XJustizMessageID: "714967a2-5e13-4c07-91c2-41adb4537bbc",
			XJustizForeignMessageID: "e238a754-f63d-4196-98e6-89c50f015b2e", EEBRequested: true, EEBDocuments: []string{"d1"},
			Origin: "vhn", OriginMailbox: "bebpo", OriginRoute: "Sicherer Übermittlungsweg aus einem besonderen Behördenpostfach.",
			OriginReason: "VHN of a bebpo mailbox", TransportCertificate: goldenRef.SHA256}}
	got, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "events", "MessageReceived.v2.egvp.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed; a renamed or re-interpreted field needs a new schema version\n got %s\nwant %s", got, want)
	}
	back, err := NewRegistry().Decode(&eventstore.Event{Type: p.EventType(), Version: p.SchemaVersion(), Data: want})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("golden file decodes to\n %+v\nwant %+v", back, p)
	}
}
