package offices

import (
	"context"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
)

// TriageQueueHandler prefixes the names of the handlers TriageQueue
// returns, one per event type that opens a triage item.
const TriageQueueHandler = "offices/triage-queue"

// TriageQueue is the pipeline handlers that give each triage item its
// place in the triage queue: a TriageQueued in gateway.TriageStream for
// every event that opens (or reopens) an item, the same events the inbox
// opens items for. Its id derives from the cause, so every gateway of a
// group records each place once; on an installation that had no triage
// stream, the handlers start at the beginning of the log and give the
// items already open their places too.
func TriageQueue() []pipeline.Handler {
	opens := map[string]func(gateway.Payload) (string, bool){
		"RoutingFailed":    func(gateway.Payload) (string, bool) { return "routing", true },
		"ProcessingFailed": func(gateway.Payload) (string, bool) { return "processing", true },
		"WebhookFailed":    func(gateway.Payload) (string, bool) { return "webhook", true },
		"ReplyFailed": func(p gateway.Payload) (string, bool) {
			m, ok := p.(*gateway.ReplyFailed)
			if ok && m.Uncertain {
				return TriageReplyUncertain, true
			}
			return "reply", ok && m.Permanent
		},
		"EEBOverdue": func(gateway.Payload) (string, bool) { return TriageEEBOverdue, true },
		"DeliveryEvidenceRecorded": func(p gateway.Payload) (string, bool) {
			m, ok := p.(*gateway.DeliveryEvidenceRecorded)
			if ok && answerExpired(m) {
				return "reply", true
			}
			return "evidence", ok && m.Unlinked != ""
		},
	}
	var hs []pipeline.Handler
	for _, topic := range []string{"RoutingFailed", "ProcessingFailed", "WebhookFailed", "ReplyFailed", "DeliveryEvidenceRecorded", "EEBOverdue"} {
		kind := opens[topic]
		hs = append(hs, pipeline.Handler{Name: TriageQueueHandler + "/" + topic, Topic: topic,
			Handle: func(_ context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
				k, ok := kind(p)
				if !ok {
					return nil, nil
				}
				return []gateway.Payload{&gateway.TriageQueued{Stream: cause.Stream, Cause: cause.ID, Kind: k}}, nil
			}})
	}
	return hs
}
