package fitconnect

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

const (
	attA = "5a6d2a0e-6b8c-4a21-9a53-2d3a7c1e9f01"
	attB = "0b9e3c44-1f2a-4d6e-8b7c-9e8d7f6a5b42"
)

// sdkMetadata is metadata as the Python SDK fitconnect 0.4.2 builds it in
// submission(): $schema 1.0.0, the attachments it generated, a submissionDate
// it adds to additionalReferenceInfo, the data hash and schema.
func sdkMetadata(dataHash string, attachments ...string) map[string]any {
	var atts []any
	for _, id := range attachments {
		atts = append(atts, map[string]any{
			"attachmentId": id,
			"hash":         map[string]any{"type": "sha512", "content": SHA512Hex([]byte("attachment " + id))},
			"mimeType":     "application/pdf",
			"purpose":      "attachment",
		})
	}
	if atts == nil {
		atts = []any{}
	}
	return map[string]any{
		"$schema": MetadataSchemaPrefix + "1.0.0/metadata.schema.json",
		"contentStructure": map[string]any{
			"attachments": atts,
			"data": map[string]any{
				"hash":             map[string]any{"type": "sha512", "content": dataHash},
				"submissionSchema": map[string]any{"schemaUri": "https://schema.example.org/antrag.schema.json", "mimeType": "application/json"},
			},
		},
		"publicServiceType":       map[string]any{"name": "Hundesteuer", "identifier": LeikaPrefix + "99018115001001"},
		"additionalReferenceInfo": map[string]any{"submissionDate": "2026-12-03 16:40:00.123456"},
	}
}

// v2Metadata is a 2.1.0 document asking for a reply over FIT-Connect.
func v2Metadata(t *testing.T, dataHash string, replyKey []byte) map[string]any {
	t.Helper()
	return map[string]any{
		"$schema": MetadataSchemaPrefix + "2.1.0/metadata.schema.json",
		"contentStructure": map[string]any{
			"attachments": []any{map[string]any{
				"attachmentId": attA, "purpose": "form", "mimeType": "application/pdf", "filename": "antrag.pdf",
				"hash": map[string]any{"type": "sha512", "content": SHA512Hex([]byte("pdf"))},
			}},
			"data": map[string]any{
				"hash":             map[string]any{"type": "sha512", "content": dataHash},
				"submissionSchema": map[string]any{"schemaUri": "urn:xoev-de:xbau:standard:xbau_2.3", "mimeType": "application/xml"},
			},
		},
		"replyChannel": map[string]any{"fitConnect": map[string]any{
			"processStandards":    []any{"urn:xoev-de:xbau:standard:xbau_2.3"},
			"encryptionPublicKey": json.RawMessage(replyKey),
		}},
		"additionalReferenceInfo": map[string]any{"senderReference": "AZ-4711", "applicationDate": "2026-12-01"},
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testValidator(t testing.TB) *MetadataValidator {
	t.Helper()
	v, err := NewMetadataValidator(MetadataOptions{MaxSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseSDKMetadata(t *testing.T) {
	v := testValidator(t)
	hash := SHA512Hex([]byte(`{"name":"Bello"}`))
	md, err := v.Parse(marshal(t, sdkMetadata(hash, attA, attB)))
	if err != nil {
		t.Fatal(err)
	}
	if md.ValidatedWith != MetadataSchemaPrefix+"1.0.0/metadata.schema.json" {
		t.Errorf("validated with %s", md.ValidatedWith)
	}
	if md.ServiceType == nil || md.ServiceType.LeikaKey() != "99018115001001" || md.ServiceType.Name != "Hundesteuer" {
		t.Errorf("service type %+v", md.ServiceType)
	}
	if md.Data == nil || md.Data.Hash.Content != hash || md.Data.SubmissionSchema.MimeType != "application/json" {
		t.Errorf("data %+v", md.Data)
	}
	if len(md.Attachments) != 2 || md.Attachments[1].AttachmentID != attB || md.Attachments[0].Purpose != "attachment" {
		t.Errorf("attachments %+v", md.Attachments)
	}
	if md.ReplyChannel != nil {
		t.Errorf("reply channel %+v, want none", md.ReplyChannel)
	}
	if err := md.CheckAttachments([]string{attB, attA}); err != nil {
		t.Errorf("CheckAttachments: %v", err)
	}
	if err := VerifyHash(md.Data.Hash, []byte(`{"name":"Bello"}`)); err != nil {
		t.Errorf("VerifyHash: %v", err)
	}
	a, ok := md.Attachment(attA)
	if !ok || VerifyHash(a.Hash, []byte("attachment "+attA)) != nil {
		t.Errorf("attachment %s: %+v %v", attA, a, ok)
	}
}

func TestParseV2ReplyChannel(t *testing.T) {
	v := testValidator(t)
	k := testKey4096(t)
	replyKey := jwkJSON(t, &k.PublicKey, "reply-key-0001", KeyAlgorithm, "wrapKey")
	md, err := v.Parse(marshal(t, v2Metadata(t, SHA512Hex([]byte("<xbau/>")), replyKey)))
	if err != nil {
		t.Fatal(err)
	}
	if md.ValidatedWith != MetadataSchemaPrefix+"2.1.0/metadata.schema.json" {
		t.Errorf("validated with %s", md.ValidatedWith)
	}
	rc := md.ReplyChannel
	if rc == nil || rc.Kind != ReplyChannelFitConnect || rc.FitConnect == nil || rc.FitConnect.ProcessStandards[0] != "urn:xoev-de:xbau:standard:xbau_2.3" {
		t.Fatalf("reply channel %+v", rc)
	}
	pub, err := rc.FitConnect.EncryptionKey()
	if err != nil || pub.KeyID != "reply-key-0001" || pub.Bits() < MinKeyBits {
		t.Fatalf("reply key %+v, %v", pub, err)
	}
	// A reply encrypted to that key opens with the sender's private key.
	jwe, err := Encrypt([]byte("<antwort/>"), pub, EncryptOptions{ContentType: "application/xml"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt([]byte(jwe), testDecrypter(t, k, "reply-key-0001"), DecryptOptions{})
	if err != nil || string(got.Plaintext) != "<antwort/>" {
		t.Fatalf("reply round trip: %v", err)
	}
	if md.AdditionalReferenceInfo == nil || md.AdditionalReferenceInfo.SenderReference != "AZ-4711" {
		t.Errorf("additionalReferenceInfo %+v", md.AdditionalReferenceInfo)
	}
}

func TestParseMetadataRefuses(t *testing.T) {
	v := testValidator(t)
	hash := SHA512Hex([]byte("x"))
	with := func(f func(m map[string]any)) []byte {
		m := sdkMetadata(hash, attA)
		f(m)
		return marshal(t, m)
	}
	smallKey, _ := testKeys(t)
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"not JSON", []byte(`{"contentStructure":`), ProblemSyntaxViolation},
		{"array", []byte(`[]`), ProblemSyntaxViolation},
		{"trailing garbage", append(with(func(map[string]any) {}), []byte(" {}")...), ProblemSyntaxViolation},
		{"too large", append(with(func(map[string]any) {}), bytes.Repeat([]byte(" "), 64<<10)...), ProblemSyntaxViolation},
		{"$schema not a string", with(func(m map[string]any) { m["$schema"] = 1 }), ProblemMissingSchema},
		{"$schema foreign", with(func(m map[string]any) { m["$schema"] = "https://evil.example/metadata.schema.json" }), ProblemUnsupportedSchema},
		{"$schema 1.5.0", with(func(m map[string]any) { m["$schema"] = MetadataSchemaPrefix + "1.5.0/metadata.schema.json" }), ProblemUnsupportedSchema},
		{"$schema 3.0.0", with(func(m map[string]any) { m["$schema"] = MetadataSchemaPrefix + "3.0.0/metadata.schema.json" }), ProblemUnsupportedSchema},
		{"$schema without version", with(func(m map[string]any) { m["$schema"] = MetadataSchemaPrefix + "latest/metadata.schema.json" }), ProblemUnsupportedSchema},
		{"no contentStructure", with(func(m map[string]any) { delete(m, "contentStructure") }), ProblemSchemaViolation},
		{"hash not hex", with(func(m map[string]any) {
			m["contentStructure"].(map[string]any)["data"].(map[string]any)["hash"] = map[string]any{"type": "sha512", "content": "zz"}
		}), ProblemSchemaViolation},
		{"hash md5", with(func(m map[string]any) {
			m["contentStructure"].(map[string]any)["data"].(map[string]any)["hash"] = map[string]any{"type": "md5", "content": hash}
		}), ProblemSchemaViolation},
		{"attachment id not a uuid", with(func(m map[string]any) {
			m["contentStructure"].(map[string]any)["attachments"].([]any)[0].(map[string]any)["attachmentId"] = "../../etc/passwd"
		}), ProblemSchemaViolation},
		{"two reply channels", with(func(m map[string]any) {
			m["replyChannel"] = map[string]any{"eMail": map[string]any{"address": "a@example.org"}, "deMail": map[string]any{"address": "b@example.de-mail.de"}}
		}), ProblemSchemaViolation},
		{"e-mail not an address", with(func(m map[string]any) {
			m["replyChannel"] = map[string]any{"eMail": map[string]any{"address": "not an address"}}
		}), ProblemSchemaViolation},
		{"unknown reply channel", with(func(m map[string]any) {
			m["replyChannel"] = map[string]any{"carrierPigeon": map[string]any{}}
		}), ProblemUnsupportedReplyChannel},
		{"2.1.0 reply key of 2048 bits", marshal(t, v2Metadata(t, hash, jwkJSON(t, &smallKey.PublicKey, "reply-key-0001", KeyAlgorithm, "wrapKey"))), ProblemSchemaViolation},
		{"2.1.0 reply key for signing", marshal(t, v2Metadata(t, hash, jwkJSON(t, &testKey4096(t).PublicKey, "reply-key-0001", SignatureAlgorithm, "verify"))), ProblemSchemaViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Parse(tc.doc)
			var pe *ProblemError
			if !errors.As(err, &pe) || pe.Type != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if len(pe.Detail) > maxProblemDetail+len("…") {
				t.Errorf("detail of %d bytes", len(pe.Detail))
			}
			if p := ProblemFor(err, InstanceMetadata); p.Type != tc.want || p.Instance != InstanceMetadata || p.Title == "" {
				t.Errorf("problem %+v", p)
			}
		})
	}
}

// TestSchemaSelection: which embedded schema a $schema picks.
func TestSchemaSelection(t *testing.T) {
	v := testValidator(t)
	for _, tc := range []struct{ uri, want string }{
		{"", "1.0.0"},
		{MetadataSchemaPrefix + "1.0.0/metadata.schema.json", "1.0.0"},
		{MetadataSchemaPrefix + "1.0.3/metadata.schema.json", "1.0.0"},
		{MetadataSchemaPrefix + "2.0.0/metadata.schema.json", "2.1.0"},
		{MetadataSchemaPrefix + "2.1.7/metadata.schema.json", "2.1.0"},
		{MetadataSchemaPrefix + "2.2.0/metadata.schema.json", ""},
		{MetadataSchemaPrefix + "1.1.0/metadata.schema.json", ""},
	} {
		s, err := v.pick(tc.uri)
		got := ""
		if err == nil {
			got = strings.TrimSuffix(strings.TrimPrefix(s.uri, MetadataSchemaPrefix), "/metadata.schema.json")
		}
		if got != tc.want {
			t.Errorf("pick(%q) = %q (%v), want %q", tc.uri, got, err, tc.want)
		}
	}
	if got := v.SupportedSchemas(); len(got) != 2 {
		t.Errorf("SupportedSchemas = %v", got)
	}
}

func TestCheckAttachments(t *testing.T) {
	md := &Metadata{Attachments: []AttachmentDescription{{AttachmentID: attA}, {AttachmentID: attB}}}
	dup := &Metadata{Attachments: []AttachmentDescription{{AttachmentID: attA}, {AttachmentID: attA}}}
	for _, tc := range []struct {
		name      string
		md        *Metadata
		announced []string
		ok        bool
	}{
		{"same set", md, []string{attA, attB}, true},
		{"other order", md, []string{attB, attA}, true},
		{"one missing from the submission", md, []string{attA}, false},
		{"one not described", md, []string{attA, attB, "c"}, false},
		{"announced twice", md, []string{attA, attA, attB}, false},
		{"described twice (the SDK 0.4.2 repeats one uuid)", dup, []string{attA, attA}, false},
		{"none", &Metadata{}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.md.CheckAttachments(tc.announced)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && ProblemFor(err, InstanceSubmission).Type != ProblemAttachmentsMismatch {
				t.Errorf("problem %+v", ProblemFor(err, InstanceSubmission))
			}
		})
	}
}

func TestVerifyHash(t *testing.T) {
	content := []byte("Antrag")
	sum := SHA512Hex(content)
	for _, tc := range []struct {
		name string
		h    Hash
		ok   bool
	}{
		{"match", Hash{"sha512", sum}, true},
		{"upper-case hex", Hash{"sha512", strings.ToUpper(sum)}, true},
		{"other content", Hash{"sha512", SHA512Hex([]byte("antrag"))}, false},
		{"sha256", Hash{"sha256", sum}, false},
		{"short", Hash{"sha512", sum[:64]}, false},
		{"not hex", Hash{"sha512", strings.Repeat("g", 128)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyHash(tc.h, content)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrHashMismatch) || ProblemFor(err, InstanceData).Type != ProblemHashMismatch) {
				t.Errorf("error %v not a hash mismatch", err)
			}
		})
	}
}

func TestLeikaKey(t *testing.T) {
	for in, want := range map[string]string{
		LeikaPrefix + "99018115001001": "99018115001001",
		LeikaPrefix:                    "",
		"urn:de:example:service:1":     "",
		"":                             "",
	} {
		if got := LeikaKey(in); got != want {
			t.Errorf("LeikaKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEmbeddedSchemasAreTheCorpus: the embedded schema files are byte for byte
// the corpus files whose provenance testdata/SOURCES.tsv records.
func TestEmbeddedSchemasAreTheCorpus(t *testing.T) {
	for embedded, src := range map[string][]string{
		"schema/metadata.schema.v1.0.0.json": {"fitconnect", "fitconnect-sdk-python", "metadata.schema.v1.0.0.json"},
		"schema/metadata.schema.v2.1.0.json": {"fitconnect", "govtech-de", "metadata.schema.v2.1.0.json"},
	} {
		a, err := schemaFiles.ReadFile(embedded)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(corpus.Path(t, src...))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from testdata/%s", embedded, strings.Join(src, "/"))
		}
	}
}
