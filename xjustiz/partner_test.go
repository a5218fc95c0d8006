package xjustiz

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParsePartnerLayout: the 3.6/3.7 Nachrichtenkopf fills the same Header fields
// as 3.5's, the document's eEB request is read, and the message is checked against
// the 3.6.2 tables without problems.
func TestParsePartnerLayout(t *testing.T) {
	m, err := Parse(request36(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 {
		t.Fatalf("problems %q", m.Problems)
	}
	h := m.Header
	want := Header{
		SenderFileNumber: "3 K 12/26", RecipientFileNumber: "AZ-2026/17",
		Created: "2026-12-01T09:10:11.123+01:00", CreatedTime: time.Date(2026, 12, 1, 9, 10, 11, 123e6, time.FixedZone("", 3600)),
		Sender:       Party{Kind: "gericht", Code: "R1101", ListVersion: "3.6"},
		Recipient:    Party{Kind: "sonstige", Name: "Stadt Musterstadt"},
		OwnMessageID: "0b9c0a7e-7a43-4b8e-9d51-7b9b0c0d2f11",
	}
	if !h.CreatedTime.Equal(want.CreatedTime) {
		t.Errorf("created %v", h.CreatedTime)
	}
	h.CreatedTime, want.CreatedTime = time.Time{}, time.Time{}
	if h != want {
		t.Errorf("header\n got %+v\nwant %+v", h, want)
	}
	if m.Version != "3.6.2" || m.SchemaChecked != "3.6.2" || m.Generation != Generation3 || m.Layout != LayoutPartner {
		t.Errorf("version %s checked %q generation %d layout %d", m.Version, m.SchemaChecked, m.Generation, m.Layout)
	}
	if !m.EEBRequested() || m.Documents[0].FileNames[0] != "urteil.pdf" {
		t.Errorf("documents %+v", m.Documents)
	}
}

// The 3.6/3.7 fields that differ from 3.5's: a new or unknown recipient
// Aktenzeichen, the foreign id under empfaenger, a 3.7.0 declaration (no tables:
// read, not checked), and the 3.5 elements in a 3.6 header.
func TestParsePartnerVariants(t *testing.T) {
	base := string(request36(t))
	swap := func(old, new string) []byte { return []byte(strings.Replace(base, old, new, 1)) }
	t.Run("Aktenzeichen unknown, foreign id", func(t *testing.T) {
		m, err := Parse(swap(`<tns:auswahl_aktenzeichen><tns:aktenzeichen.freitext>AZ-2026/17</tns:aktenzeichen.freitext></tns:auswahl_aktenzeichen>`,
			`<tns:auswahl_aktenzeichen><tns:aktenzeichen.unbekannt>true</tns:aktenzeichen.unbekannt></tns:auswahl_aktenzeichen><tns:fremdeNachrichtenID>6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3</tns:fremdeNachrichtenID>`), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Problems) != 0 || m.Header.RecipientFileNumber != "" || m.Header.ForeignMessageID != "6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3" {
			t.Errorf("problems %q header %+v", m.Problems, m.Header)
		}
	})
	t.Run("declared 3.7.0", func(t *testing.T) {
		m, err := Parse(swap(`xjustizVersion="3.6.2"`, `xjustizVersion="3.7.0"`), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Problems) != 0 || m.SchemaChecked != "" || m.Header.Sender.Code != "R1101" || m.Header.OwnMessageID == "" {
			t.Errorf("problems %q checked %q header %+v", m.Problems, m.SchemaChecked, m.Header)
		}
	})
	t.Run("layouts mixed", func(t *testing.T) {
		m, err := Parse(swap("<tns:absender>", "<tns:aktenzeichen.absender>1</tns:aktenzeichen.absender><tns:absender>"), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(m.Problems, "\n"), "mixes the 3.5 and the 3.6/3.7 layout") {
			t.Errorf("problems %q", m.Problems)
		}
	})
	t.Run("no absender", func(t *testing.T) {
		i, j := strings.Index(base, "<tns:absender>"), strings.Index(base, "</tns:absender>")+len("</tns:absender>")
		m, err := Parse([]byte(base[:i]+base[j:]), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(m.Problems, "\n")
		if !strings.Contains(joined, "no absender") || !strings.Contains(joined, "no eigene Nachrichten-ID") {
			t.Errorf("problems %q", m.Problems)
		}
	})
}

// The answers to a 3.6/3.7 request are written in its layout, read back into the
// request's swapped header, and are valid by xmllint against the 3.6.2 and the 3.7.0
// schemas; the bytes are the golden files'.
func TestAnswerPartnerLayout(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is not installed: run test/setup.sh")
	}
	req, err := Parse(request36(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	const own = "6f2b1c3d-0a4e-4b5f-8c6d-7e8f9a0b1c2d"
	ack := AnswerTo(req, own, created)
	ack.Received = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	refused := AnswerTo(req, own, created)
	refused.Refusal = &Refusal{Code: RefusalUnclear, Reason: "Anlage 2 fehlt"}
	reply := ReplyTo(req, own, created)
	reply.Documents = []ReplyDocument{{ID: NewDocumentID(own, 1), FileName: "antwort.txt"}}
	for _, tc := range []struct {
		name  string
		build func() ([]byte, error)
	}{
		{"eeb-acknowledged-3.6.2.xml", func() ([]byte, error) { return BuildReceipt(ack) }},
		{"eeb-refused-3.6.2.xml", func() ([]byte, error) { return BuildReceipt(refused) }},
		{"reply-to-3.6.2.xml", func() ([]byte, error) { return BuildReply(reply) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.build()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, out)
			got, err := Parse(out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Problems) != 0 || got.Layout != LayoutPartner || got.SchemaChecked != VersionPartner {
				t.Fatalf("problems %q layout %d checked %q", got.Problems, got.Layout, got.SchemaChecked)
			}
			h, oh := got.Header, req.Header
			if h.SenderFileNumber != oh.RecipientFileNumber || h.RecipientFileNumber != oh.SenderFileNumber ||
				h.ForeignMessageID != oh.OwnMessageID || h.OwnMessageID != own || h.Sender != oh.Recipient || h.Recipient != oh.Sender {
				t.Errorf("header %+v\nof request %+v", h, oh)
			}
			file := filepath.Join(t.TempDir(), tc.name)
			if err := os.WriteFile(file, out, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, version := range []string{"3.6.2", "3.7.0"} {
				if out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", oracleSchema(t, version, out), file).CombinedOutput(); err != nil {
					t.Errorf("xmllint %s refuses: %v\n%s", version, err, out)
				}
			}
		})
	}
	if got := AnswerTo(req, own, created); got.Layout != LayoutPartner || got.Generation != Generation3 {
		t.Errorf("AnswerTo layout %d generation %d", got.Layout, got.Generation)
	}
	bad := ack
	bad.Generation = Generation2
	if _, err := BuildReceipt(bad); err == nil {
		t.Error("a 2.x answer in the 3.6 layout was written")
	}
}
