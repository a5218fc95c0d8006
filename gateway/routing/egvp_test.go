package routing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

const egvpRules = `
rules:
  - id: egvp-doubtful
    match: {channel: egvp, problems: true}
    triage: true
  - id: eeb-answers
    match: {xjustiz: {message_type: nachricht.eeb.zuruecklaufend}}
    offices: [zustellung]
  - id: vg-koblenz-bau
    description: Verwaltungsgericht Koblenz, Bausachen der Stadt
    match: {xjustiz: {recipient_code: [T6076], aktenzeichen: ["BA-*", "1 K */20.KO"]}}
    offices: [rechtsamt]
  - id: eeb-requests
    match: {xjustiz: {eeb_requested: true}}
    offices: [zustellung]
  - id: polizei-vhn
    match: {safe_id: DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31, origin: vhn}
    offices: [ordnungsamt]
  - id: unproven
    match: {channel: egvp, origin: [sender-signed, none]}
    triage: true
`

func egvpMsg(mod func(*gateway.EGVPFields)) *gateway.MessageReceived {
	e := &gateway.EGVPFields{SenderSafeID: "DE.Justiz.other", RecipientCode: "T6076", RecipientFileNumber: "1 K 519/20.KO",
		MessageType: "nachricht.gds.uebermittlungSchriftgutobjekte", Origin: "vhn"}
	if mod != nil {
		mod(e)
	}
	return &gateway.MessageReceived{Channel: gateway.ChannelEGVP, From: gateway.Address{Address: e.SenderSafeID}, EGVP: e}
}

func TestDecideEGVP(t *testing.T) {
	set, err := Parse([]byte(egvpRules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		m       *gateway.MessageReceived
		offices string
		rules   string
	}{
		{"court and Aktenzeichen", egvpMsg(nil), "rechtsamt", "vg-koblenz-bau"},
		{"Aktenzeichen of the sender, blanks and case folded", egvpMsg(func(e *gateway.EGVPFields) {
			e.RecipientFileNumber, e.SenderFileNumber = "", "ba-2026/\n 17"
		}), "rechtsamt", "vg-koblenz-bau"},
		{"other court", egvpMsg(func(e *gateway.EGVPFields) { e.RecipientCode = "R1101" }), "", ""},
		{"other Aktenzeichen", egvpMsg(func(e *gateway.EGVPFields) { e.RecipientFileNumber = "2 K 519/20.KO" }), "", ""},
		{"eEB answer", egvpMsg(func(e *gateway.EGVPFields) { e.MessageType = "nachricht.eeb.zuruecklaufend" }), "zustellung", "eeb-answers"},
		{"eEB request", egvpMsg(func(e *gateway.EGVPFields) { e.RecipientCode = ""; e.EEBRequested = true }), "zustellung", "eeb-requests"},
		{"SAFE-ID with VHN", egvpMsg(func(e *gateway.EGVPFields) {
			e.RecipientCode, e.SenderSafeID = "", "DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31"
		}), "ordnungsamt", "polizei-vhn"},
		{"SAFE-ID without VHN", egvpMsg(func(e *gateway.EGVPFields) {
			e.RecipientCode, e.SenderSafeID, e.Origin = "", "DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31", "sender-signed"
		}), "", "unproven"},
		{"problems first", func() *gateway.MessageReceived {
			m := egvpMsg(nil)
			m.Problems = []string{"xjustiz_nachricht.xml: no xjustizVersion declared"}
			return m
		}(), "", "egvp-doubtful"},
		{"not on EGVP", func() *gateway.MessageReceived {
			m := egvpMsg(nil)
			m.Channel = gateway.ChannelSMTP
			return m
		}(), "", ""},
		{"no EGVP section", func() *gateway.MessageReceived {
			m := egvpMsg(nil)
			m.EGVP = nil
			return m
		}(), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := NewInput(tc.m, Facts{})
			d := set.Decide(in)
			if got := strings.Join(d.Offices, ","); got != tc.offices || strings.Join(d.Rules, ",") != tc.rules {
				t.Errorf("offices %q rules %v, want %q %q", got, d.Rules, tc.offices, tc.rules)
			}
			if _, e := set.Explain(in); strings.Join(e.Rules, ",") != strings.Join(d.Rules, ",") {
				t.Errorf("explain decides %v, decide %v", e.Rules, d.Rules)
			}
		})
	}
}

func TestExplainEGVP(t *testing.T) {
	set, err := Parse([]byte(egvpRules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := set.Explain(NewInput(egvpMsg(func(e *gateway.EGVPFields) { e.RecipientCode = "R1101" }), Facts{}))
	want := map[string]string{
		"vg-koblenz-bau": `XJustiz recipient code "R1101" is not listed`,
		"eeb-answers":    `XJustiz message type "nachricht.gds.uebermittlungSchriftgutobjekte" is not listed`,
		"eeb-requests":   "eEB requested is false",
		"polizei-vhn":    `sender SAFE-ID "DE.Justiz.other" is not listed`,
	}
	for _, st := range steps {
		if w, ok := want[st.Rule]; ok && st.Why != w {
			t.Errorf("%s: %q, want %q", st.Rule, st.Why, w)
		}
	}
}

func TestParseEGVPErrors(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{`{rules: [{id: a, match: {origin: trusted}, triage: true}]}`, "not vhn, sender-signed or none"},
		{`{rules: [{id: a, match: {xjustiz: {aktenzeichen: ["  "]}}, triage: true}]}`, "xjustiz.aktenzeichen[0]"},
		{`{rules: [{id: a, match: {xjustiz: {gericht: T1}}, triage: true}]}`, "field gericht not found"},
	} {
		if _, err := Parse([]byte(tc.rules), Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.rules, err, tc.want)
		}
	}
}

// TestDeployEGVPExamples keeps the commented EGVP examples in deploy/rules.yaml
// valid: uncommented, they compile.
func TestDeployEGVPExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "# EGVP / beBPo")
	if !ok {
		t.Fatal("deploy/rules.yaml has no EGVP examples")
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
	if set.Len() != 5 {
		t.Errorf("%d example rules, want 5", set.Len())
	}
	d := set.Decide(NewInput(egvpMsg(nil), Facts{}))
	if strings.Join(d.Rules, ",") != "vg-koblenz-bauamt" {
		t.Errorf("the example court message routes by %v", d.Rules)
	}
}
