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
