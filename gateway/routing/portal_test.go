package routing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

const portalRules = `
rules:
  - id: rejected
    match: {channel: portal, portal: {decision: rejected}}
    triage: true
  - id: bau
    match: {portal: {leika: ["99108008*"], reply_channel: [fitConnect, none]}}
    offices: [bauamt]
  - id: gewerbe
    match: {portal: {service: urn:de:fim:leika:leistung:99050012104000}}
    offices: [ordnungsamt]
  - id: sozial
    match: {portal: {destination_id: [d-sozial]}}
    offices: [sozialamt]
`

func portalMsg(mod func(*gateway.PortalFields)) *gateway.MessageReceived {
	p := &gateway.PortalFields{DestinationID: "d-bau", SubmissionID: "s1", CaseID: "c1",
		ServiceIdentifier: "urn:de:fim:leika:leistung:99108008252000", LeikaKey: "99108008252000",
		ReplyChannel: "fitConnect", Decision: gateway.PortalAccepted}
	if mod != nil {
		mod(p)
	}
	return &gateway.MessageReceived{Channel: gateway.ChannelPortal, From: gateway.Address{Address: "portal:s1"}, Portal: p}
}

func TestDecidePortal(t *testing.T) {
	set, err := Parse([]byte(portalRules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		msg          *gateway.MessageReceived
		office, rule string
	}{
		{"LeiKa group", portalMsg(nil), "bauamt", "bau"},
		{"no reply channel", portalMsg(func(p *gateway.PortalFields) { p.ReplyChannel = "" }), "bauamt", "bau"},
		{"e-mail reply channel", portalMsg(func(p *gateway.PortalFields) { p.ReplyChannel = "eMail" }), "", ""},
		{"rejected", portalMsg(func(p *gateway.PortalFields) { p.Decision = gateway.PortalRejected }), "", "rejected"},
		{"service", portalMsg(func(p *gateway.PortalFields) {
			p.ServiceIdentifier, p.LeikaKey = "urn:de:fim:leika:leistung:99050012104000", "99050012104000"
		}), "ordnungsamt", "gewerbe"},
		{"destination", portalMsg(func(p *gateway.PortalFields) {
			p.DestinationID, p.ServiceIdentifier, p.LeikaKey = "d-sozial", "urn:xoev-de:example:service", ""
		}), "sozialamt", "sozial"},
		{"not on the portal", func() *gateway.MessageReceived {
			m := portalMsg(nil)
			m.Channel = gateway.ChannelSMTP
			return m
		}(), "", ""},
		{"no portal section", func() *gateway.MessageReceived {
			m := portalMsg(nil)
			m.Portal = nil
			return m
		}(), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := NewInput(tc.msg, Facts{})
			d := set.Decide(in)
			_, ex := set.Explain(in)
			if got := strings.Join(d.Offices, ","); got != tc.office {
				t.Errorf("offices %q, want %q (%s)", got, tc.office, d.Reason)
			}
			if got := strings.Join(d.Rules, ","); got != tc.rule {
				t.Errorf("rules %q, want %q", got, tc.rule)
			}
			if strings.Join(ex.Offices, ",") != strings.Join(d.Offices, ",") || strings.Join(ex.Rules, ",") != strings.Join(d.Rules, ",") {
				t.Errorf("Explain decides %+v, Decide %+v", ex, d)
			}
		})
	}
}

func TestExplainPortal(t *testing.T) {
	set, err := Parse([]byte(portalRules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := set.Explain(NewInput(portalMsg(func(p *gateway.PortalFields) { p.LeikaKey = "99050012104000" }), Facts{}))
	want := map[string]string{"rejected": `decision is "accepted"`, "bau": `no LeiKa glob matches "99050012104000"`,
		"gewerbe": `service "urn:de:fim:leika:leistung:99108008252000" is not listed`, "sozial": `destination "d-bau" is not listed`}
	for _, st := range steps {
		if st.Why != want[st.Rule] {
			t.Errorf("%s: %q, want %q", st.Rule, st.Why, want[st.Rule])
		}
	}
}

func TestParsePortalErrors(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{`{rules: [{id: a, match: {portal: {decision: maybe}}, triage: true}]}`, "portal.decision"},
		{`{rules: [{id: a, match: {portal: {reply_channel: post}}, triage: true}]}`, "portal.reply_channel"},
		{`{rules: [{id: a, match: {portal: {leika: [" "]}}, triage: true}]}`, "portal.leika[0]"},
		{`{rules: [{id: a, match: {portal: {leistung: x}}, triage: true}]}`, "field leistung not found"},
	} {
		if _, err := Parse([]byte(tc.rules), Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.rules, err, tc.want)
		}
	}
}

// TestDeployPortalExamples keeps the commented portal examples in
// deploy/rules.yaml valid: uncommented, they compile and route.
func TestDeployPortalExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "# FIT-Connect portal")
	block, _, _ = strings.Cut(block, "# EGVP / beBPo")
	if !ok {
		t.Fatal("deploy/rules.yaml has no portal examples")
	}
	var b strings.Builder
	b.WriteString("rules:\n")
	rules := false
	for line := range strings.Lines(block) {
		rest, ok := strings.CutPrefix(line, "  # ")
		rules = rules || ok && strings.HasPrefix(rest, "- id:")
		if ok && rules {
			b.WriteString("  " + rest)
		}
	}
	set, err := Parse([]byte(b.String()), Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if set.Len() != 4 {
		t.Errorf("%d example rules, want 4", set.Len())
	}
	for _, tc := range []struct {
		msg  *gateway.MessageReceived
		rule string
	}{
		{portalMsg(nil), "portal-bauantrag"},
		{portalMsg(func(p *gateway.PortalFields) { p.Decision = gateway.PortalRejected }), "portal-abgelehnt"},
	} {
		if d := set.Decide(NewInput(tc.msg, Facts{})); strings.Join(d.Rules, ",") != tc.rule {
			t.Errorf("the example submission routes by %v, want %s", d.Rules, tc.rule)
		}
	}
}
