package gateway

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
)

var update = flag.Bool("update", false, "rewrite the golden event encodings in testdata/events")

var (
	goldenTime = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	goldenRef  = blob.Ref{SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", Size: 6}
)

// goldenPayloads fills every field of every payload type, so that a renamed,
// dropped or re-tagged field changes the encoding and fails the test.
func goldenPayloads() []Payload {
	return []Payload{
		&MessageReceived{Channel: ChannelIMAP, SenderMessageID: "<antrag-7@buerger.example>",
			From: Address{Address: "buerger@example.org", Name: "Bürger"}, To: []Address{{Address: "poststelle@kreis.example"}},
			Cc: []Address{{Address: "kopie@example.org"}}, Subject: "Antrag", ReceivedAt: goldenTime, Raw: goldenRef,
			Parts: []Part{{Path: "1.2", MediaType: "application/pdf", Filename: "antrag.pdf", Blob: goldenRef, Kind: "attachment",
				Problems: []string{"part: truncated"}}},
			Metadata: map[string]string{"date": "Sat, 28 Nov 2026 10:29:58 +0100", "replyTo": "antwort@example.org"},
			Transport: TransportEvidence{RemoteAddr: "192.0.2.1:993", Coordinates: "amt/1700000000/7",
				Envelope: map[string]string{"mailbox": "amt", "uid": "7"}, Received: []string{"from mx.example.org"},
				TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Untrusted: []Header{{Name: "X-Poststelle-Channel", Value: "egvp"}}},
			Problems: []string{"header: bad Date"},
			DeMail: &DeMailEvidence{MessageType: "normal", MessageID: "dm-4711@provider.example", PrivateID: "az-12",
				Sender: "buerger@provider.de-mail.example", AccountHolder: "Erika Mustermann", AuthLevel: "high",
				AuthMechanism: "nPA", OriginatorProvider: "provider.example", Version: "1.8", ConfirmDispatch: true,
				ConfirmReceipt: true, ConfirmRetrieval: true, Authoritative: true, Personal: true, Verdict: "provider-signed",
				VerdictDetail: "signature verified", ProviderCertificate: goldenRef.SHA256, WrittenForm: true}},
		&MessageRouted{Offices: []string{"bauamt"}, Rule: "bau", RulesVersion: "sha256:ab", DecidedBy: "rules", Reason: "subject"},
		&RoutingFailed{Reason: "no rule matched", RulesVersion: "sha256:ab"},
		&MessageDelivered{Office: "bauamt", Via: "webhook", Target: "https://bauamt.example/hook"},
		&MessageQueued{Office: "bauamt", Stream: "m-1", RoutedBy: "evt-routed", Rule: "bau"},
		&TriageQueued{Stream: "m-1", Cause: "evt-routing-failed", Kind: "routing"},
		&EEBOverdue{Due: goldenTime, Offices: []string{"rechtsamt"}},
		&ReplyAttempted{ReplyID: "rpl-1", Attempt: 2, Channel: ChannelEGVP, Peer: "EGVP Enterprise",
			References: []EvidenceReference{{Kind: "xjustizMessageId", Value: "6f1c2c4e-8d0e-4a53-9c57-3b1f4f0e2a11"}}},
		&ReplyResendOrdered{ReplyID: "rpl-1", Attempt: 2, By: "post1", Note: "not in the Enterprise journal"},
		&MessageAcknowledged{Office: "bauamt", By: "m.muster", Via: "api"},
		&ReplyRequested{ReplyID: "rpl-1", Office: "bauamt", Author: "m.muster", Channel: ChannelSMTP,
			To: Address{Address: "buerger@example.org", Name: "Bürger"}, Subject: "Re: Antrag", Body: goldenRef,
			Attachments: []Part{{Path: "1", MediaType: "application/pdf", Blob: goldenRef, Kind: "attachment"}},
			InReplyTo:   "<antrag-7@buerger.example>",
			EEB: &EEBAnswer{Decision: EEBRefused, ReceivedOn: "2026-11-27", RefusalCode: "2", Reason: "Anlage fehlt",
				DeviatingRecipient: true}},
		&ReplySent{ReplyID: "rpl-1", Channel: ChannelSMTP, ChannelMessageID: "<rpl-1@kreis.example>", Attempt: 2, Response: "250 ok",
			Sent: goldenRef},
		&ReplyFailed{ReplyID: "rpl-1", Attempt: 1, Error: "no answer after the request was written", Permanent: true,
			RetryAt: goldenTime, Uncertain: true},
		&ReplyIDAssigned{ReplyID: "rpl-1", Channel: ChannelPortal, PeerID: "3f0c9a52-6b0e-4c53-9d0a-3f1d0b9e6a11",
			References: []EvidenceReference{{Kind: "caseId", Value: "a1b2c3d4-0000-4000-8000-000000000001"}}},
		&ProcessingFailed{Handler: "route", EventID: "rcv-x", Type: "MessageReceived", Attempts: 5, Error: "boom"},
		&SignaturesVerified{Signatures: []SignatureSummary{{Part: "1.2", Format: "CAdES", Indication: "TOTAL_PASSED",
			SubIndication: "", Qualification: "QESig", Signer: "CN=Bürger", SigningTime: goldenTime}},
			WrittenFormSatisfied: true, WrittenFormReason: "QES", Report: goldenRef, ReportHTML: goldenRef,
			ValidationTime: goldenTime, Verifier: "poststelle 0.1.0"},
		&TimestampApplied{TSA: "https://tsa.example", Token: goldenRef, GenTime: goldenTime, Imprint: goldenRef.SHA256,
			Serial: "42", Policy: "1.2.3"},
		&HeadPublished{Heads: []PublishedHead{{Partition: 0, Size: 10, Root: "ab"}}, NoteSHA256: "cd",
			Witnesses: []string{"w1"}, Failed: []string{"w2"}, TSA: "https://tsa.example", TokenSHA256: "ef", GenTime: goldenTime},
		&WebhookAttempted{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 1, Status: 503,
			Error: "answered 503 Service Unavailable", Next: goldenTime},
		&WebhookDelivered{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 3, Status: 204},
		&WebhookFailed{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 8, Status: 500,
			Error: "giving up after 8 attempts: answered 500"},
		&DeliveryEvidenceRecorded{Channel: ChannelDeMail, Kind: EvidenceRetrieved, ReplyID: "rpl-1",
			References: []EvidenceReference{{Kind: "privateId", Value: "rpl-1"}, {Kind: "messageId", Value: "<rpl-1@kreis.example>"}},
			LinkedBy:   "replyId", Unlinked: "no message or answer on demail has this privateId",
			Attester:   Attester{Role: "provider", Name: "Beispiel-Provider GmbH", ID: "beispiel.de-mail.de"},
			AttestedAt: goldenTime, EvidenceID: "<abholbestaetigung-9@beispiel.de-mail.de>", Evidence: goldenRef,
			MediaType: "message/rfc822", Verification: &EvidenceVerification{Indication: "TOTAL_PASSED", SubIndication: "",
				Format: "S/MIME", Signer: "CN=Beispiel-Provider", Qualification: "AdESeal-QC", SigningTime: goldenTime,
				Detail: "provider certificate from the configured trust"},
			Reason: "retrieved by the recipient", Problems: []string{"header: duplicate X-de-mail-private-id"}},
		&NoteAdded{By: "post1", Role: "mailroom", Office: "bauamt", Text: "Telefonisch mit dem Bauamt geklärt"},
		&EvidenceRecordSaved{Object: PreservedObject{Kind: PreservedOriginal, Stream: "msg-1", Data: goldenRef}, Record: goldenRef,
			Cause: RecordTimestampRenewal, Hash: "SHA-256", GenTime: goldenTime, TSA: "CN=Beispiel-TSA,O=Beispiel,C=DE",
			NextDue: goldenTime.AddDate(2, 0, 0)},
		&ContentErased{ErasedAt: goldenTime, Rule: "office bauamt: 10y from the end of the year of receipt",
			Reason: "retention-expired", Office: "bauamt", RetainUntil: goldenTime, Actor: "admin1",
			Blobs: []blob.Ref{goldenRef}, Kept: []blob.Ref{{SHA256: goldenRef.SHA256, Size: 7}}},
		&LegalHoldSet{Reason: "Klage anhängig", Actor: "admin1", Case: "VG 1 K 23/26", SetAt: goldenTime},
		&LegalHoldReleased{Reason: "Verfahren abgeschlossen", Actor: "admin1", ReleasedAt: goldenTime},
	}
}

func goldenPath(eventType string, version int) string {
	return filepath.Join("testdata", "events", eventType+".v"+strconv.Itoa(version)+".json")
}

// TestGoldenEncodings pins the JSON of every event type: the log keeps these
// bytes for decades, so a change must be a deliberate new schema version.
func TestGoldenEncodings(t *testing.T) {
	r := NewRegistry()
	var covered []string
	for _, p := range goldenPayloads() {
		covered = append(covered, p.EventType())
		t.Run(p.EventType(), func(t *testing.T) {
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := goldenPath(p.EventType(), p.SchemaVersion())
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
				t.Fatalf("encoding of %s changed; a renamed or re-interpreted field needs a new schema version\n got %s\nwant %s", p.EventType(), got, want)
			}
			e := eventstore.Event{Type: p.EventType(), Version: p.SchemaVersion(), Data: want}
			back, err := r.Decode(&e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, p) {
				t.Fatalf("golden file decodes to\n %+v\nwant %+v", back, p)
			}
		})
	}
	for name := range r.types {
		if !slices.Contains(covered, name) {
			t.Errorf("event type %s has no golden encoding in goldenPayloads", name)
		}
	}
}

// TestDecodeVersion1 reads events as version 1 wrote them (committed, never
// regenerated) into the version 2 shape.
func TestDecodeVersion1(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		file string
		typ  string
		want Payload
	}{
		{"MessageReceived.v1.smtp.json", "MessageReceived", &MessageReceived{Channel: ChannelSMTP, SenderMessageID: "<m1@example.org>",
			From: Address{Address: "buerger@example.org"}, ReceivedAt: goldenTime, Raw: goldenRef,
			Metadata:  map[string]string{"date": "Sat, 28 Nov 2026 10:29:58 +0100"},
			Transport: TransportEvidence{Envelope: map[string]string{"mailFrom": "buerger@example.org"}}}},
		{"MessageReceived.v1.imap.json", "MessageReceived", &MessageReceived{Channel: ChannelIMAP, SenderMessageID: "<m2@example.org>",
			From: Address{Address: "buerger@example.org"}, ReceivedAt: goldenTime, Raw: goldenRef,
			Metadata:  map[string]string{"replyTo": "antwort@example.org"},
			Transport: TransportEvidence{Coordinates: "amt/1/7", Envelope: map[string]string{"uid": "7"}}}},
		{"MessageReceived.v1.imap-no-id.json", "MessageReceived", &MessageReceived{Channel: ChannelIMAP,
			From: Address{Address: "buerger@example.org"}, ReceivedAt: goldenTime, Raw: goldenRef,
			Transport: TransportEvidence{Coordinates: "amt/1/8"}}},
		{"ReplyRequested.v1.imap.json", "ReplyRequested", &ReplyRequested{ReplyID: "rpl-2", Office: "bauamt", Author: "m.muster",
			Channel: ChannelSMTP, To: Address{Address: "buerger@example.org"}, Subject: "Re: Antrag", Body: goldenRef}},
		{"ReplyRequested.v1.smtp.json", "ReplyRequested", &ReplyRequested{ReplyID: "rpl-3", Office: "bauamt", Author: "m.muster",
			Channel: ChannelSMTP, To: Address{Address: "buerger@example.org"}, Subject: "Re: Antrag", Body: goldenRef,
			InReplyTo: "<m1@example.org>"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "events", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Decode(&eventstore.Event{Type: tt.typ, Version: 1, Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decoded\n %+v\nwant %+v", got, tt.want)
			}
			if rec, ok := tt.want.(*MessageReceived); ok {
				var stored MessageReceived
				if err := UnmarshalReceived(data, &stored); err != nil || !reflect.DeepEqual(&stored, rec) {
					t.Fatalf("UnmarshalReceived of a stored v1 receipt: %+v, %v", stored, err)
				}
			}
		})
	}
}

// TestGoldenPayloadsFillEveryField keeps goldenPayloads honest: a field left
// at its zero value (and so, if omitempty, absent from the golden file) would
// let a renamed or re-tagged field pass unnoticed.
func TestGoldenPayloadsFillEveryField(t *testing.T) {
	for _, p := range goldenPayloads() {
		v := reflect.ValueOf(p).Elem()
		for i := range v.NumField() {
			f := v.Type().Field(i)
			// MessageReceived's channel sections have golden files of their
			// own (golden_egvp_test.go, golden_portal_test.go).
			if p.EventType() == "MessageReceived" && (f.Name == "EGVP" || f.Name == "Portal") {
				continue
			}
			if f.IsExported() && v.Field(i).IsZero() {
				t.Errorf("%s.%s is zero in goldenPayloads", p.EventType(), f.Name)
			}
		}
	}
}
