package imap

import (
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/imap/imaptest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

func TestChannelConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New: func(testing.TB) channeltest.Driver {
			return &imaptest.Driver{Build: func(port int, max int64, deps gateway.IntakeDeps) (gateway.Inbound, error) {
				return New(Config{MaxMessageBytes: max, Mailboxes: []MailboxConfig{{Name: "amt", Host: "127.0.0.1", Port: port,
					TLS: TLSNone, Folder: imaptest.Folder, Username: "poststelle", PasswordEnv: imaptest.PasswordEnv,
					PollInterval: 50 * time.Millisecond}}}, deps)
			}}
		},
		Codes: channeltest.Codes{Accepted: "done", Temporary: "retry", TooLarge: "left: too large", Refused: "left: refused"},
	})
}
