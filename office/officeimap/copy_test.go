package officeimap

import (
	"bufio"
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
)

// FuzzRenderCopy feeds hostile receipt fields (they come from senders) into
// the copy's header and checks that nothing can add a header field or break
// the structure.
func FuzzRenderCopy(f *testing.F) {
	f.Add("Erika", "a@example.org", "Antrag", "<m@example.org>", "Mon, 2 Mar 2026 10:00:00 +0100", "smtp")
	f.Add("X\r\nBcc: evil@example", "a@b\r\nBcc: c@d", "Hallo\r\nX-Evil: 1", "<a\r\n@b>", "\r\n", "smtp\r\nX: y")
	f.Add("\xff\xfe", "\x00@\x00", "Ärger über Öffnungszeiten und eine sehr lange Betreffzeile, die umbrochen werden muss, damit nichts bricht", "", "", "")
	f.Fuzz(func(t *testing.T, name, addr, subject, msgID, date, channel string) {
		m := offices.Message{Office: "bauamt", Stream: "msg-abc", Seq: 1, Channel: gateway.Channel(channel),
			From: gateway.Address{Name: name, Address: addr}, To: []gateway.Address{{Name: name, Address: addr}},
			Subject: subject, ReceivedAt: time.Unix(1700000000, 0), SenderMessageID: msgID,
			Metadata: map[string]string{"date": date}, Raw: blob.Ref{SHA256: strings.Repeat("a", 64), Size: 5},
			Problems: []string{subject}}
		c := renderCopy(m, 1<<20)
		whole := append(append(bytes.Clone(c.prefix), "x\r\n\r\n"...), c.suffix...)
		if int64(len(whole)) != c.size() {
			t.Fatalf("size %d, rendered %d", c.size(), len(whole))
		}
		msg, err := mail.ReadMessage(bytes.NewReader(whole))
		if err != nil {
			t.Fatalf("copy does not parse: %v\n%q", err, c.prefix)
		}
		for k := range msg.Header {
			switch k {
			case "Message-Id", "Date", "From", "To", "Subject", "References", "X-Poststelle-Office", "X-Poststelle-Stream",
				"X-Poststelle-Channel", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("unexpected header %q:\n%q", k, c.prefix)
			}
		}
		bs := imapserver.ExtractBodyStructure(bufio.NewReader(bytes.NewReader(whole)))
		if bs == nil || bs.MediaType() != "multipart/mixed" {
			t.Fatalf("structure %v", bs)
		}
	})
}
