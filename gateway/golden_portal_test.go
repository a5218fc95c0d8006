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

// TestGoldenPortal pins the encoding of the portal section of MessageReceived,
// every field set, as TestGoldenEGVP does for the egvp section.
func TestGoldenPortal(t *testing.T) {
	const sub = "6f2b1f3e-9a4c-4d6e-8b1a-2c3d4e5f6a7b"
	p := &MessageReceived{Channel: ChannelPortal, SenderMessageID: sub,
		From: Address{Address: "portal:" + sub, Name: "FIT-Connect submission"},
		To:   []Address{{Address: "portal:destination:0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6"}}, Subject: "Anzeige einer Baumaßnahme",
		ReceivedAt: goldenTime, Raw: goldenRef,
		Parts: []Part{{Path: "data", MediaType: "application/json", Filename: "data.json", Blob: goldenRef, Kind: "body"},
			{Path: "attachment.1", MediaType: "application/pdf", Filename: "antrag.pdf", Blob: goldenRef, Kind: "attachment"}},
		Metadata:  map[string]string{"fitconnect.destination": "0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6"},
		Transport: TransportEvidence{RemoteAddr: "submission-api.example", Coordinates: "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"},
		Problems:  []string{"portal: attachment 2: hash-mismatch"},
		Portal: &PortalFields{DestinationID: "0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6", SubmissionID: sub,
			CaseID: "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f", ServiceIdentifier: "urn:de:fim:leika:leistung:99108008252000",
			ServiceName: "Baugenehmigung", LeikaKey: "99108008252000",
			MetadataSchema: "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json", ReplyChannel: "fitConnect",
			AuthenticationTags: &PortalAuthenticationTags{Metadata: "XFBoMYUZodetZdvTiFvSkQ", Data: "UCGiqJxhBI3IFVdPalHHvA",
				Attachments: map[string]string{"123d4b1b-ba68-4c51-a4ab-6f6b4a0c1d2e": "rT99rwrBTbTI7IJM8fU3Eg"}},
			Checks:   []string{"metadata decrypted", "metadata schema 1.0.0", "data hash sha512"},
			Decision: PortalRejected,
			Problems: []PortalProblem{{Type: "https://schema.fitko.de/fit-connect/events/problems/hash-mismatch",
				Title: "Prüfsumme stimmt nicht", Detail: "the SHA-512 of attachment 2 differs from the metadata's",
				Instance: "attachment:123d4b1b-ba68-4c51-a4ab-6f6b4a0c1d2e"}}}}
	got, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "events", "MessageReceived.v2.portal.json")
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
