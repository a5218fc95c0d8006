package offices

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// QueueRecord is what a department reads from its office's queue topic on
// Kafka (docs/offices.md): one record per message, in queue order, each
// once. The contents stay behind the office API; the links name them
// relative to its base URL.
type QueueRecord struct {
	Office string `json:"office"`
	// Seq is the message's place in the office's queue: the seq of the
	// office API and the IMAP UID on every gateway.
	Seq      int64     `json:"seq"`
	Tenant   string    `json:"tenant"`
	Stream   string    `json:"stream"`
	QueuedAt time.Time `json:"queuedAt"`
	// RoutedBy is the id of the routing decision, Rule the rule that made it.
	RoutedBy string     `json:"routedBy"`
	Rule     string     `json:"rule,omitempty"`
	Links    QueueLinks `json:"links"`
}

// QueueLinks are office API paths of one message.
type QueueLinks struct {
	Message string `json:"message"`
	Raw     string `json:"raw"`
	Report  string `json:"report"`
	Ack     string `json:"ack"`
}

// QueueTopicPrefix is the stream prefix mirrored to queue topics.
const QueueTopicPrefix = "office/"

// QueueTopic names the Kafka topic of an office's queue: "<log topic>.office.<office>".
func QueueTopic(logTopic, stream string) string {
	return logTopic + ".office." + strings.TrimPrefix(stream, QueueTopicPrefix)
}

// EncodeQueueRecord renders a MessageQueued event as its queue record, keyed
// by the message's stream. Other events of the office's stream give nil.
func EncodeQueueRecord(reg *gateway.Registry, e *eventstore.Event) (key, value []byte, err error) {
	if e.Type != (gateway.MessageQueued{}).EventType() {
		return nil, nil, nil
	}
	p, err := reg.Decode(e)
	if err != nil {
		return nil, nil, fmt.Errorf("offices: queue record of %s: %w", e.ID, err)
	}
	m := p.(*gateway.MessageQueued)
	base := "/offices/" + url.PathEscape(m.Office) + "/messages/" + url.PathEscape(m.Stream)
	v, err := json.Marshal(QueueRecord{Office: m.Office, Seq: e.StreamSeq, Tenant: e.Tenant, Stream: m.Stream,
		QueuedAt: e.RecordedAt.UTC(), RoutedBy: m.RoutedBy, Rule: m.Rule,
		Links: QueueLinks{Message: base, Raw: base + "/raw", Report: base + "/report", Ack: base + "/ack"}})
	if err != nil {
		return nil, nil, err
	}
	return []byte(m.Stream), v, nil
}
