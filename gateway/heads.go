package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// HeadPublished records that the log's signed tree head was handed to
// witnesses outside the gateway (eventstore/witness). The event itself comes
// after the head it describes, so the next head covers it.
type HeadPublished struct {
	Heads []PublishedHead `json:"heads"`
	// NoteSHA256 is the lowercase hex SHA-256 of the head file as published.
	NoteSHA256 string `json:"noteSha256"`
	// Witnesses accepted the head; Failed did not (retried at the next tick).
	Witnesses []string `json:"witnesses"`
	Failed    []string `json:"failed,omitempty"`
	// TSA, TokenSHA256 and GenTime describe the timestamp, when there is one.
	TSA         string    `json:"tsa,omitempty"`
	TokenSHA256 string    `json:"tokenSha256,omitempty"`
	GenTime     time.Time `json:"genTime,omitzero"`
}

// PublishedHead is one partition's head.
type PublishedHead struct {
	Partition int32 `json:"partition"`
	Size      int64 `json:"size"`
	// Root is the base64 tree head, as in the note.
	Root string `json:"root"`
}

func (HeadPublished) EventType() string  { return "HeadPublished" }
func (HeadPublished) SchemaVersion() int { return 1 }

// HeadsStream is the stream of the log's own HeadPublished events.
const HeadsStream = "log-heads"

// BlobRefs is empty: the head file and its timestamp live with the witnesses,
// and the event records their digests.
func (HeadPublished) BlobRefs() []blob.Ref { return nil }
