package channels_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// TestBuiltinReplyRoutes pins, for every registered channel, where an answer
// goes: the behaviour replies.Plan had as a switch before the registry.
// A channel registered without a case here fails the test, so a new channel
// states its reply address form.
func TestBuiltinReplyRoutes(t *testing.T) {
	from := gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}
	type plan struct {
		in      gateway.MessageReceived
		ch      gateway.Channel
		to      string
		name    string
		noOut   bool
		wantErr bool
	}
	tests := map[gateway.Channel][]plan{
		gateway.ChannelSMTP: {
			{in: gateway.MessageReceived{From: from}, ch: gateway.ChannelSMTP, to: "buerger@example.org", name: "Erika Muster"},
			{in: gateway.MessageReceived{From: from, Metadata: map[string]string{replies.ReplyToKey: "Kanzlei <post@kanzlei.example>"}},
				ch: gateway.ChannelSMTP, to: "post@kanzlei.example", name: "Kanzlei"},
			{in: gateway.MessageReceived{From: from, Metadata: map[string]string{replies.ReplyToKey: "x@y\r\nBcc: evil@example"}},
				ch: gateway.ChannelSMTP, to: "buerger@example.org", name: "Erika Muster"},
			{in: gateway.MessageReceived{}, wantErr: true},
			{in: gateway.MessageReceived{From: gateway.Address{Address: "a@b\nBcc: c@d"}}, wantErr: true},
			{in: gateway.MessageReceived{From: gateway.Address{Address: "postmaster"}}, wantErr: true},
		},
		gateway.ChannelIMAP: {
			{in: gateway.MessageReceived{From: from}, ch: gateway.ChannelSMTP, to: "buerger@example.org", name: "Erika Muster"},
			{in: gateway.MessageReceived{From: from, Metadata: map[string]string{replies.ReplyToKey: "post@kanzlei.example"}},
				ch: gateway.ChannelSMTP, to: "post@kanzlei.example"},
			{in: gateway.MessageReceived{}, wantErr: true},
		},
		gateway.ChannelDeMail: {
			{in: gateway.MessageReceived{From: gateway.Address{Address: "b@x.de-mail.de"}}, ch: gateway.ChannelDeMail, to: "b@x.de-mail.de"},
			{in: gateway.MessageReceived{}, wantErr: true},
		},
		gateway.ChannelEGVP: {
			{in: gateway.MessageReceived{From: gateway.Address{Address: "osci:5c1f"}}, ch: gateway.ChannelEGVP, to: "osci:5c1f"},
			{in: gateway.MessageReceived{From: gateway.Address{Address: "safe:DE.Justiz.5c1f"}}, ch: gateway.ChannelEGVP, to: "safe:DE.Justiz.5c1f"},
			{in: gateway.MessageReceived{}, wantErr: true},
		},
		gateway.ChannelPortal: {
			{in: gateway.MessageReceived{From: gateway.Address{Address: "portal:6f2b1f3e-9a4c-4d6e-8b1a-2c3d4e5f6a7b"}}, ch: gateway.ChannelPortal,
				to: "portal:6f2b1f3e-9a4c-4d6e-8b1a-2c3d4e5f6a7b"},
			{in: gateway.MessageReceived{}, wantErr: true},
		},
		gateway.ChannelPostbox: {
			{in: gateway.MessageReceived{From: gateway.Address{Address: "pb-4711", Name: "Erika Muster"}}, ch: gateway.ChannelPostbox, to: "pb-4711", name: "Erika Muster"},
			{in: gateway.MessageReceived{}, wantErr: true},
		},
		gateway.ChannelAPI: {
			{in: gateway.MessageReceived{From: from}, ch: gateway.ChannelAPI, to: "buerger@example.org", name: "Erika Muster", noOut: true, wantErr: true},
		},
	}
	reg := channels.Builtin()
	policy, err := reg.Policy()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[gateway.Channel]bool{}
	for _, r := range reg.All() {
		// A channel with two transports (EGVP) has one reply route.
		if seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		cases, ok := tests[r.Name]
		if !ok {
			t.Errorf("channel %s is registered without reply cases in this test", r.Name)
			continue
		}
		delete(tests, r.Name)
		for i, tt := range cases {
			tt.in.Channel = r.Name
			ch, to, err := policy.Plan(&tt.in)
			if (err != nil) != tt.wantErr || errors.Is(err, replies.ErrNoOutbound) != tt.noOut {
				t.Errorf("%s #%d: err = %v, want error %v, ErrNoOutbound %v", r.Name, i, err, tt.wantErr, tt.noOut)
			}
			if ch != tt.ch || to.Address != tt.to || to.Name != tt.name {
				t.Errorf("%s #%d: planned %s %q %q, want %s %q %q", r.Name, i, ch, to.Address, to.Name, tt.ch, tt.to, tt.name)
			}
		}
	}
	for ch := range tests {
		t.Errorf("channel %s has cases here but is not registered", ch)
	}
	if _, _, err := policy.Plan(&gateway.MessageReceived{Channel: "fax", From: from}); err == nil {
		t.Error("an unregistered channel was planned")
	}
}

// TestBuiltinSections: the built-in channels read exactly the sections the
// README documents (De-Mail's and OSCI's outbounds read their inbound's
// section too), and only SMTP, De-Mail, EGVP, the portal and the postbox have an outbound so far.
func TestBuiltinSections(t *testing.T) {
	var keys []string
	for _, s := range channels.Builtin().Sections() {
		keys = append(keys, s.Key)
	}
	if got, want := strings.Join(keys, " "), "smtp smtp_out imap demail osci egvp_enterprise portal postbox"; got != want {
		t.Errorf("sections %q, want %q", got, want)
	}
	for _, r := range channels.Builtin().All() {
		if (r.Outbound != nil) != (r.Name == gateway.ChannelSMTP || r.Name == gateway.ChannelDeMail || r.Name == gateway.ChannelEGVP ||
			r.Name == gateway.ChannelPortal || r.Name == gateway.ChannelPostbox) {
			t.Errorf("%s: outbound %v", r.Name, r.Outbound != nil)
		}
	}
	smtpIn, _ := channels.Builtin().Lookup(gateway.ChannelSMTP)
	sec := smtpIn.Inbound.Section
	if err := sec.Validate(&smtp.Config{Listen: "nowhere"}); err == nil || !strings.HasPrefix(err.Error(), "listen:") {
		t.Errorf("bad listen address: err = %v, want one naming listen", err)
	}
	if err := sec.Validate(&smtp.Config{Listen: "127.0.0.1:25"}); err != nil {
		t.Errorf("good listen address: %v", err)
	}
	if err := sec.Validate(struct{}{}); err == nil {
		t.Error("a value of the wrong type validated")
	}
	if d, ok := sec.Demo("data").(*smtp.Config); !ok || !d.AcceptAll {
		t.Errorf("demo smtp section %#v", sec.Demo("data"))
	}
}

type fakeConfig struct {
	Addr string `yaml:"addr"`
}

func TestNewRegistryRefuses(t *testing.T) {
	route := replies.Route{Channel: "fake", Address: replies.SenderAddress}
	in := func(key string) *channels.InboundSide {
		return channels.NewInbound(channels.SectionSpec[fakeConfig]{Key: key},
			func(*fakeConfig, gateway.IntakeDeps) (gateway.Inbound, error) { return nil, nil })
	}
	tests := []struct {
		name string
		regs []channels.Registration
		want string
	}{
		{"no name", []channels.Registration{{Reply: route}}, "no name"},
		{"twice", []channels.Registration{{Name: "fake", Reply: route}, {Name: "fake", Reply: route}}, "twice"},
		{"section read twice", []channels.Registration{{Name: "fake", Inbound: in("x"), Reply: route},
			{Name: "other", Inbound: in("x"), Reply: route}}, "section x"},
		{"side without section", []channels.Registration{{Name: "fake", Inbound: &channels.InboundSide{}, Reply: route}}, "no configuration section"},
		{"no reply route", []channels.Registration{{Name: "fake"}}, "neither"},
		{"no address form", []channels.Registration{{Name: "fake", Reply: replies.Route{Channel: "fake"}}}, "address form"},
		{"two transports unnamed", []channels.Registration{{Name: "fake", Reply: route, Transport: "a"}, {Name: "fake", Reply: route}}, "twice"},
		{"one transport twice", []channels.Registration{{Name: "fake", Reply: route, Transport: "a"}, {Name: "fake", Reply: route, Transport: "a"}}, "twice"},
		{"transports answer differently", []channels.Registration{{Name: "fake", Reply: route, Transport: "a"},
			{Name: "fake", Reply: replies.Route{Reason: "none"}, Transport: "b"}}, "answer differently"},
		{"answered on unregistered", []channels.Registration{{Name: "fake", Reply: replies.Route{Channel: "fax", Address: replies.SenderAddress}}}, "fax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := channels.NewRegistry(tt.regs...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSideBuildChecksType: a side handed another section's value refuses it
// instead of panicking.
func TestSideBuildChecksType(t *testing.T) {
	smtpIn, _ := channels.Builtin().Lookup(gateway.ChannelSMTP)
	if _, err := smtpIn.Inbound.Build(&fakeConfig{}, gateway.IntakeDeps{}); err == nil || !strings.Contains(err.Error(), "smtp") {
		t.Fatalf("err = %v", err)
	}
	imapIn, _ := channels.Builtin().Lookup(gateway.ChannelIMAP)
	if in, err := imapIn.Inbound.Build(imapIn.Inbound.Section.Demo(""), gateway.IntakeDeps{}); err == nil {
		t.Fatalf("built %v from no section", in)
	}
}

// TestCheckTransports: EGVP over OSCI or through EGVP Enterprise, not both on
// one node.
func TestCheckTransports(t *testing.T) {
	reg := channels.Builtin()
	for _, tc := range []struct {
		keys []string
		ok   bool
	}{
		{nil, true}, {[]string{"osci"}, true}, {[]string{"egvp_enterprise", "smtp"}, true},
		{[]string{"osci", "egvp_enterprise"}, false},
	} {
		err := reg.CheckTransports(func(k string) bool { return slices.Contains(tc.keys, k) })
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "osci and egvp_enterprise") {
			t.Errorf("%q: %v", tc.keys, err)
		}
	}
}
