package routing

import (
	"fmt"
	"regexp"

	"github.com/poststelle/poststelle/gateway"
)

// PortalSpec holds the conditions on a FIT-Connect submission's typed fields
// (gateway.PortalFields); all given ones must hold, and on another channel
// none does.
type PortalSpec struct {
	// DestinationID lists FIT-Connect destination ids.
	DestinationID stringList `yaml:"destination_id"`
	// Service lists service identifiers (urn:de:fim:leika:leistung:..., or
	// another URN the metadata names), exactly.
	Service stringList `yaml:"service"`
	// Leika lists globs of LeiKa keys (* any run, ? one digit):
	// "99108008*" for every key of a group.
	Leika stringList `yaml:"leika"`
	// ReplyChannel lists the reply channel kinds the sender named
	// (fitConnect, eMail, deMail, fink, elster; "none" for none).
	ReplyChannel stringList `yaml:"reply_channel"`
	// Decision is accepted or rejected: the gateway's answer to the platform.
	Decision string `yaml:"decision"`
}

// portalCond is a rule's compiled conditions on the portal fields.
type portalCond struct {
	destinations, services, replyChannels map[string]struct{}
	leika                                 []*regexp.Regexp
	decision                              string
}

var replyChannelKinds = map[string]bool{"fitConnect": true, "eMail": true, "deMail": true, "fink": true, "elster": true, "none": true}

func compilePortal(p *PortalSpec) (*portalCond, error) {
	if p == nil {
		return nil, nil
	}
	c := &portalCond{decision: p.Decision}
	if len(p.DestinationID) > 0 {
		c.destinations = set(p.DestinationID)
	}
	if len(p.Service) > 0 {
		c.services = set(p.Service)
	}
	for _, k := range p.ReplyChannel {
		if !replyChannelKinds[k] {
			return nil, fmt.Errorf("portal.reply_channel: %q is not fitConnect, eMail, deMail, fink, elster or none", k)
		}
	}
	if len(p.ReplyChannel) > 0 {
		c.replyChannels = set(p.ReplyChannel)
	}
	switch p.Decision {
	case "", gateway.PortalAccepted, gateway.PortalRejected:
	default:
		return nil, fmt.Errorf("portal.decision: %q is not %s or %s", p.Decision, gateway.PortalAccepted, gateway.PortalRejected)
	}
	for i, g := range p.Leika {
		re, err := compileGlob(g)
		if err != nil {
			return nil, fmt.Errorf("portal.leika[%d]: %w", i, err)
		}
		c.leika = append(c.leika, re)
	}
	return c, nil
}

// mismatch says which portal condition f fails, "" when all hold.
func (c *portalCond) mismatch(f *gateway.PortalFields) string {
	if f == nil {
		return "not a portal submission"
	}
	rc := f.ReplyChannel
	if rc == "" {
		rc = "none"
	}
	switch {
	case c.destinations != nil && !inSet(c.destinations, f.DestinationID):
		return fmt.Sprintf("destination %q is not listed", f.DestinationID)
	case c.services != nil && !inSet(c.services, f.ServiceIdentifier):
		return fmt.Sprintf("service %q is not listed", f.ServiceIdentifier)
	case len(c.leika) > 0 && !anyMatch(c.leika, f.LeikaKey):
		return fmt.Sprintf("no LeiKa glob matches %q", f.LeikaKey)
	case c.replyChannels != nil && !inSet(c.replyChannels, rc):
		return fmt.Sprintf("reply channel %q is not listed", rc)
	case c.decision != "" && c.decision != f.Decision:
		return fmt.Sprintf("decision is %q", f.Decision)
	}
	return ""
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	if s == "" {
		return false
	}
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}
