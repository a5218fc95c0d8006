package integrity

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// The vectors below were computed by testdata/vectors.py from the encoding
// in docs/wire-format.md alone; a change to EncodeLeaf that the document
// does not describe makes these tests fail, and so does a change to the
// document that the code does not follow once the script is rerun.

func vectorEvent() eventstore.Event {
	var prev [32]byte
	for i := range prev {
		prev[i] = byte(i)
	}
	return eventstore.Event{
		ID: "evt-1", Tenant: "default", Stream: "msg-abc", Type: "MessageReceived", Version: 1,
		MessageKey: "smtp:<a@example.org>", CorrelationID: "msg-abc", CausationID: "rcv-0",
		// Byte order puts "Zulu" before "alpha"; map order must not matter.
		Metadata:   map[string]string{"zeta": "z", "alpha": "ä", "Zulu": "1"},
		Data:       []byte(`{"x":1}`),
		Position:   eventstore.Position{Partition: 2, Offset: 7},
		StreamSeq:  3,
		RecordedAt: time.Date(2024, 5, 1, 12, 34, 56, 789012345, time.UTC),
		PrevHash:   prev,
	}
}

func TestLeafGoldenVectors(t *testing.T) {
	tests := []struct {
		name     string
		event    eventstore.Event
		encoding string
		leafHash string
	}{
		{
			name:  "every field",
			event: vectorEvent(),
			encoding: "706f73747374656c6c652d6576656e742d7631000000000200000000000000070001020304050607" +
				"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f17cb5d822ac0bf79000000056576742d" +
				"310000000764656661756c74000000076d73672d6162630000000f4d657373616765526563656976" +
				"656400000000000000030000000100000014736d74703a3c61406578616d706c652e6f72673e0000" +
				"00076d73672d616263000000057263762d3000000003000000045a756c75000000013100000005616c" +
				"70686100000002c3a4000000047a657461000000017a000000077b2278223a317d",
			leafHash: "cebc93e0bea70856d8b9f7e9759dc15724fe7ce9baa6d584d1163457330c2756",
		},
		{
			name:  "zero fields",
			event: eventstore.Event{RecordedAt: time.Unix(0, 0)},
			// The magic, then 100 zero bytes: partition 4, offset 8, PrevHash 32,
			// time 8, four empty strings 16, StreamSeq 8, Version 4, three
			// empty strings 12, metadata count 4, empty Data 4.
			encoding: "706f73747374656c6c652d6576656e742d763100" + strings.Repeat("00", 100),
			leafHash: "a73b776061a5d80e604e12fcc3f67a12907973c719fab5a7a79043201cd1be1b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(EncodeLeaf(&tt.event)); got != tt.encoding {
				t.Errorf("EncodeLeaf =\n%s\nwant\n%s", got, tt.encoding)
			}
			if h := LeafHash(&tt.event); hex.EncodeToString(h[:]) != tt.leafHash {
				t.Errorf("LeafHash = %x, want %s", h, tt.leafHash)
			}
		})
	}
}

// TestLeafCoversEveryField changes one field at a time: each change must
// change the leaf hash, or an edit of that field would go unnoticed.
func TestLeafCoversEveryField(t *testing.T) {
	base := vectorEvent()
	want := LeafHash(&base)
	edits := map[string]func(e *eventstore.Event){
		"ID":            func(e *eventstore.Event) { e.ID += "x" },
		"Tenant":        func(e *eventstore.Event) { e.Tenant += "x" },
		"Stream":        func(e *eventstore.Event) { e.Stream += "x" },
		"Type":          func(e *eventstore.Event) { e.Type += "x" },
		"Version":       func(e *eventstore.Event) { e.Version++ },
		"MessageKey":    func(e *eventstore.Event) { e.MessageKey += "x" },
		"CorrelationID": func(e *eventstore.Event) { e.CorrelationID += "x" },
		"CausationID":   func(e *eventstore.Event) { e.CausationID += "x" },
		"metadata value": func(e *eventstore.Event) {
			e.Metadata = map[string]string{"zeta": "y", "alpha": "ä", "Zulu": "1"}
		},
		"metadata key moved into value": func(e *eventstore.Event) {
			// Length prefixes keep ("ab","c") apart from ("a","bc").
			e.Metadata = map[string]string{"zet": "az", "alpha": "ä", "Zulu": "1"}
		},
		"metadata entry dropped": func(e *eventstore.Event) { e.Metadata = map[string]string{"zeta": "z", "alpha": "ä"} },
		"Data":                   func(e *eventstore.Event) { e.Data = []byte(`{"x":2}`) },
		"Partition":              func(e *eventstore.Event) { e.Position.Partition++ },
		"Offset":                 func(e *eventstore.Event) { e.Position.Offset++ },
		"StreamSeq":              func(e *eventstore.Event) { e.StreamSeq++ },
		"RecordedAt":             func(e *eventstore.Event) { e.RecordedAt = e.RecordedAt.Add(time.Nanosecond) },
		"PrevHash":               func(e *eventstore.Event) { e.PrevHash[31] ^= 1 },
		"ID and Tenant boundary": func(e *eventstore.Event) { e.ID, e.Tenant = "evt-1d", "efault" },
	}
	for name, edit := range edits {
		e := vectorEvent()
		edit(&e)
		if LeafHash(&e) == want {
			t.Errorf("changing %s leaves the leaf hash unchanged", name)
		}
	}
}
