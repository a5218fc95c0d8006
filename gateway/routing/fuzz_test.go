package routing

import (
	"fmt"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

// FuzzPrefilter checks that the literal prefilter never rejects a text the
// expression matches.
func FuzzPrefilter(f *testing.F) {
	for _, s := range [][2]string{
		{`(?i)thema 1\b`, "THEMA 1"}, {`\bA1-\d{4}/\d+`, "zeichen A1-2024/5"}, {`(?i)kasse`, "\u212aasse"},
		{`(?i)straße`, "STRASSE"}, {`(?i)ss`, "\u017f\u017f"}, {`a(bc)+d`, "abcbcd"}, {`x{2,}yz`, "xxyz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, expr, text string) {
		p, err := newPattern(expr)
		if err != nil {
			return
		}
		if p.re.MatchString(text) && !p.match(text, fold(text)) {
			t.Fatalf("prefilter %q rejects %q, which %q matches", p.need, text, expr)
		}
	})
}

// FuzzParse feeds arbitrary rule files: no panics, and the index agrees
// with the full scan on a fixed set of messages.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleRules))
	f.Add([]byte(egvpRules))
	f.Add([]byte(portalRules))
	f.Add([]byte("rules: [{id: a, match: {}, offices: [x]}]"))
	f.Add([]byte("rules: [{id: a, match: {metadata: {k: ''}}, offices: [x]}]"))
	msgs := []*gateway.MessageReceived{
		msg(nil),
		msg(func(m *gateway.MessageReceived) {
			m.Channel = gateway.ChannelEGVP
			m.Metadata = map[string]string{MetaXJustizRecipient: "DE.Justiz.1234", "k": ""}
		}),
		msg(func(m *gateway.MessageReceived) { m.From.Address = "x@a.bund.de"; m.Subject = "BA-2024/1 [spam]" }),
		egvpMsg(func(e *gateway.EGVPFields) { e.EEBRequested = true; e.SenderFileNumber = "BA-2024/1" }),
		portalMsg(nil),
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		set, err := Parse(raw, Options{})
		if err != nil {
			return
		}
		for _, m := range msgs {
			in := NewInput(m, FactsFromMetadata(m.Metadata))
			d := set.Decide(in)
			if _, e := set.Explain(in); fmt.Sprint(d) != fmt.Sprint(e) {
				t.Fatalf("index %+v, full scan %+v", d, e)
			}
		}
	})
}

func TestRequiredLiteral(t *testing.T) {
	for expr, want := range map[string]string{
		`(?i)Thema 12\b`: "thema 12", `\bBA-\d{4}/\d+`: "ba-", `a|b`: "", `(abc)?x`: "x", `ä(xyz)+`: "xyz", `(?s).*`: "",
	} {
		p, err := newPattern(expr)
		if err != nil {
			t.Fatal(err)
		}
		if p.need != want {
			t.Errorf("%s: literal %q, want %q", expr, p.need, want)
		}
	}
}
