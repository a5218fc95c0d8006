package postbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// Outbound delivers answers into the answer queue of the client that
// submitted the message. The queue is the Answers projection of the log, so
// Send has nothing to write: its acceptance, recorded by the reply sender
// as ReplySent, is what puts the answer in the queue. Send checks that the
// answer can be delivered at all (a postbox message of a configured client)
// and refuses it permanently otherwise, which sends it to triage. A resend
// after a crash accepts again, and the queue holds the answer once (it is
// keyed by the reply id).
type Outbound struct {
	clients map[string]bool
}

// NewOutbound is the outbound side of the section cfg.
func NewOutbound(cfg Config) (*Outbound, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &Outbound{clients: map[string]bool{}}
	for _, c := range cfg.Clients {
		o.clients[c.ID] = true
	}
	return o, nil
}

// Send implements replies.Outbound.
func (o *Outbound) Send(ctx context.Context, reply *gateway.ReplyRequested, original *gateway.MessageReceived) (replies.SentInfo, error) {
	if original == nil || original.Channel != gateway.ChannelPostbox {
		return replies.SentInfo{}, replies.Permanent(errors.New("postbox: the answered message did not come through the postbox API"))
	}
	if reply.EEB != nil {
		return replies.SentInfo{}, replies.Permanent(errors.New("postbox: an eEB is an EGVP answer"))
	}
	cl := original.Metadata[MetaClient]
	if !o.clients[cl] {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("postbox: client %q of the answered message is not configured", cl))
	}
	return replies.SentInfo{ChannelMessageID: reply.ReplyID, Response: "in the answer queue of " + cl}, nil
}
