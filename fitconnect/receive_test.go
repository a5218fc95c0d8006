package fitconnect

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// submissionFixture builds a submission as a sender would: metadata, data and
// one attachment encrypted to the destination's key, and the platform's
// submit-submission with the tags.
type submissionFixture struct {
	metadata   map[string]any
	data       []byte
	attachment []byte
	// mutate changes the stored submission after encryption.
	mutate func(p *fakePlatform, s *Submission)
	// platformTags replaces the tags the platform records (nil: the real ones).
	platformTags  func(t *AuthenticationTags)
	noSubmitEvent bool
}

func (f submissionFixture) install(t *testing.T, p *fakePlatform, enc *PublicKey, platformSigner *Signer) {
	t.Helper()
	mjwe, err := Encrypt(marshal(t, f.metadata), enc, EncryptOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	djwe, err := Encrypt(f.data, enc, EncryptOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	ajwe, err := Encrypt(f.attachment, enc, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := Submission{DestinationID: destID, SubmissionID: subID, CaseID: caseID, Attachments: []string{attA},
		EncryptedMetadata: mjwe, EncryptedData: djwe, ServiceType: &ServiceType{Identifier: LeikaPrefix + "99018115001001"}}
	p.atts[subID+"/"+attA] = []byte(ajwe)
	tag := func(s string) string { v, _ := AuthenticationTag(s); return v }
	tags := AuthenticationTags{Metadata: tag(mjwe), Data: tag(djwe), Attachments: map[string]string{attA: tag(ajwe)}}
	if f.platformTags != nil {
		f.platformTags(&tags)
	}
	if f.mutate != nil {
		f.mutate(p, &s)
	}
	p.subs[subID] = s
	p.events[caseID] = nil
	if !f.noSubmitEvent {
		ev, _ := NewSET(SETClaims{Issuer: platform, Subject: SubjectSubmission(subID), CaseID: caseID}, EventSubmitSubmission, map[string]any{"authenticationTags": tags})
		compact, err := platformSigner.Sign(ev)
		if err != nil {
			t.Fatal(err)
		}
		p.events[caseID] = append(p.events[caseID], compact)
	}
}

func TestReceive(t *testing.T) {
	a, b := testKeys(t)
	data := []byte(`{"hund":"Bello"}`)
	att := []byte("%PDF-1.7 Antrag")
	good := func() map[string]any {
		m := sdkMetadata(SHA512Hex(data))
		m["contentStructure"].(map[string]any)["attachments"] = []any{map[string]any{
			"attachmentId": attA, "purpose": "form", "mimeType": "application/pdf", "filename": "antrag.pdf",
			"hash": map[string]any{"type": "sha512", "content": SHA512Hex(att)},
		}}
		return m
	}
	otherKey := testPublic(t, b, "other")
	for _, tc := range []struct {
		name     string
		fixture  submissionFixture
		problems []string // type@instance
	}{
		{"all checks pass", submissionFixture{metadata: good(), data: data, attachment: att}, nil},
		{"data changed after hashing", submissionFixture{metadata: good(), data: []byte(`{"hund":"Rex"}`), attachment: att}, []string{ProblemHashMismatch + "@data"}},
		{"attachment changed after hashing", submissionFixture{metadata: good(), data: data, attachment: []byte("%PDF other")}, []string{ProblemHashMismatch + "@attachment:" + attA}},
		{"metadata for another key", submissionFixture{metadata: good(), data: data, attachment: att, mutate: func(_ *fakePlatform, s *Submission) {
			s.EncryptedMetadata, _ = Encrypt(marshal(t, good()), otherKey, EncryptOptions{})
		}}, []string{ProblemEncryptionIssue + "@metadata"}},
		{"metadata schema violated", submissionFixture{metadata: func() map[string]any { m := good(); delete(m, "contentStructure"); return m }(), data: data, attachment: att},
			[]string{ProblemSchemaViolation + "@metadata"}},
		{"attachment not announced", submissionFixture{metadata: good(), data: data, attachment: att, mutate: func(p *fakePlatform, s *Submission) {
			s.Attachments = nil
		}}, []string{ProblemAttachmentsMismatch + "@submission"}},
		{"data missing", submissionFixture{metadata: good(), data: data, attachment: att, mutate: func(_ *fakePlatform, s *Submission) {
			s.EncryptedData = ""
		}}, []string{ProblemMissingData + "@data"}},
		{"other service", submissionFixture{metadata: good(), data: data, attachment: att, mutate: func(_ *fakePlatform, s *Submission) {
			s.ServiceType = &ServiceType{Identifier: LeikaPrefix + "1"}
		}}, []string{ProblemServiceMismatch + "@metadata"}},
		{"attachment exchanged on the way", submissionFixture{metadata: good(), data: data, attachment: att, platformTags: func(tg *AuthenticationTags) {
			tg.Attachments[attA] = "AAAAAAAAAAAAAAAAAAAAAA"
		}}, []string{ProblemIncorrectAuthenticationTag + "@attachment:" + attA}},
		{"no submit-submission", submissionFixture{metadata: good(), data: data, attachment: att, noSubmitEvent: true}, []string{ProblemMissingAuthenticationTags + "@submission"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, srv := newFakePlatform(t)
			tc.fixture.install(t, p, testPublic(t, a, "enc"), testSigner(t, b, "platform-sig"))
			keys := testKeySet(t, b, "platform-sig")
			rc := &Receiver{Client: testClient(t, srv, 0), Decrypter: testDecrypter(t, a, "enc"), Metadata: testValidator(t), PlatformKeys: keys}
			r, err := rc.Receive(context.Background(), subID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, pr := range r.Problems {
				got = append(got, pr.Type+"@"+pr.Instance)
			}
			if !slices.Equal(got, tc.problems) {
				t.Fatalf("problems %v, want %v", got, tc.problems)
			}
			ev, err := r.Event(destID, SETClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.problems) > 0 {
				if _, ok := ev.Events[EventRejectSubmission]; !ok {
					t.Errorf("event %v, want reject-submission", ev.Events)
				}
				return
			}
			if string(r.Data) != string(data) || len(r.Attachments) != 1 || string(r.Attachments[0].Content) != string(att) || r.Attachments[0].Description.Filename != "antrag.pdf" {
				t.Errorf("received %+v", r)
			}
			if r.Service().LeikaKey() != "99018115001001" {
				t.Errorf("service %+v", r.Service())
			}
			want := []string{CheckMetadataDecrypted, CheckMetadataSchema, CheckDataDecrypted, CheckDataHash, CheckServiceType, CheckAttachmentsListed, CheckAttachmentHash + ":" + attA, CheckAuthenticationTags}
			if !slices.Equal(r.Checks, want) {
				t.Errorf("checks %v, want %v", r.Checks, want)
			}
			var body struct {
				AuthenticationTags AuthenticationTags `json:"authenticationTags"`
			}
			if err := json.Unmarshal(ev.Events[EventAcceptSubmission], &body); err != nil || !body.AuthenticationTags.Equal(r.Tags) || r.Tags.Attachments[attA] == "" {
				t.Errorf("accept-submission %s, tags %+v", ev.Events[EventAcceptSubmission], r.Tags)
			}
			if ev.Subject != SubjectSubmission(subID) || ev.Transaction != TxnCase(caseID) || ev.Issuer != destID {
				t.Errorf("claims %+v", ev)
			}
		})
	}
}

func TestReceiveGone(t *testing.T) {
	a, _ := testKeys(t)
	_, srv := newFakePlatform(t)
	rc := &Receiver{Client: testClient(t, srv, 0), Decrypter: testDecrypter(t, a, "enc"), Metadata: testValidator(t)}
	if _, err := rc.Receive(context.Background(), "vanished"); !errors.Is(err, ErrGone) {
		t.Errorf("error %v, want ErrGone", err)
	}
}
