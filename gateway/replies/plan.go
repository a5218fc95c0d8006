// Package replies sends an office's answer back on the channel the sender
// used (the Rückkanal). It holds the reply-channel policy (Policy, built
// from the channel registry), the seam
// every outbound channel adapter plugs into (Outbound), the pipeline handler
// that turns ReplyRequested into ReplySent or ReplyFailed, and the retry
// scheduler that re-attempts failed replies when they are due.
//
// The log is the only state: whether a reply was sent, how often it failed
// and when it is due again all follow from the ReplyRequested, ReplySent and
// ReplyFailed events of the message's stream. The scheduler's table is a
// projection of those events, so retries survive restarts and a rebuilt
// state database picks them up again.
//
// Delivery is at least once: a crash after the channel accepted a reply and
// before ReplySent is durable sends it again on restart. Outbound adapters
// make the resend recognisable (for e-mail, a Message-ID derived from the
// ReplyID).
package replies

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/poststelle/poststelle/gateway"
)

// ErrNoOutbound means the sender's channel has no outbound adapter yet. Policy.Plan
// still returns the channel and address: record the ReplyRequested anyway, so
// that the Sender records a permanent ReplyFailed and triage sees the answer
// instead of it being dropped.
var ErrNoOutbound = errors.New("replies: no outbound adapter for this channel yet")

// ErrNoSender means the received message names no address to answer to.
var ErrNoSender = errors.New("replies: the received message has no sender address to answer")

// ReplyToKey is the MessageReceived.Metadata key under which an e-mail intake
// records the message's Reply-To address. EmailAddress prefers it to From.
const ReplyToKey = "replyTo"

// AddressForm derives, from a received message, the address its answer goes
// to on the reply channel. It is the one thing a channel tells the reply
// policy about its senders' addresses.
type AddressForm func(received *gateway.MessageReceived) (gateway.Address, error)

// Route is how messages that came in on one channel are answered.
type Route struct {
	// Channel is the channel the answer goes out on (for mail collected
	// over IMAP: ChannelSMTP). Empty: messages of this channel cannot be
	// answered (Reason says why).
	Channel gateway.Channel
	// Address derives the recipient; required when Channel is set.
	Address AddressForm
	// Reason explains, when Channel is empty, why there is no answer.
	Reason string
}

// Policy is the reply-channel policy: an answer goes back on the channel the
// message came in on (its Route), to the address the route derives. It is
// built from the channel registry, so a new channel adds a Route, not a case
// here. A Policy is immutable once made.
type Policy struct {
	routes   map[gateway.Channel]Route
	outbound map[gateway.Channel]bool
}

// NewPolicy makes the policy from each inbound channel's Route and the reply
// channels that have an Outbound adapter. It refuses a route without an
// AddressForm.
func NewPolicy(routes map[gateway.Channel]Route, outbound []gateway.Channel) (*Policy, error) {
	p := &Policy{routes: make(map[gateway.Channel]Route, len(routes)), outbound: make(map[gateway.Channel]bool, len(outbound))}
	for ch, r := range routes {
		if r.Channel != "" && r.Address == nil {
			return nil, fmt.Errorf("replies: policy: channel %s answers on %s without an address form", ch, r.Channel)
		}
		p.routes[ch] = r
	}
	for _, ch := range outbound {
		p.outbound[ch] = true
	}
	return p, nil
}

// Plan chooses the channel and address an answer to received goes out on.
// When the reply channel has no outbound adapter yet, Plan returns the
// channel and address together with an error wrapping ErrNoOutbound (see
// there); a channel that cannot be answered at all returns the received
// channel and sender with ErrNoOutbound too.
func (p *Policy) Plan(received *gateway.MessageReceived) (gateway.Channel, gateway.Address, error) {
	if received == nil {
		return "", gateway.Address{}, errors.New("replies: plan: no received message")
	}
	r, ok := p.routes[received.Channel]
	if !ok {
		return "", gateway.Address{}, fmt.Errorf("replies: plan: unknown channel %q", received.Channel)
	}
	if r.Channel == "" {
		return received.Channel, received.From, fmt.Errorf("%w: %s (%s)", ErrNoOutbound, received.Channel, r.Reason)
	}
	addr, err := r.Address(received)
	if err != nil {
		return "", gateway.Address{}, err
	}
	if !p.outbound[r.Channel] {
		return r.Channel, addr, fmt.Errorf("%w: %s", ErrNoOutbound, r.Channel)
	}
	return r.Channel, addr, nil
}

// SenderAddress is the address form of channels whose sender address is an
// opaque identifier recorded as From (a De-Mail address, an EGVP SAFE-ID, a
// portal postbox): it is used as recorded.
func SenderAddress(received *gateway.MessageReceived) (gateway.Address, error) {
	if received.From.Address == "" {
		return gateway.Address{}, ErrNoSender
	}
	return received.From, nil
}

// EmailAddress is the address form of e-mail: the recorded Reply-To when the
// intake recorded a valid one, From otherwise, each validated as a header
// mailbox.
func EmailAddress(received *gateway.MessageReceived) (gateway.Address, error) {
	if rt := received.Metadata[ReplyToKey]; rt != "" {
		if a, err := ParseMailbox(rt); err == nil {
			return a, nil
		}
	}
	if received.From.Address == "" {
		return gateway.Address{}, ErrNoSender
	}
	a, err := ParseMailbox(received.From.Address)
	if err != nil {
		return gateway.Address{}, fmt.Errorf("replies: plan: sender address %q: %w", received.From.Address, err)
	}
	if a.Name == "" {
		a.Name = received.From.Name
	}
	return a, nil
}

// ParseMailbox validates one e-mail address (with or without a display
// name) the way it will be used in a header: no CR, LF or NUL anywhere, one
// mailbox only, and an address with a local part and a domain.
func ParseMailbox(s string) (gateway.Address, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return gateway.Address{}, errors.New("address contains a line break or NUL")
	}
	if len(s) > 998 {
		return gateway.Address{}, errors.New("address is longer than a header line")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return gateway.Address{}, fmt.Errorf("parse address: %w", err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return gateway.Address{}, fmt.Errorf("address %q has no local part or domain", a.Address)
	}
	if strings.ContainsAny(a.Name, "\r\n\x00") {
		return gateway.Address{}, errors.New("display name contains a line break or NUL")
	}
	return gateway.Address{Address: a.Address, Name: a.Name}, nil
}

// officeCopyDomain is the right-hand side of the Message-ID of an office's
// copy of a message (the IMAP mailbox shows copies, not originals). A mail
// client's answer to a copy carries the id in In-Reply-To, which is how the
// submission endpoint finds the message being answered.
const officeCopyDomain = ".poststelle.invalid"

// OfficeCopyID is the Message-ID of the office's copy of a message's stream.
func OfficeCopyID(office, stream string) string {
	return "<" + stream + "@" + office + officeCopyDomain + ">"
}

// ParseOfficeCopyID returns the office and stream an OfficeCopyID names.
func ParseOfficeCopyID(id string) (office, stream string, ok bool) {
	id = strings.TrimSpace(id)
	if len(id) < 2 || len(id) > 500 || id[0] != '<' || id[len(id)-1] != '>' {
		return "", "", false
	}
	stream, host, found := strings.Cut(id[1:len(id)-1], "@")
	office, isCopy := strings.CutSuffix(host, officeCopyDomain)
	if !found || !isCopy || stream == "" || office == "" || strings.ContainsAny(stream+office, "<>@ \t\r\n") {
		return "", "", false
	}
	return office, stream, true
}
