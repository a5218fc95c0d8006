package demail

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

func build(fields [][2]string) []byte {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	return []byte(b.String() + "\r\n" + body)
}

// with returns the normal fields with name's value replaced (value ""
// removes it) or, when name is absent, appended.
func with(name, value string) [][2]string {
	var out [][2]string
	found := false
	base := append(normalFields("yes"), [2]string{"X-de-mail-integrity", "v=1; a=sha256; h=From; bh=AAAA; b=AAAA"})
	for _, f := range base {
		if strings.EqualFold(f[0], name) {
			found = true
			if value == "" {
				continue
			}
			f[1] = value
		}
		out = append(out, f)
	}
	if !found {
		out = append(out, [2]string{name, value})
	}
	return out
}

// TestParseGolden pins the typed result of a complete normal De-Mail.
func TestParseGolden(t *testing.T) {
	h := Parse(stamp{fields: normalFields("no"), body: body, alg: "sha256"}.message(t))
	if !h.Clean() {
		t.Fatalf("problems: %v", h.Problems)
	}
	got, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "normal.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestParseProblems: every bad shape of a field is a problem and never a
// trusted value.
func TestParseProblems(t *testing.T) {
	long := strings.Repeat("x", MaxPrivateIDChars+1)
	cases := []struct {
		name    string
		msg     []byte
		problem string // substring of one Problem.String()
		check   func(*Headers) bool
	}{
		{"missing sender", build(with("X-de-mail-sender", "")), "x-de-mail-sender: missing", func(h *Headers) bool { return h.Sender == "" }},
		{"missing integrity", build(with("X-de-mail-integrity", "")), "x-de-mail-integrity: missing", nil},
		{"missing subject", build(with("Subject", "")), "subject: missing", nil},
		{"duplicate authoritative", build(append(normalFields("no"), [2]string{"X-de-mail-authoritative", "yes"})),
			"x-de-mail-authoritative: field repeated", func(h *Headers) bool { return !h.Options.Authoritative }},
		{"option in upper case", build(with("X-de-mail-authoritative", "YES")), "want \"yes\" or \"no\"",
			func(h *Headers) bool { return !h.Options.Authoritative }},
		{"oversized private id", build(with("X-de-mail-private-id", long)), "1025 characters",
			func(h *Headers) bool { return h.PrivateID == "" }},
		{"unknown message type", build(with("X-de-mail-message-type", "urgent")), "unknown message type", nil},
		{"notification type on a normal message", build(with("X-de-mail-notification-type", "other")), "not allowed", nil},
		{"account holder on a confirmation", build(with("X-de-mail-message-type", "confirmation of receipt")),
			"x-de-mail-account-holder: not allowed", nil},
		{"auth level", build(with("X-de-mail-auth-level", "medium")), "not among normal, high", func(h *Headers) bool { return h.AuthLevel == "" }},
		{"version", build(with("X-de-mail-version", "2.0")), "x-de-mail-version", nil},
		{"sender with display name", build(with("X-de-mail-sender", "Erika <erika@x.de-mail.example>")), "not an addr-spec", nil},
		{"provider not a domain", build(with("X-de-mail-originator-provider", "provider_1")), "fully qualified", nil},
		{"recipient group twice", build(with("X-de-mail-chosen-recipient", "to=a@x.example; to=b@x.example")), "used more than once",
			func(h *Headers) bool { return len(h.ChosenRecipients.To) == 0 }},
		{"recipients without group", build(with("X-de-mail-chosen-recipient", "a@x.example")), "before a to, cc or bcc", nil},
		{"unknown x-de-mail field", build(with("X-de-mail-urgency", "high")), "not defined", nil},
		{"certificate not base64", build(with("X-de-mail-signature-certificate", "%%%")), "not base64", nil},
		{"control character", build(with("X-de-mail-account-holder", "Erika\x01")), "control character", nil},
		{"header without colon", []byte("From erika\r\n" + string(build(with("", "")))), "malformed header line", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Parse(c.msg)
			var all []string
			for _, p := range h.Problems {
				all = append(all, p.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), c.problem) {
				t.Fatalf("problems %q, want one containing %q", all, c.problem)
			}
			if c.check != nil && !c.check(h) {
				t.Errorf("field trusted despite the problem: %+v", h)
			}
		})
	}
}

// TestParseValues reads the structured fields.
func TestParseValues(t *testing.T) {
	h := Parse(build(with("X-de-mail-chosen-recipient",
		`TO = "Amt; Bau" <bau@kreis.de-mail.example>, b@kreis.de-mail.example;c@kreis.de-mail.example; cc=d@x.de-mail.example`)))
	r := h.ChosenRecipients
	if strings.Join(r.To, " ") != "bau@kreis.de-mail.example b@kreis.de-mail.example c@kreis.de-mail.example" ||
		strings.Join(r.Cc, " ") != "d@x.de-mail.example" || r.Bcc != nil {
		t.Errorf("recipients %+v", r)
	}
	h = Parse(build(with("X-de-mail-message-type", "confirmation of dispatch")))
	if h.Type != TypeConfirmationOfDispatch || h.Type.Class() != ClassConfirmation {
		t.Errorf("type %q class %q", h.Type, h.Type.Class())
	}
	// Absent options default to "no" (clauses 3.1.2 to 3.1.6).
	h = Parse(build(with("X-de-mail-confirmation-of-receipt", "")))
	if h.Options.ConfirmReceipt || !h.Options.ConfirmDispatch {
		t.Errorf("options %+v", h.Options)
	}
}

// TestParseBounds: oversized sections and fields are cut off, reported,
// and cost no more than the caps.
func TestParseBounds(t *testing.T) {
	huge := []byte(strings.Repeat("X-Filler: "+strings.Repeat("a", 200)+"\r\n", MaxHeaderBytes/200+10) + "\r\n")
	if h := Parse(huge); !strings.Contains(problemText(h), "header section larger") {
		t.Errorf("no size problem: %s", problemText(h))
	}
	big := build(with("X-de-mail-account-holder", strings.Repeat("a", MaxFieldBytes)))
	if h := Parse(big); !strings.Contains(problemText(h), "limit") || h.AccountHolder != "" {
		t.Errorf("no field size problem: %s", problemText(h))
	}
	many := []byte(strings.Repeat("X-A: b\r\n", MaxFields+1) + "\r\n")
	if h := Parse(many); !strings.Contains(problemText(h), "more than") {
		t.Errorf("no field count problem")
	}
}

func problemText(h *Headers) string {
	var s []string
	for _, p := range h.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}
