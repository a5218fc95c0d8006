package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// upgrader is implemented by payloads whose older schema versions the
// gateway still reads: upgrade decodes data of the given older version into
// the current shape, or returns an error wrapping ErrUnknownVersion for a
// version it does not know. The log is never rewritten; old events are
// translated each time they are read.
type upgrader interface {
	upgrade(version int, data []byte) error
}

func decodeJSON(data []byte, v any) error {
	return json.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// receivedV1 is the part of MessageReceived version 1 that version 2
// re-interpreted.
type receivedV1 struct {
	ChannelMessageID string `json:"channelMessageId"`
}

// metadataMessageIDV1 is the Metadata key under which version 1 IMAP
// receipts kept the Message-ID, since channelMessageId held coordinates.
const metadataMessageIDV1 = "messageId"

// upgrade reads MessageReceived version 1: channelMessageId was the
// Message-ID on every channel but IMAP, where it was "box/uidvalidity/uid"
// and the Message-ID was in Metadata["messageId"].
func (m *MessageReceived) upgrade(version int, data []byte) error {
	if version != 1 {
		return fmt.Errorf("%w: MessageReceived version %d", ErrUnknownVersion, version)
	}
	if err := decodeJSON(data, m); err != nil {
		return err
	}
	var old receivedV1
	if err := decodeJSON(data, &old); err != nil {
		return err
	}
	if m.Channel != ChannelIMAP {
		m.SenderMessageID = old.ChannelMessageID
		return nil
	}
	m.Transport.Coordinates = old.ChannelMessageID
	if id, ok := m.Metadata[metadataMessageIDV1]; ok {
		m.SenderMessageID = id
		delete(m.Metadata, metadataMessageIDV1)
		if len(m.Metadata) == 0 {
			m.Metadata = nil
		}
	}
	return nil
}

// upgrade reads ReplyRequested version 1, whose inReplyTo was the original's
// channelMessageId: for an answer to an IMAP message that was mailbox
// coordinates, which are cleared here, since they are no message id (the
// outbound side takes the id from the original's SenderMessageID instead).
func (r *ReplyRequested) upgrade(version int, data []byte) error {
	if version != 1 {
		return fmt.Errorf("%w: ReplyRequested version %d", ErrUnknownVersion, version)
	}
	if err := decodeJSON(data, r); err != nil {
		return err
	}
	if id := strings.TrimSpace(r.InReplyTo); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
		r.InReplyTo = ""
	}
	return nil
}

// UnmarshalReceived decodes a MessageReceived that a read model stored as
// JSON, which may predate schema version 2: a stored object with a
// channelMessageId key is version 1 (version 2 never writes that key) and is
// upgraded like an event. Read models use it so that a state database
// written before the upgrade reads correctly without a rebuild.
func UnmarshalReceived(data []byte, m *MessageReceived) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	if _, v1 := keys["channelMessageId"]; v1 {
		return m.upgrade(1, data)
	}
	return json.Unmarshal(data, m)
}
