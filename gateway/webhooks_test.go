package gateway

import (
	"reflect"
	"testing"
	"time"
)

// TestWebhookEventEncoding pins the JSON of the webhook events: a renamed
// field would change what auditors and other readers of the log see.
func TestWebhookEventEncoding(t *testing.T) {
	next := time.Date(2026, 3, 1, 9, 1, 0, 0, time.UTC)
	tests := []struct {
		p    Payload
		want string
	}{
		{&WebhookAttempted{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 1, Status: 503, Error: "answered 503 Service Unavailable", Next: next},
			`{"deliveryId":"dlv-1","office":"bauamt","url":"https://dms.example/hook","attempt":1,"status":503,"error":"answered 503 Service Unavailable","next":"2026-03-01T09:01:00Z"}`},
		{&WebhookAttempted{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 2, Error: "connection refused", Next: next},
			`{"deliveryId":"dlv-1","office":"bauamt","url":"https://dms.example/hook","attempt":2,"error":"connection refused","next":"2026-03-01T09:01:00Z"}`},
		{&WebhookDelivered{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 3, Status: 204},
			`{"deliveryId":"dlv-1","office":"bauamt","url":"https://dms.example/hook","attempt":3,"status":204}`},
		{&WebhookFailed{DeliveryID: "dlv-1", Office: "bauamt", URL: "https://dms.example/hook", Attempt: 8, Status: 500, Error: "giving up after 8 attempts: answered 500"},
			`{"deliveryId":"dlv-1","office":"bauamt","url":"https://dms.example/hook","attempt":8,"status":500,"error":"giving up after 8 attempts: answered 500"}`},
	}
	r := NewRegistry()
	for _, tt := range tests {
		t.Run(tt.p.EventType(), func(t *testing.T) {
			e, err := Encode(Meta{ID: "x", Stream: "msg-x"}, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != tt.want {
				t.Fatalf("encoding\n got %s\nwant %s", e.Data, tt.want)
			}
			back, err := r.Decode(&e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.p) {
				t.Fatalf("round trip: %+v, want %+v", back, tt.p)
			}
		})
	}
}
