package smtp

import (
	"strings"
	"testing"
)

// TestLongLines: RFC 5321 caps lines at 1000 octets, but mail in the wild
// (and 8BITMIME from careless senders) carries longer ones; they are
// accepted and kept as they are, up to the configured line limit.
func TestLongLines(t *testing.T) {
	f := start(t, nil)
	raw := []byte("Subject: long\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n")
	if _, err := f.send(t, false, "a@example.org", []string{"x@kreis.example"}, raw); err != nil {
		t.Fatal(err)
	}
	msgs := f.received(t)
	if len(msgs) != 1 || msgs[0].Raw.Size != int64(len(raw)) {
		t.Fatalf("recorded %+v", msgs)
	}
	// Beyond the limit the refusal is permanent, so the sender bounces
	// instead of retrying for days.
	tooLong := []byte("Subject: too long\r\n\r\n" + strings.Repeat("y", 70000) + "\r\n")
	if _, err := f.send(t, false, "a@example.org", []string{"x@kreis.example"}, tooLong); smtpCode(err) != 552 {
		t.Errorf("line over the limit: %v, want 552", err)
	}
}
