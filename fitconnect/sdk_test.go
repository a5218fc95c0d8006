package fitconnect

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// sdkGolden is a submission the Python SDK fitconnect 0.4.2 produced
// (testdata/gen-sdk-golden.py: its encrypt and submission code, the API calls
// stubbed), with the test key it was encrypted to.
type sdkGolden struct {
	DecryptionKey json.RawMessage `json:"decryptionKey"`
	Create        struct {
		DestinationID        string       `json:"destinationId"`
		AnnouncedAttachments []string     `json:"announcedAttachments"`
		ServiceType          *ServiceType `json:"serviceType"`
	} `json:"create"`
	Submit struct {
		EncryptedMetadata string `json:"encryptedMetadata"`
		EncryptedData     string `json:"encryptedData"`
	} `json:"submit"`
	Attachments map[string]string `json:"attachments"`
	Data        string            `json:"data"`
}

func loadSDKGolden(t *testing.T) (*sdkGolden, *Decrypter) {
	t.Helper()
	b, err := os.ReadFile("testdata/sdk-0.4.2-submission.json")
	if err != nil {
		t.Fatal(err)
	}
	var g sdkGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	d, err := NewJWKDecrypter(g.DecryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	return &g, d
}

// TestSDKSubmission reads what the real SDK writes: JWEs with zip DEF and the
// key's thumbprint as kid, metadata 1.0.0 with the data and attachment hashes.
func TestSDKSubmission(t *testing.T) {
	g, dec := loadSDKGolden(t)
	if _, err := Decrypt([]byte(g.Submit.EncryptedMetadata), dec, DecryptOptions{}); !errors.Is(err, ErrUnsupportedJWE) {
		t.Fatalf("zip DEF accepted by default: %v", err)
	}
	opts := DecryptOptions{AllowCompression: true}
	md, err := Decrypt([]byte(g.Submit.EncryptedMetadata), dec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !md.Compressed || md.ContentType != "application/json" || md.KeyID == dec.KeyID() {
		t.Errorf("header: compressed %v cty %q kid %q", md.Compressed, md.ContentType, md.KeyID)
	}
	meta, err := testValidator(t).Parse(md.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ValidatedWith != MetadataSchemaPrefix+"1.0.0/metadata.schema.json" {
		t.Errorf("validated with %s", meta.ValidatedWith)
	}
	data, err := Decrypt([]byte(g.Submit.EncryptedData), dec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if string(data.Plaintext) != g.Data || VerifyHash(meta.Data.Hash, data.Plaintext) != nil {
		t.Errorf("data %q does not match its hash", data.Plaintext)
	}
	if err := meta.CheckAttachments(g.Create.AnnouncedAttachments); err != nil {
		t.Fatal(err)
	}
	for id, jwe := range g.Attachments {
		a, err := Decrypt([]byte(jwe), dec, opts)
		if err != nil {
			t.Fatal(err)
		}
		desc, ok := meta.Attachment(id)
		if !ok || VerifyHash(desc.Hash, a.Plaintext) != nil || desc.MimeType != "application/pdf" {
			t.Errorf("attachment %s: %+v", id, desc)
		}
	}
}

// TestReceiveSDKSubmission runs the Receiver over the SDK's submission served
// by the fake platform (which writes no submit-submission, so no tag check).
func TestReceiveSDKSubmission(t *testing.T) {
	g, dec := loadSDKGolden(t)
	p, srv := newFakePlatform(t)
	p.subs[subID] = Submission{DestinationID: g.Create.DestinationID, SubmissionID: subID, CaseID: caseID,
		Attachments: g.Create.AnnouncedAttachments, EncryptedMetadata: g.Submit.EncryptedMetadata,
		EncryptedData: g.Submit.EncryptedData, ServiceType: g.Create.ServiceType}
	for id, jwe := range g.Attachments {
		p.atts[subID+"/"+id] = []byte(jwe)
	}
	rc := &Receiver{Client: testClient(t, srv, 0), Decrypter: dec, Metadata: testValidator(t), Decrypt: DecryptOptions{AllowCompression: true}}
	r, err := rc.Receive(context.Background(), subID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 || len(r.Attachments) != 1 || r.Service().LeikaKey() != "99018115001001" {
		t.Fatalf("problems %+v, %d attachments, service %+v", r.Problems, len(r.Attachments), r.Service())
	}
	rc.Decrypt = DecryptOptions{}
	r, err = rc.Receive(context.Background(), subID)
	if err != nil || len(r.Problems) != 1 || r.Problems[0].Type != ProblemEncryptionIssue || r.Problems[0].Instance != InstanceMetadata {
		t.Fatalf("without AllowCompression: %+v, %v", r, err)
	}
}
