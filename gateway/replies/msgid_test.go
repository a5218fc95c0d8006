package replies_test

import (
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

func TestOriginalMessageID(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    *gateway.MessageReceived
		want string
	}{
		{"smtp", &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<a@example.org>"}, "<a@example.org>"},
		{"imap coordinates are not an id", &gateway.MessageReceived{Channel: gateway.ChannelIMAP,
			Transport: gateway.TransportEvidence{Coordinates: "INBOX/1/7"}}, ""},
		{"imap", &gateway.MessageReceived{Channel: gateway.ChannelIMAP, SenderMessageID: " <b@example.org> ",
			Transport: gateway.TransportEvidence{Coordinates: "INBOX/1/7"}}, "<b@example.org>"},
		{"hostile", &gateway.MessageReceived{SenderMessageID: "<a\r\nBcc: x@y>"}, ""},
		{"quoted local part refused", &gateway.MessageReceived{SenderMessageID: `<"x y"@example.org>`}, ""},
		{"nil", nil, ""},
	} {
		if got := replies.OriginalMessageID(tt.m); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzMessageIDs: whatever a sender wrote, the ids taken are safe to repeat
// in a header of ours.
func FuzzMessageIDs(f *testing.F) {
	f.Add("<a@b> <c@d>")
	f.Add("<a\r\n@b> <\"q\"@x> <@> <x@> <>")
	f.Add(strings.Repeat("<", 300) + "a@b>")
	f.Fuzz(func(t *testing.T, v string) {
		for _, id := range replies.MessageIDs(v) {
			if !replies.ValidMessageID(id) || strings.ContainsAny(id, "\r\n\x00 ") || len(id) > replies.MaxMessageIDLen {
				t.Fatalf("unsafe id %q from %q", id, v)
			}
		}
	})
}
