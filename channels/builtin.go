package channels

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/poststelle/poststelle/channels/demail"
	"github.com/poststelle/poststelle/channels/egvpenterprise"
	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/channels/oscichannel"
	"github.com/poststelle/poststelle/channels/portal"
	"github.com/poststelle/poststelle/channels/postbox"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// The configuration sections of the built-in channels, as documented in the
// README and deploy/poststelle.yaml.
const (
	SMTPSection    = "smtp"
	IMAPSection    = "imap"
	SMTPOutSection = "smtp_out"
	DeMailSection  = "demail"
	OSCISection    = "osci"
	// EGVPEnterpriseSection is EGVP's other transport, through an EGVP
	// Enterprise installation's web service; a node configures it or osci.
	EGVPEnterpriseSection = "egvp_enterprise"
	// PortalSection is the FIT-Connect destination (docs/portal.md).
	PortalSection = "portal"
	// PostboxSection is the direct postbox API (channels/postbox).
	PostboxSection = "postbox"
)

// Builtin is the registry of the channels this build has. A new channel
// adds its Registration here and nowhere else.
func Builtin() Registry {
	demailIn := demailInbound()
	osciIn := osciInbound()
	enterpriseIn := enterpriseInbound()
	portalIn := portalInbound()
	postboxIn := postboxInbound()
	reg, err := NewRegistry(
		Registration{Name: gateway.ChannelSMTP, Inbound: smtpInbound(), Outbound: smtpOutbound(),
			Reply: replies.Route{Channel: gateway.ChannelSMTP, Address: replies.EmailAddress}},
		Registration{Name: gateway.ChannelIMAP, Inbound: imapInbound(),
			Reply: replies.Route{Channel: gateway.ChannelSMTP, Address: replies.EmailAddress}},
		// De-Mail is taken in from the provider gateway; answers go back on
		// De-Mail (EGovG § 4) to the sender's De-Mail address, submitted to
		// the gateway as demail.outbound configures. EGVP rides on OSCI
		// (osci: section): deliveries fetched from or forwarded by the
		// intermediary, answers stored in the originator's mailbox there;
		// or a site's EGVP Enterprise does the OSCI (egvp_enterprise:).
		// The portal takes a FIT-Connect destination's submissions (portal:);
		// answers go back on the portal as FIT-Connect replies, encrypted to
		// the key the submission named (without one they go to triage).
		Registration{Name: gateway.ChannelDeMail, Inbound: demailIn, Outbound: demailOutbound(demailIn),
			Reply: replies.Route{Channel: gateway.ChannelDeMail, Address: replies.SenderAddress}},
		Registration{Name: gateway.ChannelEGVP, Inbound: osciIn, Outbound: osciOutbound(osciIn), Transport: OSCISection,
			Reply: replies.Route{Channel: gateway.ChannelEGVP, Address: replies.SenderAddress}},
		Registration{Name: gateway.ChannelEGVP, Inbound: enterpriseIn, Outbound: enterpriseOutbound(enterpriseIn), Transport: EGVPEnterpriseSection,
			Reply: replies.Route{Channel: gateway.ChannelEGVP, Address: replies.SenderAddress}},
		Registration{Name: gateway.ChannelPortal, Inbound: portalIn, Outbound: portalOutbound(portalIn),
			Reply: replies.Route{Channel: gateway.ChannelPortal, Address: replies.SenderAddress}},
		Registration{Name: gateway.ChannelAPI, Reply: replies.Route{Reason: "messages handed in through the API have no reply channel"}},
		// The direct postbox API: answers go into the answer queue of the
		// portal that submitted the message, for the citizen's postbox
		// reference recorded as From.
		Registration{Name: gateway.ChannelPostbox, Inbound: postboxIn, Outbound: postboxOutbound(postboxIn),
			Reply: replies.Route{Channel: gateway.ChannelPostbox, Address: replies.SenderAddress}},
	)
	if err != nil {
		// The list above is fixed at compile time; TestBuiltin keeps it valid.
		panic(err)
	}
	return reg
}

func smtpInbound() *InboundSide {
	return NewInbound(SectionSpec[smtp.Config]{
		Key: SMTPSection,
		Validate: func(c *smtp.Config) error {
			if c.Listen == "" {
				return nil
			}
			if _, _, err := net.SplitHostPort(c.Listen); err != nil {
				return fmt.Errorf("listen: %q is not host:port", c.Listen)
			}
			return nil
		},
		// The demo set-up accepts mail for anyone on the loopback port.
		Demo: func(string) *smtp.Config { return &smtp.Config{Listen: "127.0.0.1:2525", AcceptAll: true} },
	}, func(c *smtp.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
		return smtp.New(*c, deps)
	})
}

func imapInbound() *InboundSide {
	return NewInbound(SectionSpec[imap.Config]{Key: IMAPSection},
		func(c *imap.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			if len(c.Mailboxes) == 0 {
				return nil, nil
			}
			return imap.New(*c, deps)
		})
}

func demailInbound() *InboundSide {
	return NewInbound(SectionSpec[demail.Config]{Key: DeMailSection, Validate: (*demail.Config).Validate},
		func(c *demail.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			in, err := demail.New(*c, deps)
			if err != nil || in == nil {
				return nil, err
			}
			return in, nil
		})
}

// demailOutbound reads demail.outbound of the section in reads; a demail
// section without it builds no outbound.
func demailOutbound(in *InboundSide) *OutboundSide {
	return NewSharedOutbound(in, func(c *demail.Config, deps OutboundDeps) (replies.Outbound, error) {
		return demail.NewOutbound(c.Outbound, demail.OutboundDeps{Blobs: deps.Blobs, Logger: deps.Logger})
	})
}

func osciInbound() *InboundSide {
	return NewInbound(SectionSpec[oscichannel.Config]{Key: OSCISection, Validate: (*oscichannel.Config).Validate},
		func(c *oscichannel.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			return oscichannel.New(*c, deps)
		})
}

// osciOutbound reads osci.outbound of the section in reads.
func osciOutbound(in *InboundSide) *OutboundSide {
	return NewSharedOutbound(in, func(c *oscichannel.Config, deps OutboundDeps) (replies.Outbound, error) {
		out, err := oscichannel.NewOutbound(*c, oscichannel.OutboundDeps{Blobs: deps.Blobs, Logger: deps.Logger,
			Evidence: deps.Evidence, Tenant: deps.Tenant})
		if err != nil || out == nil {
			return nil, err
		}
		return out, nil
	})
}

func smtpOutbound() *OutboundSide {
	return NewOutbound(SectionSpec[smtpout.Config]{
		Key: SMTPOutSection,
		// The demo set-up answers into a Maildir in the data directory
		// instead of a relay, so that an answer ends in ReplySent while
		// nothing leaves the machine.
		Demo: func(dataDir string) *smtpout.Config {
			return &smtpout.Config{From: "Poststelle Demo <poststelle@demo.invalid>", Maildir: filepath.Join(dataDir, "outbox")}
		},
	}, func(c *smtpout.Config, deps OutboundDeps) (replies.Outbound, error) {
		return smtpout.New(*c, smtpout.Deps{Blobs: deps.Blobs, Logger: deps.Logger})
	})
}

func enterpriseInbound() *InboundSide {
	return NewInbound(SectionSpec[egvpenterprise.Config]{Key: EGVPEnterpriseSection, Validate: (*egvpenterprise.Config).Validate},
		func(c *egvpenterprise.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			in, err := egvpenterprise.New(*c, deps)
			if err != nil || in == nil {
				return nil, err
			}
			return in, nil
		})
}

// enterpriseOutbound reads egvp_enterprise.outbound of the section in reads.
func enterpriseOutbound(in *InboundSide) *OutboundSide {
	return NewSharedOutbound(in, func(c *egvpenterprise.Config, deps OutboundDeps) (replies.Outbound, error) {
		out, err := egvpenterprise.NewOutbound(*c, egvpenterprise.OutboundDeps{Blobs: deps.Blobs, Logger: deps.Logger,
			Evidence: deps.Evidence, Tenant: deps.Tenant})
		if err != nil || out == nil {
			return nil, err
		}
		return out, nil
	})
}

func portalInbound() *InboundSide {
	return NewInbound(SectionSpec[portal.Config]{Key: PortalSection, Validate: (*portal.Config).Validate},
		func(c *portal.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			in, err := portal.New(*c, deps)
			if err != nil || in == nil {
				return nil, err
			}
			return in, nil
		})
}

// portalOutbound sends answers to portal messages with the portal section's
// API client.
func portalOutbound(in *InboundSide) *OutboundSide {
	return NewSharedOutbound(in, func(c *portal.Config, deps OutboundDeps) (replies.Outbound, error) {
		out, err := portal.NewOutbound(*c, portal.OutboundDeps{Blobs: deps.Blobs, Logger: deps.Logger, Evidence: deps.Evidence,
			Tenant: deps.Tenant})
		if err != nil || out == nil {
			return nil, err
		}
		return out, nil
	})
}

func postboxInbound() *InboundSide {
	return NewInbound(SectionSpec[postbox.Config]{Key: PostboxSection, Validate: (*postbox.Config).Validate},
		func(c *postbox.Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
			return postbox.New(*c, deps)
		})
}

// postboxOutbound reads the postbox section of in: the clients whose
// answer queues exist.
func postboxOutbound(in *InboundSide) *OutboundSide {
	return NewSharedOutbound(in, func(c *postbox.Config, _ OutboundDeps) (replies.Outbound, error) {
		return postbox.NewOutbound(*c)
	})
}
