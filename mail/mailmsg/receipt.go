package mailmsg

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// Metadata keys an e-mail receipt records besides the event's own fields.
const (
	// MetadataDate is the message's Date header as written.
	MetadataDate = "date"
	// MetadataReplyTo is the Reply-To header; the e-mail reply address
	// policy prefers it to From.
	MetadataReplyTo = "replyTo"
)

// Arrival is what a channel knows about a message's arrival that the
// message's bytes do not say.
type Arrival struct {
	Channel gateway.Channel
	// Raw refers to the bytes as received.
	Raw blob.Ref
	// At is the Eingangszeitpunkt.
	At time.Time
	// EnvelopeFrom is the transport's sender (SMTP MAIL FROM), used when
	// the message has no readable From.
	EnvelopeFrom string
	// Transport is the channel's evidence; Received and Untrusted are
	// filled in from the message.
	Transport gateway.TransportEvidence
	// Problems are the channel's own findings, added to the walk's.
	Problems []string
}

// Receipt builds the MessageReceived of an e-mail message walked by Walk or
// WalkReader: the one builder every e-mail channel (SMTP, IMAP, and the
// `route test` simulation) records with, so that they fill the fields alike.
func (m *Message) Receipt(a Arrival) *gateway.MessageReceived {
	from := m.From
	if from.Address == "" && a.EnvelopeFrom != "" {
		from = gateway.Address{Address: a.EnvelopeFrom}
	}
	t := a.Transport
	t.Received, t.Untrusted = m.Received, m.Untrusted
	rec := &gateway.MessageReceived{
		Channel:         a.Channel,
		SenderMessageID: m.MessageID,
		From:            from,
		To:              m.To,
		Cc:              m.Cc,
		Subject:         m.Subject,
		ReceivedAt:      a.At,
		Raw:             a.Raw,
		Parts:           m.Parts,
		Transport:       t,
	}
	if len(m.Problems)+len(a.Problems) > 0 {
		rec.Problems = append(append([]string(nil), m.Problems...), a.Problems...)
	}
	meta := map[string]string{}
	if m.Date != "" {
		meta[MetadataDate] = m.Date
	}
	if m.ReplyTo != "" {
		meta[MetadataReplyTo] = m.ReplyTo
	}
	if len(meta) > 0 {
		rec.Metadata = meta
	}
	return rec
}
