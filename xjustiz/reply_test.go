package xjustiz

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
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
		t.Errorf("%s changed:\n%s", name, got)
	}
}

var created = time.Date(2026, 12, 2, 10, 15, 0, 0, time.UTC)

// An answer to the 3.x request and to the real 2.4.0 sample: the Nachrichtenkopf
// references the original (Aktenzeichen swapped, fremdeNachrichtenID its id), the
// documents are listed by file name, and what is written reads back with the parser
// without problems; the bytes are the golden files'.
func TestBuildReply(t *testing.T) {
	sample, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", "Testnachricht_1", "attachments", "xjustiz_nachricht.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, golden string
		orig         []byte
	}{
		{"3.x request", "reply-to-3.xml", []byte(request3)},
		{"2.4.0 sample", "reply-to-2.xml", sample},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := Parse(tc.orig, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			const own = "6f2b1c3d-0a4e-4b5f-8c6d-7e8f9a0b1c2d"
			r := ReplyTo(orig, own, created)
			r.Documents = []ReplyDocument{{ID: NewDocumentID(own, 1), FileName: "antwort.txt"}, {ID: NewDocumentID(own, 2), FileName: "Bescheid & Anlage.pdf"}}
			out, err := BuildReply(r)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, out)
			got, err := Parse(out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Problems) != 0 {
				t.Fatalf("problems %q in\n%s", got.Problems, out)
			}
			h, oh := got.Header, orig.Header
			if got.Type != TypeDocuments || got.Generation != Generation3 || got.Version != "3.5.1" {
				t.Errorf("type %s generation %d version %s", got.Type, got.Generation, got.Version)
			}
			if h.SenderFileNumber != oh.RecipientFileNumber || h.RecipientFileNumber != oh.SenderFileNumber ||
				h.ForeignMessageID != oh.OwnMessageID || h.OwnMessageID != own || h.Sender != oh.Recipient ||
				h.Recipient != oh.Sender || !h.CreatedTime.Equal(created) {
				t.Errorf("header %+v\nof original %+v", h, oh)
			}
			if len(got.Documents) != 2 || got.Documents[1].FileNames[0] != "Bescheid & Anlage.pdf" || got.Documents[0].ID != r.Documents[0].ID || got.EEBRequested() {
				t.Errorf("documents %+v", got.Documents)
			}
		})
	}
}

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestUUIDFromBytes(t *testing.T) {
	b := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	if got := UUIDFromBytes(b, false); got != "deadbeef-0001-0203-0405-060708090a0b" {
		t.Errorf("unversioned %s", got)
	}
	v := UUIDFromBytes(b, true)
	if !uuidForm.MatchString(v) || v[14] != '8' || !strings.ContainsRune("89ab", rune(v[19])) {
		t.Errorf("versioned %s", v)
	}
	first, again := NewDocumentID("a", 1), NewDocumentID("a", 1)
	if first == NewDocumentID("a", 2) || first == NewDocumentID("b", 1) || first != again || !uuidForm.MatchString(first) {
		t.Error("document ids are not distinct and stable UUIDs")
	}
}

func TestBuildReplyRefuses(t *testing.T) {
	orig, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*Reply)
	}{
		{"no id", func(r *Reply) { r.OwnMessageID = "" }},
		{"no time", func(r *Reply) { r.Created = time.Time{} }},
		{"element injection", func(r *Reply) { r.Recipient.Kind = "x><evil" }},
		{"no documents", func(r *Reply) { r.Documents = nil }},
		{"nameless document", func(r *Reply) { r.Documents[0].FileName = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ReplyTo(orig, "x", created)
			r.Documents = []ReplyDocument{{ID: "d", FileName: "f"}}
			tc.modify(&r)
			if _, err := BuildReply(r); !errors.Is(err, ErrAnswer) {
				t.Errorf("err %v, want ErrAnswer", err)
			}
		})
	}
}

// The eEB writer's output, pinned for both generations.
func TestBuildReceiptGolden(t *testing.T) {
	req, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		gen  Generation
		ref  *Refusal
	}{{"eeb-acknowledged-3.xml", Generation3, nil}, {"eeb-acknowledged-2.xml", Generation2, nil}, {"eeb-refused-3.xml", Generation3, &Refusal{Code: RefusalUnclear, Reason: "Anlage 2 fehlt"}}} {
		t.Run(tc.name, func(t *testing.T) {
			a := AnswerTo(req, "0b8e4f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", created)
			a.Generation, a.Refusal = tc.gen, tc.ref
			if tc.ref == nil {
				a.Received = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			}
			out, err := BuildReceipt(a)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, out)
		})
	}
}
