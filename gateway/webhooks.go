package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Webhook deliveries: a routed message is pushed to each webhook of each of
// its offices, and every attempt is recorded in the message's stream. A
// delivery is identified by DeliveryID, the same on every attempt, which
// the receiver sees in the Poststelle-Delivery header and deduplicates on.

// WebhookAttempted records a failed attempt to push a message to a webhook
// that will be retried at Next.
type WebhookAttempted struct {
	DeliveryID string `json:"deliveryId"`
	Office     string `json:"office"`
	URL        string `json:"url"`
	Attempt    int    `json:"attempt"`
	// Status is the HTTP status the receiver answered, 0 when it gave none
	// (refused connection, timeout).
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error"`
	Next   time.Time `json:"next"`
}

// WebhookDelivered records that a webhook accepted a message (a 2xx answer):
// the office's case system has it.
type WebhookDelivered struct {
	DeliveryID string `json:"deliveryId"`
	Office     string `json:"office"`
	URL        string `json:"url"`
	Attempt    int    `json:"attempt"`
	Status     int    `json:"status"`
}

// WebhookFailed records that a delivery failed for good (attempts spent, or
// a failure retrying cannot fix); the message goes to triage, while it stays
// readable in the office's queue.
type WebhookFailed struct {
	DeliveryID string `json:"deliveryId"`
	Office     string `json:"office"`
	URL        string `json:"url"`
	Attempt    int    `json:"attempt"`
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error"`
}

func (WebhookAttempted) EventType() string { return "WebhookAttempted" }
func (WebhookDelivered) EventType() string { return "WebhookDelivered" }
func (WebhookFailed) EventType() string    { return "WebhookFailed" }

func (WebhookAttempted) SchemaVersion() int { return 1 }
func (WebhookDelivered) SchemaVersion() int { return 1 }
func (WebhookFailed) SchemaVersion() int    { return 1 }

// Webhook events refer to no blobs: the body a receiver gets is rebuilt from
// the message's events.

func (*WebhookAttempted) BlobRefs() []blob.Ref { return nil }
func (*WebhookDelivered) BlobRefs() []blob.Ref { return nil }
func (*WebhookFailed) BlobRefs() []blob.Ref    { return nil }
