package xjustiz

import (
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

// The real TestnachrichtEeb_1 eEB, rebuilt from its own fields, reads back as the
// original does: same header, same receipt, no problems.
func TestBuildReceiptAsSample(t *testing.T) {
	data, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", "TestnachrichtEeb_1", "attachments", "xjustiz_nachricht.xml"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := Parse(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	h := orig.Header
	a := Answer{
		Generation:       Generation2,
		SenderFileNumber: h.SenderFileNumber, RecipientFileNumber: h.RecipientFileNumber,
		Created: h.CreatedTime, Sender: h.Sender, Recipient: h.Recipient,
		OwnMessageID: h.OwnMessageID, ForeignMessageID: h.ForeignMessageID,
		Received: orig.Receipt.Received,
	}
	out, err := BuildReceipt(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Problems) != 0 {
		t.Fatalf("problems %q in\n%s", got.Problems, out)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"root", got.Root, orig.Root}, {"version", got.Version, orig.Version}, {"schema", got.Schema, orig.Schema},
		{"generation", got.Generation, orig.Generation}, {"header", got.Header, orig.Header}, {"receipt", got.Receipt, orig.Receipt},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: %+v, want %+v", f.name, f.got, f.want)
		}
	}
}

// Answering a request: the parties and file numbers swap, the request's id is named,
// and what is built reads back with the same fields, in both generations.
func TestBuildReceiptRoundTrip(t *testing.T) {
	req, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 2, 4, 8, 30, 0, 0, time.FixedZone("", 3600))
	received := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		gen    Generation
		modify func(*Answer)
		want   Receipt
	}{
		{"acknowledged 3", Generation3, func(a *Answer) { a.Received = received }, Receipt{Received: received}},
		{"acknowledged 2", Generation2, func(a *Answer) { a.Received = received }, Receipt{Received: received}},
		{"refused", Generation3, func(a *Answer) { a.Refusal = &Refusal{Code: RefusalNotParty, Reason: "nicht beteiligt <&>"} }, Receipt{Refusal: &Refusal{Code: "1", Reason: "nicht beteiligt <&>"}}},
		{"representative", Generation3, func(a *Answer) { a.Received = received; a.DeviatingRecipient = true }, Receipt{Received: received, DeviatingRecipient: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := AnswerTo(req, "5f0e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b", created)
			a.Generation = tc.gen
			tc.modify(&a)
			out, err := BuildReceipt(a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Problems) != 0 {
				t.Fatalf("problems %q in\n%s", got.Problems, out)
			}
			h := got.Header
			if h.SenderFileNumber != "AZ-2026/17" || h.RecipientFileNumber != "3 K 12/26" ||
				h.OwnMessageID != "5f0e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b" || h.ForeignMessageID != req.Header.OwnMessageID ||
				h.Sender != req.Header.Recipient || h.Recipient != req.Header.Sender || !h.CreatedTime.Equal(created) {
				t.Errorf("header %+v", h)
			}
			if got.Generation != tc.gen || !got.IsReceipt() || got.RecipientCode() != "R1101" {
				t.Errorf("generation %d, type %s, recipient code %q", got.Generation, got.Type, got.RecipientCode())
			}
			if !reflect.DeepEqual(*got.Receipt, tc.want) {
				t.Errorf("receipt %+v, want %+v", got.Receipt, tc.want)
			}
		})
	}
}

func TestBuildReceiptRefuses(t *testing.T) {
	req, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	base := func() Answer {
		a := AnswerTo(req, "6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3", time.Now())
		a.Received = time.Now()
		return a
	}
	tests := []struct {
		name   string
		modify func(*Answer)
	}{
		{"no generation", func(a *Answer) { a.Generation = 7 }},
		{"no foreign id", func(a *Answer) { a.ForeignMessageID = "" }},
		{"no time", func(a *Answer) { a.Created = time.Time{} }},
		{"no sender kind", func(a *Answer) { a.Sender.Kind = "" }},
		{"element injection", func(a *Answer) { a.Recipient.Kind = "x><evil" }},
		{"both", func(a *Answer) { a.Refusal = &Refusal{Code: "1"} }},
		{"neither", func(a *Answer) { a.Received = time.Time{} }},
		{"unknown code", func(a *Answer) { a.Received = time.Time{}; a.Refusal = &Refusal{Code: "9"} }},
		{"refusal in 2", func(a *Answer) { a.Received = time.Time{}; a.Refusal = &Refusal{Code: "2"}; a.Generation = Generation2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := base()
			tc.modify(&a)
			if _, err := BuildReceipt(a); !errors.Is(err, ErrAnswer) {
				t.Errorf("err %v, want ErrAnswer", err)
			}
		})
	}
}

func TestParseReceiptFlags(t *testing.T) {
	req, _ := Parse([]byte(request3), Limits{})
	a := AnswerTo(req, "6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3", time.Now())
	a.Refusal = &Refusal{Code: "2"}
	out, err := BuildReceipt(a)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"no foreign id", "<tns:fremdeNachrichtenID>" + req.Header.OwnMessageID + "</tns:fremdeNachrichtenID>", "", "SCH-EEB-0001"},
		{"unknown code", "<code>2</code>", "<code>7</code>", "not in the Codeliste"},
		{"neither", "<tns:stoerungsmeldung>", "<tns:x>", "unknown element x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte(replaceOnce(string(out), tc.old, tc.new))
			if tc.name == "neither" {
				doc = []byte(replaceOnce(string(doc), "</tns:stoerungsmeldung>", "</tns:x>"))
			}
			m, err := Parse(doc, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !hasProblem(m, tc.want) {
				t.Errorf("problems %q, want %q", m.Problems, tc.want)
			}
		})
	}
}
