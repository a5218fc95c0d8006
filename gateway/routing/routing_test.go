package routing

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

const sampleRules = `
rules:
  - id: spam
    match: {subject: '(?i)^\[spam\]'}
    triage: true
  - id: copy-bund
    match: {sender_domain: bund.de}
    offices: [registratur]
    continue: true
  - id: egvp-court
    match: {channel: egvp, xjustiz_recipient: [DE.Justiz.1234, DE.Justiz.5678]}
    offices: [rechtsamt]
  - id: portal-wohngeld
    match: {channel: portal, fitconnect_destination: d-1, fitconnect_service: "99123"}
    offices: [wohngeld]
  - id: schriftform
    match: {written_form_required: true, written_form_satisfied: false}
    offices: [pruefung]
  - id: bau-az
    description: Bauanträge nach Aktenzeichen
    match: {file_number: ['\bBA-\d{4}/\d{1,6}\b']}
    offices: [bauamt]
  - id: bauamt-mailbox
    match: {recipient: Bauamt@Stadt.Example}
    offices: [bauamt]
  - id: ordnung-domain
    match: {recipient_domain: ordnung.stadt.example, channel: [smtp, demail]}
    offices: [ordnungsamt]
  - id: vip
    match: {sender: [buergermeister@stadt.example], metadata: {priority: high}}
    offices: [buero-ob, bauamt]
`

func msg(mod func(*gateway.MessageReceived)) *gateway.MessageReceived {
	m := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "a@example.org"},
		To: []gateway.Address{{Address: "post@stadt.example"}}, Subject: "Anfrage"}
	if mod != nil {
		mod(m)
	}
	return m
}

func TestDecide(t *testing.T) {
	set, err := Parse([]byte(sampleRules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		m       *gateway.MessageReceived
		offices string
		rules   string
	}{
		{"nothing", msg(nil), "", ""},
		{"spam", msg(func(m *gateway.MessageReceived) { m.Subject = "[SPAM] buy"; m.To[0].Address = "bauamt@stadt.example" }), "", "spam"},
		{"recipient case", msg(func(m *gateway.MessageReceived) { m.To[0].Address = "BAUAMT@stadt.example" }), "bauamt", "bauamt-mailbox"},
		{"cc", msg(func(m *gateway.MessageReceived) { m.Cc = []gateway.Address{{Address: "bauamt@stadt.example"}} }), "bauamt", "bauamt-mailbox"},
		{"envelope", msg(func(m *gateway.MessageReceived) {
			m.Transport.Envelope = map[string]string{"rcptTo": "x@y.example, <Bauamt@stadt.example>"}
		}), "bauamt", "bauamt-mailbox"},
		{"file number in subject", msg(func(m *gateway.MessageReceived) { m.Subject = "Ihr Zeichen BA-2024/0815" }), "bauamt", "bau-az"},
		{"file number metadata", msg(func(m *gateway.MessageReceived) { m.Metadata = map[string]string{MetaFileNumbers: "XY-1; BA-2025/17"} }), "bauamt", "bau-az"},
		{"file number near miss", msg(func(m *gateway.MessageReceived) { m.Subject = "BA-2024/1234567" }), "", ""},
		{"subdomain", msg(func(m *gateway.MessageReceived) { m.To[0].Address = "x@team.ordnung.stadt.example" }), "ordnungsamt", "ordnung-domain"},
		{"subdomain wrong channel", msg(func(m *gateway.MessageReceived) {
			m.To[0].Address = "x@ordnung.stadt.example"
			m.Channel = gateway.ChannelPortal
		}), "", ""},
		{"egvp", msg(func(m *gateway.MessageReceived) {
			m.Channel = gateway.ChannelEGVP
			m.Metadata = map[string]string{MetaXJustizRecipient: "DE.Justiz.5678"}
		}), "rechtsamt", "egvp-court"},
		{"egvp other court", msg(func(m *gateway.MessageReceived) {
			m.Channel = gateway.ChannelEGVP
			m.Metadata = map[string]string{MetaXJustizRecipient: "DE.Justiz.9"}
		}), "", ""},
		{"portal", msg(func(m *gateway.MessageReceived) {
			m.Channel = gateway.ChannelPortal
			m.Metadata = map[string]string{MetaFITConnectDestination: "d-1", MetaFITConnectService: "99123"}
		}), "wohngeld", "portal-wohngeld"},
		{"portal other service", msg(func(m *gateway.MessageReceived) {
			m.Channel = gateway.ChannelPortal
			m.Metadata = map[string]string{MetaFITConnectDestination: "d-1", MetaFITConnectService: "1"}
		}), "", ""},
		{"written form missing", msg(func(m *gateway.MessageReceived) {
			m.Metadata = map[string]string{MetaWrittenFormRequired: "true"}
			m.Subject = "BA-2024/1"
		}), "pruefung", "schriftform"},
		{"written form present", msg(func(m *gateway.MessageReceived) {
			m.Metadata = map[string]string{MetaWrittenFormRequired: "true", MetaWrittenFormSatisfied: "true"}
			m.Subject = "BA-2024/1"
		}), "bauamt", "bau-az"},
		{"continue adds", msg(func(m *gateway.MessageReceived) { m.From.Address = "referat@sub.bund.de"; m.Subject = "BA-2024/1" }), "registratur,bauamt", "copy-bund,bau-az"},
		{"continue only", msg(func(m *gateway.MessageReceived) { m.From.Address = "referat@bund.de" }), "registratur", "copy-bund"},
		{"not a subdomain", msg(func(m *gateway.MessageReceived) { m.From.Address = "x@notbund.de" }), "", ""},
		{"sender and metadata", msg(func(m *gateway.MessageReceived) {
			m.From.Address = "Buergermeister@Stadt.Example"
			m.Metadata = map[string]string{"priority": "high"}
		}), "buero-ob,bauamt", "vip"},
		{"sender without metadata", msg(func(m *gateway.MessageReceived) { m.From.Address = "buergermeister@stadt.example" }), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := NewInput(tc.m, FactsFromMetadata(tc.m.Metadata))
			d := set.Decide(in)
			if strings.Join(d.Offices, ",") != tc.offices || strings.Join(d.Rules, ",") != tc.rules || d.Version != set.Version {
				t.Fatalf("decision %+v, want offices %q rules %q", d, tc.offices, tc.rules)
			}
			steps, e := set.Explain(in)
			if fmt.Sprint(e) != fmt.Sprint(d) {
				t.Fatalf("Explain decided %+v, Decide %+v", e, d)
			}
			matched := slices.IndexFunc(steps, func(s Step) bool { return s.Matched }) >= 0
			if len(steps) == 0 || (tc.rules != "") != matched {
				t.Fatalf("steps: %+v", steps)
			}
			switch p := d.Payload().(type) {
			case *gateway.MessageRouted:
				if p.Rule != strings.ReplaceAll(tc.rules, ",", ",") || p.DecidedBy != "rules" || p.RulesVersion != set.Version {
					t.Fatalf("payload %+v", p)
				}
			case *gateway.RoutingFailed:
				if tc.offices != "" || p.Reason == "" {
					t.Fatalf("payload %+v", p)
				}
			}
		})
	}
}

func TestVerificationFacts(t *testing.T) {
	set, _ := Parse([]byte(sampleRules+"  - id: unverified\n    match: {verified: false}\n    offices: [wartend]\n"), Options{})
	m := msg(func(m *gateway.MessageReceived) { m.Metadata = map[string]string{MetaWrittenFormRequired: "true"} })
	if d := set.Decide(NewInput(m, FactsFromMetadata(m.Metadata))); d.Offices[0] != "pruefung" {
		t.Fatalf("before verification: %+v", d)
	}
	f := FactsFromVerification(&gateway.SignaturesVerified{WrittenFormSatisfied: true}, m.Metadata)
	if d := set.Decide(NewInput(m, f)); d.Routed() {
		t.Fatalf("QES-signed message still sent to review: %+v", d)
	}
	if d := set.Decide(NewInput(msg(nil), Facts{})); strings.Join(d.Offices, ",") != "wartend" {
		t.Fatalf("verified: false: %+v", d)
	}
}

func TestParseErrors(t *testing.T) {
	known := func(o string) bool { return o == "a" }
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad regex", "rules: [{id: r, match: {subject: '(' }, offices: [a]}]", "subject"},
		{"bad file number", "rules: [{id: r, match: {file_number: ['[']}, offices: [a]}]", "file_number[0]"},
		{"unknown office", "rules: [{id: r, offices: [b]}]", `"b" is not a configured office`},
		{"no target", "rules: [{id: r}]", "offices"},
		{"both targets", "rules: [{id: r, offices: [a], triage: true}]", "offices"},
		{"dup id", "rules: [{id: r, offices: [a]}, {id: r, offices: [a]}]", "twice"},
		{"bad id", "rules: [{id: 'a b', offices: [a]}]", "id"},
		{"unknown field", "rules: [{id: r, offices: [a], match: {colour: red}}]", "colour"},
		{"bad address", "rules: [{id: r, offices: [a], match: {recipient: 'a b@c'}}]", "recipient"},
		{"bad domain", "rules: [{id: r, offices: [a], match: {sender_domain: 'a@b'}}]", "sender_domain"},
		{"long pattern", "rules: [{id: r, offices: [a], match: {subject: '" + strings.Repeat("a", MaxPatternLen+1) + "'}}]", "longer"},
		{"not yaml", "rules: [", "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), Options{KnownOffice: known})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if s, err := Parse(nil, Options{}); err != nil || s.Len() != 0 || s.Decide(NewInput(msg(nil), Facts{})).Routed() {
		t.Fatalf("empty file: %v", err)
	}
}

// randomRules makes n rules over a small vocabulary, so that rules and
// messages collide often.
func randomRules(r *rand.Rand, n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	for i := range n {
		fmt.Fprintf(&b, "  - id: r%d\n    match:\n", i)
		used := map[int]bool{}
		for len(used) == 0 || r.IntN(3) == 0 {
			k := r.IntN(9)
			if used[k] {
				continue
			}
			used[k] = true
			switch k {
			case 0:
				fmt.Fprintf(&b, "      channel: [%s]\n", pick("smtp", "egvp", "portal"))
			case 1:
				fmt.Fprintf(&b, "      recipient: [%s@%s]\n", pick("a", "b", "c"), pick("x.example", "y.example"))
			case 2:
				fmt.Fprintf(&b, "      recipient_domain: [%s]\n", pick("x.example", "example", "sub.x.example"))
			case 3:
				fmt.Fprintf(&b, "      sender: [%s@%s]\n", pick("s", "t"), pick("x.example", "z.example"))
			case 4:
				fmt.Fprintf(&b, "      sender_domain: [%s]\n", pick("x.example", "z.example", "example"))
			case 5:
				fmt.Fprintf(&b, "      subject: '%s'\n", pick("^Re", "(?i)antrag", "\\d{3}"))
			case 6:
				fmt.Fprintf(&b, "      file_number: ['%s']\n", pick(`AZ-\d+`, `BA-2024/\d+`))
			case 7:
				fmt.Fprintf(&b, "      xjustiz_recipient: [%s]\n", pick("j1", "j2"))
			case 8:
				fmt.Fprintf(&b, "      written_form_satisfied: %t\n", r.IntN(2) == 0)
			}
		}
		switch r.IntN(6) {
		case 0:
			b.WriteString("    triage: true\n")
		case 1:
			fmt.Fprintf(&b, "    offices: [o%d]\n    continue: true\n", r.IntN(4))
		default:
			fmt.Fprintf(&b, "    offices: [o%d]\n", r.IntN(4))
		}
	}
	return b.String()
}

func randomMessage(r *rand.Rand) *gateway.MessageReceived {
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	m := &gateway.MessageReceived{Channel: gateway.Channel(pick("smtp", "egvp", "portal")),
		From:    gateway.Address{Address: pick("s", "t", "u") + "@" + pick("x.example", "z.example", "q.z.example")},
		To:      []gateway.Address{{Address: pick("A", "b", "c") + "@" + pick("x.example", "Y.example", "sub.x.example")}},
		Subject: pick("Re: Antrag", "antrag 123", "AZ-77", "Hallo", "BA-2024/5"),
		Metadata: map[string]string{MetaXJustizRecipient: pick("j1", "j2", "j3"), MetaWrittenFormSatisfied: pick("true", "false"),
			MetaFileNumbers: pick("", "AZ-1")}}
	if r.IntN(2) == 0 {
		m.Cc = []gateway.Address{{Address: pick("a", "c") + "@y.example"}}
	}
	return m
}

// The index must never change a decision: Decide agrees with Explain, which
// walks every rule.
func TestIndexAgreesWithFullScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		set, err := Parse([]byte(randomRules(r, 40)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			in := NewInput(randomMessage(r), Facts{WrittenFormSatisfied: r.IntN(2) == 0})
			d := set.Decide(in)
			_, e := set.Explain(in)
			if fmt.Sprint(d) != fmt.Sprint(e) {
				t.Fatalf("index changed the decision: %+v vs full scan %+v", d, e)
			}
		}
	}
}

func TestEngineReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("rules: [{id: one, offices: [a]}]\n")
	var logs bytes.Buffer
	e, err := Load(path, Options{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.Rules().Version
	if changed, err := e.Reload(); changed || err != nil {
		t.Fatalf("reload of an unchanged file: %v %v", changed, err)
	}
	write("rules: [{id: two, offices: [b]}]\n")
	if changed, err := e.Reload(); !changed || err != nil || e.Rules().Version == v1 {
		t.Fatalf("reload: %v %v", changed, err)
	}
	v2 := e.Rules().Version
	write("rules: [{id: broken, match: {subject: '('}, offices: [b]}]\n")
	if _, err := e.Reload(); err == nil || e.Rules().Version != v2 {
		t.Fatalf("a broken file replaced the rules: %v", err)
	}
	write("")
	if _, err := e.Reload(); err == nil || e.Rules().Version != v2 {
		t.Fatalf("an empty file replaced the rules: %v", err)
	}

	// Watch picks up a change by mtime and logs a broken file.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Watch(ctx, 10*time.Millisecond) }()
	time.Sleep(30 * time.Millisecond)
	write("rules: [{id: three, offices: [c]}]\n")
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(e.Rules().Decide(NewInput(msg(nil), Facts{})).Rules, []string{"three"}) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "routing rules loaded") {
		t.Fatalf("logs: %s", logs.String())
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), Options{}, nil); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestHandlerRepeatsEarlierDecision(t *testing.T) {
	ctx := context.Background()
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(t.TempDir(), "log.db"), Signer: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recv := msg(func(m *gateway.MessageReceived) { m.To[0].Address = "bauamt@stadt.example" })
	ev, _ := gateway.NewReceived("", "smtp:1", recv)
	if _, err := l.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	set1, _ := Parse([]byte(sampleRules), Options{})
	h := Handler(HandlerConfig{Engine: Static(set1), Log: l})
	out, err := h.Handle(ctx, &ev, recv)
	if err != nil || out[0].(*gateway.MessageRouted).Offices[0] != "bauamt" {
		t.Fatalf("%v %v", out, err)
	}
	follow, _ := gateway.Follow(h.Name, &ev, 0, out[0])
	if _, err := l.Append(ctx, follow); err != nil {
		t.Fatal(err)
	}
	// The rules change; the event comes again: the first decision stands.
	set2, _ := Parse([]byte("rules: [{id: all, offices: [other]}]"), Options{})
	h2 := Handler(HandlerConfig{Engine: Static(set2), Log: l})
	out2, err := h2.Handle(ctx, &ev, recv)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := gateway.Follow(h.Name, &ev, 0, out2[0])
	if res, err := l.Append(ctx, again); err != nil || !res[0].Existing {
		t.Fatalf("repeated decision conflicts: %v", err)
	}
	// A new message gets the new rules.
	ev2, _ := gateway.NewReceived("", "smtp:2", recv)
	out3, _ := h2.Handle(ctx, &ev2, recv)
	if out3[0].(*gateway.MessageRouted).Offices[0] != "other" || out3[0].(*gateway.MessageRouted).RulesVersion != set2.Version {
		t.Fatalf("%+v", out3[0])
	}

	// VerifiedHandler reads the receipt from the stream.
	vh := VerifiedHandler(HandlerConfig{Engine: Static(set1), Log: l})
	sv := &gateway.SignaturesVerified{WrittenFormSatisfied: true}
	svEv, _ := gateway.Follow("verify", &ev, 0, sv)
	out4, err := vh.Handle(ctx, &svEv, sv)
	if err != nil || out4[0].(*gateway.MessageRouted).Offices[0] != "bauamt" {
		t.Fatalf("verified handler: %v %v", out4, err)
	}
}

func TestCatchAll(t *testing.T) {
	s, err := CatchAll("demo")
	if err != nil {
		t.Fatal(err)
	}
	d := s.Decide(NewInput(&gateway.MessageReceived{}, Facts{}))
	if !slices.Equal(d.Offices, []string{"demo"}) || d.Rules[0] != "demo-catch-all" || len(d.Version) != 64 {
		t.Fatalf("%+v", d)
	}
	if _, err := CatchAll("x]\n  - id: evil"); err == nil {
		t.Fatal("office id broke out of the YAML")
	}
}

func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(sampleRules), 0o600)
	eml := filepath.Join(dir, "m.eml")
	os.WriteFile(eml, []byte("x"), 0o600)
	parse := func(subject string) ParseFunc {
		return func(raw []byte) (*gateway.MessageReceived, error) {
			return msg(func(m *gateway.MessageReceived) { m.Subject = subject }), nil
		}
	}
	var out bytes.Buffer
	if code := TestCommand(&out, rules, eml, parse("BA-2024/1")); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{"  -  spam", "  +  bau-az", "decision:  routed to bauamt by bau-az", "version "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := TestCommand(&out, rules, eml, parse("nothing")); code != 1 || !strings.Contains(out.String(), "triage (no rule matched)") {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if code := TestCommand(&out, filepath.Join(dir, "none"), eml, parse("")); code != 2 {
		t.Fatalf("missing rules: exit %d", code)
	}
}

// TestReceiptFacts checks the facts a receipt establishes itself: a
// De-Mail's written form (only on the De-Mail channel), an EGVP message's
// secure route with VHN (only on the EGVP channel) and the channel's
// problems, which a rule sends to triage.
func TestReceiptFacts(t *testing.T) {
	rules := `
rules:
  - id: doubtful
    match: {problems: true}
    triage: true
  - id: schriftform
    match: {written_form_required: true, written_form_satisfied: false}
    offices: [pruefung]
  - id: rest
    offices: [poststelle]
`
	set, err := Parse([]byte(rules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	needs := map[string]string{MetaWrittenFormRequired: "true"}
	for _, tc := range []struct {
		name string
		m    *gateway.MessageReceived
		want string // office, or "triage"
	}{
		{"De-Mail with written form", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Metadata, m.DeMail = gateway.ChannelDeMail, needs, &gateway.DeMailEvidence{WrittenForm: true}
		}), "poststelle"},
		{"De-Mail without written form", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Metadata, m.DeMail = gateway.ChannelDeMail, needs, &gateway.DeMailEvidence{}
		}), "pruefung"},
		{"written form claimed off the De-Mail channel", msg(func(m *gateway.MessageReceived) {
			m.Metadata, m.DeMail = needs, &gateway.DeMailEvidence{WrittenForm: true}
		}), "pruefung"},
		{"EGVP from a beBPo with VHN", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Metadata, m.EGVP = gateway.ChannelEGVP, needs, &gateway.EGVPFields{Origin: "vhn", OriginMailbox: "bebpo"}
		}), "poststelle"},
		{"EGVP from a court with VHN", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Metadata, m.EGVP = gateway.ChannelEGVP, needs, &gateway.EGVPFields{Origin: "vhn", OriginMailbox: "justiz"}
		}), "pruefung"},
		{"EGVP without VHN", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Metadata, m.EGVP = gateway.ChannelEGVP, needs, &gateway.EGVPFields{Origin: "sender-signed", OriginMailbox: "bebpo"}
		}), "pruefung"},
		{"VHN claimed off the EGVP channel", msg(func(m *gateway.MessageReceived) {
			m.Metadata, m.EGVP = needs, &gateway.EGVPFields{Origin: "vhn", OriginMailbox: "bebpo"}
		}), "pruefung"},
		{"broken De-Mail", msg(func(m *gateway.MessageReceived) {
			m.Channel, m.Problems = gateway.ChannelDeMail, []string{"demail: integrity broken: body hash does not match"}
		}), "triage"},
		{"no problems", msg(nil), "poststelle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := set.Decide(NewInput(tc.m, FactsFromMetadata(tc.m.Metadata)))
			got := "triage"
			if d.Routed() {
				got = strings.Join(d.Offices, ",")
			}
			if got != tc.want {
				t.Fatalf("decided %s (%+v), want %s", got, d, tc.want)
			}
		})
	}
}
