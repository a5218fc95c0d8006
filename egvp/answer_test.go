package egvp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/poststelle/poststelle/xjustiz"
)

// The eEB round trip without the channel: a court's request (the Justiz sample with an
// XJustiz request in place of its message) is answered, and the answer's files read back
// with the fields the TestnachrichtEeb_1 sample's report shows for such an answer.
func TestBuildReceiptAnswer(t *testing.T) {
	d := withXJustiz(sampleDelivery(t, "Testnachricht_1"), request)
	req, err := Read(context.Background(), d, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	own := BusinessCard{Organisation: "Obere Landesbehörde", Name: "Präsident & Co", SafeID: "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650", Role: "egvp_bebpo"}
	received := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		refusal *xjustiz.Refusal
	}{{"acknowledged", nil}, {"refused", &xjustiz.Refusal{Code: xjustiz.RefusalUnclear, Reason: "Anlage fehlt"}}} {
		t.Run(tc.name, func(t *testing.T) {
			a := ReceiptAnswer{Own: own, OwnMessageID: "3c9d2e1f-4a5b-4c6d-9e7f-8a9b0c1d2e3f", Created: time.Date(2026, 2, 4, 8, 0, 0, 0, time.UTC), Refusal: tc.refusal}
			if tc.refusal == nil {
				a.Received = received
			}
			files, err := BuildReceiptAnswer(req, a)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 3 || files[0].Name != FileDescription || files[1].Name != FileCard || files[2].Name != FileXJustiz || files[2].Inline {
				t.Fatalf("files %v", files)
			}
			desc, problems, err := parseDescription(files[0].Data)
			if err != nil || len(problems) > 0 {
				t.Fatal(err, problems)
			}
			want := Description{Type: "Allgemeine Nachricht", SignatureLevel: "no", RecipientSafeID: req.SenderSafeID,
				Subject: "EB zu: 3 K 12/26", RecipientFileNumber: "3 K 12/26", SenderFileNumber: "1 K 519/20.KO"}
			if *desc != want {
				t.Errorf("nachricht.xml %+v, want %+v", *desc, want)
			}
			card, problems, err := parseBusinessCard(files[1].Data)
			if err != nil || len(problems) > 0 || *card != own {
				t.Errorf("visitenkarte.xml %+v %v %v", card, problems, err)
			}
			x, err := xjustiz.Parse(files[2].Data, xjustiz.Limits{})
			if err != nil || len(x.Problems) > 0 {
				t.Fatal(err, x.Problems)
			}
			if !x.IsReceipt() || x.Header.ForeignMessageID != "8d5b7e0a-1c2f-4a3b-9e4d-5f6a7b8c9d0e" || x.RecipientCode() != "R1101" ||
				(tc.refusal == nil) != x.Receipt.Received.Equal(received) || (tc.refusal != nil) != (x.Receipt.Refusal != nil) {
				t.Errorf("eEB %+v receipt %+v", x.Header, x.Receipt)
			}
		})
	}
}

func TestBuildReceiptAnswerRefuses(t *testing.T) {
	plain, err := Read(context.Background(), sampleDelivery(t, "Testnachricht_1"), Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildReceiptAnswer(plain, ReceiptAnswer{}); !errors.Is(err, ErrNoRequest) {
		t.Errorf("err %v, want ErrNoRequest", err)
	}
	req, err := Read(context.Background(), withXJustiz(sampleDelivery(t, "Testnachricht_1"), request), Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildReceiptAnswer(req, ReceiptAnswer{OwnMessageID: "x", Created: time.Now()}); !errors.Is(err, xjustiz.ErrAnswer) {
		t.Errorf("err %v, want xjustiz.ErrAnswer (neither date nor refusal)", err)
	}
}

// The sample's eEB answer is recognised, and one for a request this mailbox did not send
// is flagged.
func TestReceiptRequestKnown(t *testing.T) {
	m, err := Read(context.Background(), sampleDelivery(t, "TestnachrichtEeb_1"), Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Receipt == nil || m.AnswersXJustizID != "e238a754-f63d-4196-98e6-89c50f015b2e" || m.Receipt.Received.Format(time.DateOnly) != "2021-10-29" {
		t.Fatalf("receipt %+v answers %q", m.Receipt, m.AnswersXJustizID)
	}
	m.CheckReceiptRequest(func(id string) bool { return id == "e238a754-f63d-4196-98e6-89c50f015b2e" })
	if len(m.Problems) != 0 {
		t.Errorf("problems %q", m.Problems)
	}
	m.CheckReceiptRequest(func(string) bool { return false })
	if len(m.Problems) != 1 {
		t.Errorf("problems %q, want the unknown request", m.Problems)
	}
}

// An ordinary answer's files read back through ReadFiles as the court would read
// them: addressed to the court's SAFE-ID, both Aktenzeichen swapped, the XJustiz
// header naming the request, the documents listed.
func TestBuildAnswerReadsBack(t *testing.T) {
	d := withXJustiz(sampleDelivery(t, "Testnachricht_1"), request)
	orig, err := Read(context.Background(), d, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	own := BusinessCard{Organisation: "Obere Landesbehörde", SafeID: "DE.Justiz.a19afb3b-f92b-436e-aaff-e8de56a6d507.7650", Role: "egvp_bebpo"}
	files, err := BuildAnswer(orig, Answer{Own: own, Subject: "Stellungnahme", Files: []string{"antwort.txt", "anlage-1.pdf"},
		OwnMessageID: "0b8e4f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", Created: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFiles(files, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Problems) != 0 {
		t.Fatalf("problems %q", got.Problems)
	}
	if got.SenderSafeID != own.SafeID || got.RecipientSafeID != orig.SenderSafeID || got.Subject != "Stellungnahme" ||
		got.SenderFileNumber != orig.RecipientFileNumber || got.RecipientFileNumber != orig.SenderFileNumber ||
		got.MessageType != xjustiz.TypeDocuments || got.XJustiz.Header.ForeignMessageID != orig.XJustiz.Header.OwnMessageID {
		t.Errorf("answer read back as %+v", got)
	}
	if docs := got.XJustiz.Documents; len(docs) != 2 || docs[0].FileNames[0] != "antwort.txt" {
		t.Errorf("documents %+v", docs)
	}
	if _, err := BuildAnswer(&Message{}, Answer{Own: own}); err == nil {
		t.Error("an answer to a message without sender SAFE-ID was built")
	}
}

// ReadFiles of a request's files finds what Read found in the delivery: the eEB
// request, both Aktenzeichen, the sender's SAFE-ID.
func TestReadFilesAsRead(t *testing.T) {
	d := withXJustiz(sampleDelivery(t, "Testnachricht_1"), request)
	orig, err := Read(context.Background(), d, Config{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var files []File
	for _, c := range d.Envelope.ContentPackage.Containers {
		for _, ct := range c.Contents {
			if ct.Base64ID != "" {
				files = append(files, File{Name: ct.Base64ID, Inline: true, Data: ct.Base64})
			} else if id := ct.AttachmentID(); id == FileXJustiz {
				files = append(files, File{Name: id, Data: []byte(request)})
			}
		}
	}
	got, err := ReadFiles(files, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.SenderSafeID != orig.SenderSafeID || got.SenderFileNumber != orig.SenderFileNumber || got.RecipientFileNumber != orig.RecipientFileNumber ||
		!got.EEB.Requested || got.EEB.ForeignMessageID != orig.EEB.ForeignMessageID || got.Origin.Level != LevelNone {
		t.Errorf("read %+v\nwant %+v", got, orig)
	}
	if _, err := ReadFiles([]File{{Name: "a.pdf", Data: []byte("x")}}, Limits{}); !errors.Is(err, ErrNotEGVP) {
		t.Errorf("files without EGVP structure: %v", err)
	}
	big := make([]byte, 100)
	if m, err := ReadFiles([]File{{Name: FileCard, Inline: true, Data: BuildBusinessCard(BusinessCard{SafeID: "x"})}, {Name: FileXJustiz, Data: big}}, Limits{MaxXJustizBytes: 10}); err != nil || m.XJustiz != nil || len(m.Problems) == 0 {
		t.Errorf("oversized XJustiz: %v %+v", err, m)
	}
}
