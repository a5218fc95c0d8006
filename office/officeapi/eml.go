package officeapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// Headers that let `poststelle route test` simulate in an .eml file what
// other channels put in the receipt. ParseEML alone reads them; the gateway's
// inbound adapters never do.
const (
	TestChannelHeader  = "X-Poststelle-Channel"
	TestMetadataPrefix = "X-Poststelle-Metadata-"
)

// ParseEML describes an e-mail message as the SMTP adapter would record it,
// for `poststelle route test` (routing.TestCommand's parser). An
// "X-Poststelle-Channel: egvp" header pretends another channel, and
// "X-Poststelle-Metadata-<key>: <value>" headers set channel metadata (e.g.
// X-Poststelle-Metadata-xjustiz.recipient).
func ParseEML(raw []byte) (*gateway.MessageReceived, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := mailmsg.WalkReader(ctx, &blob.Memory{}, bytes.NewReader(raw), int64(len(raw)), mailmsg.Limits{})
	if err != nil {
		return nil, err
	}
	rec := m.Receipt(mailmsg.Arrival{Channel: gateway.ChannelSMTP, At: time.Now().UTC()})
	if ch := strings.TrimSpace(m.Header.Get(TestChannelHeader)); ch != "" {
		rec.Channel = gateway.Channel(strings.ToLower(ch))
	}
	for _, f := range m.Header {
		if len(f.Name) > len(TestMetadataPrefix) && strings.EqualFold(f.Name[:len(TestMetadataPrefix)], TestMetadataPrefix) {
			if rec.Metadata == nil {
				rec.Metadata = map[string]string{}
			}
			rec.Metadata[f.Name[len(TestMetadataPrefix):]] = strings.TrimSpace(f.Value)
		}
	}
	return rec, nil
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
