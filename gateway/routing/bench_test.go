package routing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

// thousandRules is a rule set shaped like a large authority's: mailboxes,
// partner domains, file-number and subject patterns (which no index
// covers), court recipients, and a catch-all at the end.
func thousandRules() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	n := 0
	add := func(match, office string) {
		fmt.Fprintf(&b, "  - id: r%04d\n    match: %s\n    offices: [%s]\n", n, match, office)
		n++
	}
	for i := range 350 {
		add(fmt.Sprintf("{recipient: [fb%d@stadt.example, fachbereich%d@stadt.example]}", i, i), fmt.Sprintf("fb%d", i))
	}
	for i := range 150 {
		add(fmt.Sprintf("{sender_domain: partner%d.example}", i), fmt.Sprintf("p%d", i))
	}
	for i := range 200 {
		add(fmt.Sprintf(`{file_number: ['\bA%d-\d{4}/\d{1,6}\b']}`, i), fmt.Sprintf("az%d", i))
	}
	for i := range 100 {
		add(fmt.Sprintf(`{subject: '(?i)thema %d\b'}`, i), fmt.Sprintf("t%d", i))
	}
	for i := range 100 {
		add(fmt.Sprintf("{channel: egvp, xjustiz_recipient: DE.Justiz.%d}", i), fmt.Sprintf("j%d", i))
	}
	for i := range 99 {
		add(fmt.Sprintf("{recipient_domain: amt%d.stadt.example, channel: [smtp, demail]}", i), fmt.Sprintf("d%d", i))
	}
	add("{}", "poststelle")
	return b.String()
}

func benchDecide(b *testing.B, m *gateway.MessageReceived, wantOffice string) {
	set, err := Parse([]byte(thousandRules()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if set.Len() != 1000 {
		b.Fatalf("%d rules", set.Len())
	}
	if d := set.Decide(NewInput(m, Facts{})); d.Offices[0] != wantOffice {
		b.Fatalf("decision %+v, want %s", d, wantOffice)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		set.Decide(NewInput(m, Facts{}))
	}
}

// BenchmarkDecide1000CatchAll is the worst case: no specific rule matches,
// so every unindexed rule (300 regular expressions) runs before the
// catch-all decides.
func BenchmarkDecide1000CatchAll(b *testing.B) {
	benchDecide(b, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"},
		To: []gateway.Address{{Address: "post@stadt.example"}}, Cc: []gateway.Address{{Address: "info@stadt.example"}},
		Subject: "Widerspruch gegen den Bescheid vom 3. März, Ihr Zeichen 4711"}, "poststelle")
}

// BenchmarkDecide1000Mailbox matches an indexed mailbox rule.
func BenchmarkDecide1000Mailbox(b *testing.B) {
	benchDecide(b, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"},
		To: []gateway.Address{{Address: "FB200@stadt.example"}}, Subject: "Antrag"}, "fb200")
}

// BenchmarkDecide1000FileNumber matches the 150th file-number pattern.
func BenchmarkDecide1000FileNumber(b *testing.B) {
	benchDecide(b, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"},
		To: []gateway.Address{{Address: "post@stadt.example"}}, Subject: "Ihr Zeichen A150-2024/12345, Nachreichung"}, "az150")
}

func BenchmarkParse1000(b *testing.B) {
	raw := []byte(thousandRules())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
