package portal

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// TestSDKSubmission takes in a submission the Python SDK fitconnect 0.4.2
// made (package fitconnect's golden fixture: zip DEF, the key's thumbprint as
// kid, metadata 1.0.0 without publicServiceType) and accepts it.
func TestSDKSubmission(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "fitconnect", "testdata", "sdk-0.4.2-submission.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		DecryptionKey json.RawMessage `json:"decryptionKey"`
		Create        struct {
			DestinationID        string            `json:"destinationId"`
			AnnouncedAttachments []string          `json:"announcedAttachments"`
			ServiceType          map[string]string `json:"serviceType"`
		} `json:"create"`
		Submit struct {
			EncryptedMetadata string `json:"encryptedMetadata"`
			EncryptedData     string `json:"encryptedData"`
		} `json:"submit"`
		Attachments map[string]string `json:"attachments"`
		Data        string            `json:"data"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(g.DecryptionKey); err != nil {
		t.Fatal(err)
	}
	dest, sub, caseID := g.Create.DestinationID, "5b0a8f0e-3a5c-4a51-9f44-8d1c2a3b4c5d", "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	body, err := json.Marshal(map[string]any{"destinationId": dest, "submissionId": sub, "caseId": caseID,
		"attachments": g.Create.AnnouncedAttachments, "encryptedMetadata": g.Submit.EncryptedMetadata,
		"encryptedData": g.Submit.EncryptedData, "serviceType": g.Create.ServiceType})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	fake := newFake()
	fake.add(&fakeSub{ref: fitconnect.SubmissionRef{DestinationID: dest, SubmissionID: sub, CaseID: caseID}, json: body, attachments: g.Attachments})
	keys := newTestKeys(jwk.Key.(*rsa.PrivateKey), testKeys().signKey, "sig-1")
	in, err := newInbound(Config{SubmissionAPI: "http://127.0.0.1:1/v1", DestinationID: dest, MaxSubmissionSize: 4 << 20},
		gateway.IntakeDeps{Intake: e.intake, Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler)}, inboundOptions{api: fake, keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.received(t)
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m := got[0].msg
	if m.Portal.Decision != gateway.PortalAccepted || len(m.Problems) != 0 {
		t.Fatalf("decision %s, problems %v", m.Portal.Decision, m.Problems)
	}
	if m.Portal.ServiceIdentifier != "urn:de:fim:leika:leistung:99018115001001" || m.Portal.LeikaKey != "99018115001001" {
		t.Errorf("service %q, LeiKa %q", m.Portal.ServiceIdentifier, m.Portal.LeikaKey)
	}
	var data string
	for _, p := range m.Parts {
		if p.Path == "data" {
			data = string(e.blob(t, p))
		}
	}
	if data != g.Data || len(m.Parts) != 2+len(g.Attachments) {
		t.Errorf("data %q, parts %+v", data, m.Parts)
	}
	if d := fake.decisions(sub); len(d) != 1 || d[0] != "accept-submission" {
		t.Errorf("decisions %v", d)
	}
}
