package demail

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// OutboundConfig is the demail.outbound: section: how answers are
// submitted to the provider gateway (BSI TR 01201 Teil 3.4 clause 3.1).
type OutboundConfig struct {
	// From is the authority's De-Mail address answers are sent from.
	From string `yaml:"from"`
	// Hostname is announced with EHLO (default: the machine's host name).
	Hostname string `yaml:"hostname"`
	// Gateway is the provider gateway's submission endpoint. It requires
	// TLS (starttls, the default, or implicit) and our client certificate
	// (cert_file, key_file), by which the provider knows the account.
	Gateway smtpout.RelayConfig `yaml:"gateway"`
	// Options, when set, fixes dispatch options; an option left unset is
	// the one the sender chose for the message answered.
	Options SubmitOptions `yaml:"options"`
	// MaxMessageBytes caps one answer (default 25 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
}

// SubmitOptions are the Versandoptionen a sender sets when submitting
// (TR 01201 Teil 3.4 clauses 3.1.2 to 3.1.6). Nil: as the sender of the
// message answered chose.
type SubmitOptions struct {
	ConfirmDispatch  *bool `yaml:"confirm_dispatch"`  // Versandbestätigung
	ConfirmReceipt   *bool `yaml:"confirm_receipt"`   // Eingangsbestätigung
	ConfirmRetrieval *bool `yaml:"confirm_retrieval"` // Abholbestätigung
	Authoritative    *bool `yaml:"authoritative"`     // Absenderbestätigt
	Personal         *bool `yaml:"personal"`          // Persönlich
}

// maxPrivateID is the length TR 01201 Teil 3.4 clause 3.1.17 allows.
const maxPrivateID = 1024

// validate checks the section; errors name the field.
func (o *OutboundConfig) validate() error {
	g := o.Gateway
	switch {
	case o.From == "":
		return errors.New("outbound.from: required")
	case g.Host == "":
		return errors.New("outbound.gateway.host: required")
	case g.TLS != "" && g.TLS != smtpout.TLSStartTLS && g.TLS != smtpout.TLSImplicit:
		return fmt.Errorf("outbound.gateway.tls: %q: want starttls or implicit: the provider gateway is reached over TLS only", g.TLS)
	case g.CertFile == "":
		return errors.New("outbound.gateway.cert_file: required: the provider gateway needs a client certificate")
	case g.KeyFile == "":
		return errors.New("outbound.gateway.key_file: required")
	case o.MaxMessageBytes < 0:
		return errors.New("outbound.max_message_bytes: must not be negative")
	}
	if _, err := replies.ParseMailbox(o.From); err != nil {
		return fmt.Errorf("outbound.from: %w", err)
	}
	return nil
}

// OutboundDeps are the De-Mail outbound's collaborators.
type OutboundDeps struct {
	Blobs  smtpout.Blobs
	Logger *slog.Logger
}

// NewOutbound is the De-Mail outbound: answers rendered as e-mail by
// smtpout and submitted to the provider gateway with the dispatch options
// and, as X-de-mail-private-id, the ReplyID, which the provider copies
// into its confirmations (clause 3.1.17) and the references projection
// indexes, so that a confirmation links to the answer. Send returns only
// after the gateway accepted the message with 250; a 5xx refusal is
// permanent, everything else is retried. Nil configuration: no outbound.
func NewOutbound(c *OutboundConfig, deps OutboundDeps) (replies.Outbound, error) {
	if c == nil {
		return nil, nil
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("demail: %w", err)
	}
	g := c.Gateway
	if g.TLS == "" {
		g.TLS = smtpout.TLSStartTLS
	}
	opts := c.Options
	out, err := smtpout.New(smtpout.Config{From: c.From, Hostname: c.Hostname, Relay: g, MaxMessageBytes: c.MaxMessageBytes},
		smtpout.Deps{Blobs: deps.Blobs, Logger: deps.Logger,
			Fields: func(req *gateway.ReplyRequested, orig *gateway.MessageReceived) ([]smtpout.Field, error) {
				return dispatchFields(opts, req, orig)
			}})
	if err != nil {
		return nil, fmt.Errorf("demail: outbound: %w", err)
	}
	return out, nil
}

// dispatchFields are the submission header fields of an answer: each
// option as configured or else as the sender chose, and the private id.
func dispatchFields(o SubmitOptions, req *gateway.ReplyRequested, orig *gateway.MessageReceived) ([]smtpout.Field, error) {
	if len(req.ReplyID) > maxPrivateID || strings.ContainsAny(req.ReplyID, "\r\n\x00") {
		return nil, replies.Permanent(fmt.Errorf("demail: reply id is not usable as %s", FieldPrivateID))
	}
	var sender gateway.DeMailEvidence
	if orig != nil && orig.DeMail != nil {
		sender = *orig.DeMail
	}
	opt := func(set *bool, orig bool) string {
		if set != nil {
			orig = *set
		}
		if orig {
			return "yes"
		}
		return "no"
	}
	return []smtpout.Field{
		{Name: headerName(FieldConfirmDispatch), Value: opt(o.ConfirmDispatch, sender.ConfirmDispatch)},
		{Name: headerName(FieldConfirmReceipt), Value: opt(o.ConfirmReceipt, sender.ConfirmReceipt)},
		{Name: headerName(FieldConfirmRetrieve), Value: opt(o.ConfirmRetrieval, sender.ConfirmRetrieval)},
		{Name: headerName(FieldAuthoritative), Value: opt(o.Authoritative, sender.Authoritative)},
		{Name: headerName(FieldPrivate), Value: opt(o.Personal, sender.Personal)},
		{Name: headerName(FieldPrivateID), Value: req.ReplyID},
	}, nil
}

// headerName spells a field as the TR's tables do (X-de-mail-...); the
// provider compares names case-insensitively.
func headerName(field string) string { return "X" + strings.TrimPrefix(field, "x") }
