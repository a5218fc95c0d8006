package egvp

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/poststelle/poststelle/internal/corpus"
)

// FuzzCards: the Visitenkarte, nachricht.xml and additional_infos a sender writes are
// read or refused without panic.
func FuzzCards(f *testing.F) {
	for _, s := range sampleCases {
		for _, name := range []string{FileCard, FileDescription} {
			if data, err := os.ReadFile(filepath.Join(corpus.Dir(f), "egvp", "Messages", s.name, "additionals", name)); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("#c\nuser_id=DE.Justiz.x\nsubject=a\\u00E4\\:b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, _, err := parseBusinessCard(data); err == nil && c == nil {
			t.Fatal("no card and no error")
		}
		if d, _, err := parseDescription(data); err == nil && d == nil {
			t.Fatal("no description and no error")
		}
		if m, err := parseInfo(data); err == nil && len(m) > maxInfoEntries {
			t.Fatalf("%d entries", len(m))
		}
	})
}

// FuzzReadFiles: the kept files of a message, whatever they hold, are read into a
// Message or refused without panic, and what was built reads back.
func FuzzReadFiles(f *testing.F) {
	f.Add(BuildBusinessCard(BusinessCard{SafeID: "DE.Justiz.x", Role: "egvp_bebpo"}), BuildDescription(Description{Subject: "s", SenderFileNumber: "1 K 1/26"}), []byte(request))
	f.Add([]byte("<Visitenkarte/>"), []byte("<Nachricht><Freitext>x</Freitext></Nachricht>"), []byte("<x/>"))
	f.Fuzz(func(t *testing.T, card, desc, xj []byte) {
		m, err := ReadFiles([]File{{Name: FileCard, Inline: true, Data: card}, {Name: FileDescription, Inline: true, Data: desc}, {Name: FileXJustiz, Data: xj}}, Limits{})
		if err != nil {
			t.Fatalf("three EGVP files refused: %v", err)
		}
		if m.Origin.Level != LevelNone {
			t.Fatalf("origin %s from kept files", m.Origin.Level)
		}
	})
}

// FuzzReadExport reads an export whose oscicontentdata.osci is arbitrary: an error or a
// message, never a panic.
func FuzzReadExport(f *testing.F) {
	f.Add([]byte("MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=b; type=text/xml\r\n\r\n--b\r\nContent-ID: <osci@message>\r\nContent-Type: text/xml\r\n\r\n<a/>\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, osciMessage []byte) {
		fsys := fstest.MapFS{
			ExportMessage:    {Data: osciMessage},
			ExportInspection: {Data: []byte("<r><DocumentList><Document><Other><OSCIMessageInfo><ProofOfOrigin>VHN_beBPo_valid</ProofOfOrigin></OSCIMessageInfo></Other></Document></DocumentList></r>")},
			"attachments/a":  {Data: []byte("a")},
		}
		_, _ = ReadExport(context.Background(), fsys, Config{}, Limits{})
	})
}
