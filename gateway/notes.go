package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// NoteAdded records a remark a person made about a message in the web UI
// (office/webui): the mailroom explaining a triage decision, an office
// noting what it did. It changes nothing about the message; it is kept so
// that the message's history says who knew what, and when.
type NoteAdded struct {
	// By is the user who wrote the note, Role the role they had then.
	By   string `json:"by"`
	Role string `json:"role"`
	// Office is the office the note was written for, empty for the mailroom.
	Office string `json:"office,omitempty"`
	Text   string `json:"text"`
}

func (NoteAdded) EventType() string  { return "NoteAdded" }
func (NoteAdded) SchemaVersion() int { return 1 }

// BlobRefs is empty: a note's text is in the event.
func (*NoteAdded) BlobRefs() []blob.Ref { return nil }
