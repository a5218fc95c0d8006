// Package channels is the registry of the gateway's sender-facing channels:
// for each channel its name, its inbound side (built from its configuration
// section and gateway.IntakeDeps), its outbound side for answers, the form of
// its reply address, and its configuration sections. The configuration
// loader, the assembly and the reply policy read the registry, so adding a
// channel is its own package plus one Registration in Builtin.
//
// A Registry is an immutable value: Builtin makes a new one on every call,
// and tests build their own with NewRegistry. Nothing here is package state.
package channels

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// Registration is one channel as the gateway knows it.
type Registration struct {
	// Name is the channel's name in MessageReceived.Channel and
	// ReplyRequested.Channel.
	Name gateway.Channel
	// Inbound receives messages on this channel; nil: no adapter yet.
	Inbound *InboundSide
	// Outbound sends answers on this channel; nil: answers planned for it
	// fail with replies.ErrNoOutbound and go to triage.
	Outbound *OutboundSide
	// Reply is how a message received on this channel is answered: the
	// channel the answer goes out on and the form of its address.
	Reply replies.Route
	// Transport names the registration when a channel has more than one
	// transport (EGVP: over OSCI, or through EGVP Enterprise). Each is
	// registered under the channel's name with its own sections and the
	// same reply route; a node configures at most one (CheckTransports).
	Transport string
}

// OutboundDeps are what every outbound side is built with.
type OutboundDeps struct {
	// Blobs holds the answers' bodies and the messages answered.
	Blobs blob.Backend
	// Logger receives operational messages.
	Logger *slog.Logger
	// Evidence records the delivery evidence an outbound learns of the answers it
	// sends (the EGVP channel's process cards); nil when the gateway was built
	// without it.
	Evidence *gateway.EvidenceRecorder
	// Tenant is the authority the answers belong to.
	Tenant string
}

// Section is one YAML section of the gateway's configuration file that a
// channel side reads (smtp:, imap:, smtp_out:). The loader decodes the
// section strictly into a value of Type, checks it with Validate and hands
// it to the side's constructor.
type Section struct {
	// Key is the section's top-level YAML key.
	Key      string
	typ      reflect.Type
	validate func(any) error
	demo     func(dataDir string) any
}

// SectionSpec describes a section whose value has type C.
type SectionSpec[C any] struct {
	// Key is the top-level YAML key.
	Key string
	// Validate, when set, checks a decoded section. Its errors name the
	// field relative to the section ("listen: ..."); the loader puts the
	// key in front.
	Validate func(*C) error
	// Demo, when set, is the section's value when serve runs without a
	// configuration file; nil leaves the side off in the demo set-up.
	Demo func(dataDir string) *C
}

func newSection[C any](spec SectionSpec[C]) Section {
	s := Section{Key: spec.Key, typ: reflect.TypeFor[*C]()}
	s.validate = func(v any) error {
		c, ok := v.(*C)
		if !ok || c == nil {
			return fmt.Errorf("is a %T, want %v", v, s.typ)
		}
		if spec.Validate == nil {
			return nil
		}
		return spec.Validate(c)
	}
	if spec.Demo != nil {
		s.demo = func(dataDir string) any { return spec.Demo(dataDir) }
	}
	return s
}

// Type is the type the section decodes into: a pointer to its config struct.
func (s Section) Type() reflect.Type { return s.typ }

// Validate checks a decoded section value (a value of Type).
func (s Section) Validate(v any) error { return s.validate(v) }

// Demo is the section's value in the demo set-up, nil when the side is off
// there.
func (s Section) Demo(dataDir string) any {
	if s.demo == nil {
		return nil
	}
	return s.demo(dataDir)
}

// Side is one direction of a channel: its configuration section and the
// constructor that builds it from a decoded section.
type Side[D, T any] struct {
	Section Section
	build   func(cfg any, deps D) (T, error)
}

// InboundSide builds a channel's gateway.Inbound.
type InboundSide = Side[gateway.IntakeDeps, gateway.Inbound]

// OutboundSide builds a channel's replies.Outbound.
type OutboundSide = Side[OutboundDeps, replies.Outbound]

// Build constructs the side from cfg, a value of Section.Type(). A nil T
// with a nil error means the section configures nothing to run (an imap:
// section without mailboxes).
func (s *Side[D, T]) Build(cfg any, deps D) (T, error) { return s.build(cfg, deps) }

func newSide[C, D, T any](spec SectionSpec[C], build func(*C, D) (T, error)) *Side[D, T] {
	return &Side[D, T]{Section: newSection(spec), build: func(v any, deps D) (T, error) {
		c, ok := v.(*C)
		if !ok || c == nil {
			var zero T
			return zero, fmt.Errorf("%s: configuration is a %T, want %T", spec.Key, v, c)
		}
		return build(c, deps)
	}}
}

// NewInbound is the inbound side read from the section spec describes.
func NewInbound[C any](spec SectionSpec[C], build func(*C, gateway.IntakeDeps) (gateway.Inbound, error)) *InboundSide {
	return newSide(spec, build)
}

// NewOutbound is the outbound side read from the section spec describes.
func NewOutbound[C any](spec SectionSpec[C], build func(*C, OutboundDeps) (replies.Outbound, error)) *OutboundSide {
	return newSide(spec, build)
}

// NewSharedOutbound is an outbound side that reads the section of the
// inbound side in, for a channel configured in one section with its
// outbound settings nested (demail: {outbound: ...}). Register both sides
// on the same Registration.
func NewSharedOutbound[C any](in *InboundSide, build func(*C, OutboundDeps) (replies.Outbound, error)) *OutboundSide {
	key := in.Section.Key
	return &OutboundSide{Section: in.Section, build: func(v any, deps OutboundDeps) (replies.Outbound, error) {
		c, ok := v.(*C)
		if !ok || c == nil {
			return nil, fmt.Errorf("%s: configuration is a %T, want %T", key, v, c)
		}
		return build(c, deps)
	}}
}

// Registry is an immutable list of channel registrations.
type Registry struct {
	regs []Registration
}

// NewRegistry checks regs and makes a registry of them: names and section
// keys are unique, every side has a section, and every reply route either
// names an address form or says why the channel cannot be answered.
func NewRegistry(regs ...Registration) (Registry, error) {
	names := map[gateway.Channel]bool{}
	transports := map[gateway.Channel]Registration{}
	keys := map[string]gateway.Channel{}
	for _, r := range regs {
		if r.Name == "" {
			return Registry{}, errors.New("channels: a registration has no name")
		}
		if first, dup := transports[r.Name]; dup {
			switch {
			case first.Transport == "" || r.Transport == "" || first.Transport == r.Transport:
				return Registry{}, fmt.Errorf("channels: %s is registered twice", r.Name)
			case first.Reply.Channel != r.Reply.Channel || first.Reply.Reason != r.Reply.Reason:
				return Registry{}, fmt.Errorf("channels: %s: the transports %s and %s answer differently", r.Name, first.Transport, r.Transport)
			}
		} else {
			transports[r.Name] = r
		}
		names[r.Name] = true
		for _, s := range sectionsOf(r) {
			if s.Key == "" || s.typ == nil {
				return Registry{}, fmt.Errorf("channels: %s: a side has no configuration section (build it with NewInbound or NewOutbound)", r.Name)
			}
			if other, dup := keys[s.Key]; dup {
				return Registry{}, fmt.Errorf("channels: %s: section %s is already read by %s", r.Name, s.Key, other)
			}
			keys[s.Key] = r.Name
		}
		switch {
		case r.Reply.Channel == "" && r.Reply.Reason == "":
			return Registry{}, fmt.Errorf("channels: %s: the reply route names neither a channel nor why there is none", r.Name)
		case r.Reply.Channel != "" && r.Reply.Address == nil:
			return Registry{}, fmt.Errorf("channels: %s: the reply route has no address form", r.Name)
		}
	}
	for _, r := range regs {
		if r.Reply.Channel != "" && !names[r.Reply.Channel] {
			return Registry{}, fmt.Errorf("channels: %s is answered on %s, which is not registered", r.Name, r.Reply.Channel)
		}
	}
	return Registry{regs: append([]Registration(nil), regs...)}, nil
}

// sectionsOf are the sections r reads; an outbound side that reads the
// inbound side's section (NewSharedOutbound) adds none of its own.
func sectionsOf(r Registration) []Section {
	var s []Section
	if r.Inbound != nil {
		s = append(s, r.Inbound.Section)
	}
	if r.Outbound != nil && !(r.Inbound != nil && r.Outbound.Section.Key == r.Inbound.Section.Key &&
		r.Outbound.Section.typ == r.Inbound.Section.typ) {
		s = append(s, r.Outbound.Section)
	}
	return s
}

// All returns the registrations in their order of registration.
func (r Registry) All() []Registration { return append([]Registration(nil), r.regs...) }

// Lookup returns the registration of name.
func (r Registry) Lookup(name gateway.Channel) (Registration, bool) {
	for _, reg := range r.regs {
		if reg.Name == name {
			return reg, true
		}
	}
	return Registration{}, false
}

// Sections returns every configuration section the channels read.
func (r Registry) Sections() []Section {
	var s []Section
	for _, reg := range r.regs {
		s = append(s, sectionsOf(reg)...)
	}
	return s
}

// CheckTransports refuses a configuration that sets up two transports of one
// channel (configured reports whether a section key is in the configuration):
// a node takes EGVP either over OSCI or through EGVP Enterprise.
func (r Registry) CheckTransports(configured func(key string) bool) error {
	active := map[gateway.Channel][]string{}
	for _, reg := range r.regs {
		if reg.Transport == "" {
			continue
		}
		for _, s := range sectionsOf(reg) {
			if configured(s.Key) {
				active[reg.Name] = append(active[reg.Name], s.Key)
				break
			}
		}
	}
	for _, reg := range r.regs {
		if keys := active[reg.Name]; len(keys) > 1 {
			return fmt.Errorf("channel %s: the sections %s configure %d transports; configure one", reg.Name, strings.Join(keys, " and "), len(keys))
		}
	}
	return nil
}

// Policy is the reply-channel policy of the registered channels: each
// channel's reply route, and an outbound for every channel with an
// outbound side.
func (r Registry) Policy() (*replies.Policy, error) {
	routes := make(map[gateway.Channel]replies.Route, len(r.regs))
	var out []gateway.Channel
	for _, reg := range r.regs {
		routes[reg.Name] = reg.Reply
		if reg.Outbound != nil && !slices.Contains(out, reg.Name) {
			out = append(out, reg.Name)
		}
	}
	return replies.NewPolicy(routes, out)
}
