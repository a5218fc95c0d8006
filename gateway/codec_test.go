package gateway

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := NewRegistry()
	in := &MessageReceived{Channel: ChannelSMTP, SenderMessageID: "<a@b>", From: Address{Address: "a@example.org"},
		To: []Address{{Address: "poststelle@kreis.example"}}, Subject: "Antrag", ReceivedAt: time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC),
		Raw: blob.Ref{SHA256: "ab", Size: 3}, Parts: []Part{{Path: "1", MediaType: "text/plain", Kind: "body"}},
		Transport: TransportEvidence{Envelope: map[string]string{"mailFrom": "a@example.org"}}}
	e, err := NewReceived("", MessageKey(ChannelSMTP, "x"), in)
	if err != nil {
		t.Fatal(err)
	}
	if e.Tenant != DefaultTenant || e.Type != "MessageReceived" || e.Version != in.SchemaVersion() || e.Stream == "" || e.ID == "" {
		t.Fatalf("bad envelope: %+v", e)
	}
	again, _ := NewReceived("", MessageKey(ChannelSMTP, "x"), in)
	if again.ID != e.ID || again.Stream != e.Stream {
		t.Fatal("ids are not deterministic: a redelivered message would become a second message")
	}
	out, err := r.Decode(&e)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	f, err := Follow("route", &e, 0, &MessageRouted{Offices: []string{"demo"}, DecidedBy: "rules"})
	if err != nil || f.CausationID != e.ID || f.Stream != e.Stream || f.CorrelationID != e.CorrelationID {
		t.Fatalf("follow-up event: %+v %v", f, err)
	}
}

func TestDecodeRefusesUnknown(t *testing.T) {
	r := NewRegistry()
	cases := []struct {
		e    eventstore.Event
		want error
	}{
		{eventstore.Event{Type: "Nope", Version: 1, Data: []byte(`{}`)}, ErrUnknownEvent},
		{eventstore.Event{Type: "MessageRouted", Version: 2, Data: []byte(`{}`)}, ErrUnknownVersion},
		{eventstore.Event{Type: "MessageReceived", Version: 0, Data: []byte(`{}`)}, ErrUnknownVersion},
		{eventstore.Event{Type: "MessageReceived", Version: 3, Data: []byte(`{}`)}, ErrUnknownVersion},
		{eventstore.Event{Type: "ReplyRequested", Version: 0, Data: []byte(`{}`)}, ErrUnknownVersion},
	}
	for _, c := range cases {
		if _, err := r.Decode(&c.e); !errors.Is(err, c.want) {
			t.Errorf("%s v%d: err = %v, want %v", c.e.Type, c.e.Version, err, c.want)
		}
	}
	if _, err := r.Decode(&eventstore.Event{Type: "MessageRouted", Version: 1, Data: []byte(`{"offices":`)}); err == nil {
		t.Error("truncated payload decoded without error")
	}
}
