package xjustiz

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

// oracleCase is one document whose verdict the validator and xmllint must share.
type oracleCase struct {
	name string
	doc  []byte
}

// oracleBase are the valid documents the broken variants start from: the real 3.x
// samples and the eEBs BuildReceipt writes.
func oracleBase(t *testing.T) []oracleCase {
	t.Helper()
	read := func(elem ...string) []byte {
		data, err := os.ReadFile(corpus.Path(t, elem...))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	req, err := Parse([]byte(request3), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 2, 4, 8, 30, 0, 0, time.FixedZone("", 3600))
	build := func(modify func(*Answer)) []byte {
		a := AnswerTo(req, "5f0e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b", created)
		modify(&a)
		out, err := BuildReceipt(a)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	req36, err := Parse(request36(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	build36 := func(modify func(*Answer)) []byte {
		a := AnswerTo(req36, "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", created)
		modify(&a)
		out, err := BuildReceipt(a)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return []oracleCase{
		{"request 3.6.2", request36(t)},
		{"eEB 3.6.2 acknowledged", build36(func(a *Answer) { a.Received = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) })},
		{"eEB 3.6.2 refused", build36(func(a *Answer) { a.Refusal = &Refusal{Code: RefusalNotParty, Reason: "nicht beteiligt"} })},
		{"eEB 3.6.2 no recipient Aktenzeichen", build36(func(a *Answer) {
			a.Received = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
			a.RecipientFileNumber = ""
		})},
		{"sample 3.2.1", read("egvp", "Messages", "Testnachricht_xjustiz321", "attachments", "xjustiz_nachricht.xml")},
		{"sample 3.4.1", read("fitconnect", "fit-connect-adapter", "xjustiz_nachricht.xml")},
		{"eEB acknowledged", build(func(a *Answer) { a.Received = time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC) })},
		{"eEB refused", build(func(a *Answer) { a.Refusal = &Refusal{Code: RefusalSignatures, Reason: "Signatur <ungültig> & fehlt"} })},
		{"eEB representative", build(func(a *Answer) {
			a.Received = time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
			a.DeviatingRecipient = true
		})},
	}
}

// breakages turn a valid document into one its schema refuses: the first match of
// the pattern is replaced (a document without a match is left out of that case).
var breakages = []struct{ name, pattern, repl string }{
	{"no erstellungszeitpunkt", `<tns:erstellungszeitpunkt>[^<]*</tns:erstellungszeitpunkt>`, ""},
	{"bad dateTime", `<tns:erstellungszeitpunkt>20`, "<tns:erstellungszeitpunkt>x20"},
	{"month 13", `<tns:erstellungszeitpunkt>(\d{4})-\d\d`, "<tns:erstellungszeitpunkt>$1-13"},
	{"hour 25", `(<tns:erstellungszeitpunkt>[0-9-]{10}T)\d\d`, "${1}25"},
	{"id not a UUID", `<tns:eigeneNachrichtenID>`, "<tns:eigeneNachrichtenID>z"},
	{"own id missing", `<tns:eigeneNachrichtenID>[^<]*</tns:eigeneNachrichtenID>`, ""},
	{"foreign id twice", `</tns:fremdeNachrichtenID>`, "</tns:fremdeNachrichtenID><tns:fremdeNachrichtenID>6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3</tns:fremdeNachrichtenID>"},
	{"ids out of order", `<tns:auswahl_absender>`, "<tns:eigeneNachrichtenID>6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3</tns:eigeneNachrichtenID><tns:auswahl_absender>"},
	{"unknown header element", `<tns:erstellungszeitpunkt>`, "<tns:geheim>1</tns:geheim><tns:erstellungszeitpunkt>"},
	{"no sender", `(?s)<tns:auswahl_absender>.*?</tns:auswahl_absender>`, ""},
	{"empty auswahl_empfaenger", `(?s)<tns:auswahl_empfaenger>.*?</tns:auswahl_empfaenger>`, "<tns:auswahl_empfaenger></tns:auswahl_empfaenger>"},
	{"two senders", `(?s)(<tns:auswahl_absender>\s*)(<tns:absender\.sonstige>[^<]*</tns:absender\.sonstige>)`, "$1$2$2"},
	{"no listVersionID", ` listVersionID="3\.\d"`, ""},
	{"wrong xjustizVersion", `xjustizVersion="3\.`, `xjustizVersion="9.`},
	{"undeclared attribute", `<tns:nachrichtenkopf `, `<tns:nachrichtenkopf geheim="1" `},
	{"text in the header", `<tns:erstellungszeitpunkt>`, "Text<tns:erstellungszeitpunkt>"},
	{"code in the XJustiz namespace", `(<tns:(?:absender|empfaenger)\.gericht[^>]*>\s*)<code>([^<]*)</code>`, "$1<tns:code>$2</tns:code>"},
	{"no grunddaten", `<tns:grunddaten/>`, ""},
	{"bad date", `<tns:empfangsbestaetigung>2026-02-03`, "<tns:empfangsbestaetigung>2026-02-30"},
	{"both answers", `</tns:empfangsbestaetigung>`, "</tns:empfangsbestaetigung><tns:stoerungsmeldung><tns:stoerungsID><code>1</code></tns:stoerungsID></tns:stoerungsmeldung>"},
	{"refusal code 7", `<code>3</code>`, "<code>7</code>"},
	{"stoerungs-id version 2.0", `<tns:stoerungsID listVersionID="2.1">`, `<tns:stoerungsID listVersionID="2.0">`},
	{"bad boolean", `<tns:zustellungsempfaenger.abweichend>true`, "<tns:zustellungsempfaenger.abweichend>ja"},
	{"no fachdaten", `(?s)<tns:fachdaten>.*</tns:fachdaten>`, ""},
	{"after fachdaten", `</tns:fachdaten>`, "</tns:fachdaten><tns:grunddaten/>"},
	// The 3.6/3.7 Nachrichtenkopf.
	{"no absender", `(?s)<tns:absender>.*?</tns:absender>`, ""},
	{"no partner information", `(?s)(<tns:empfaenger>\s*)<tns:informationen>.*?</tns:informationen>`, "$1"},
	{"empty kommunikationspartner", `(?s)<tns:auswahl_kommunikationspartner>.*?</tns:auswahl_kommunikationspartner>`, "<tns:auswahl_kommunikationspartner/>"},
	{"partner prefixed as in 3.5", `<tns:gericht (listVersionID="[^"]*")><code>([^<]*)</code></tns:gericht>`, `<tns:absender.gericht $1><code>$2</code></tns:absender.gericht>`},
	{"no recipient Aktenzeichen", `(?s)(<tns:empfaenger>.*?)<tns:auswahl_aktenzeichen>.*?</tns:auswahl_aktenzeichen>`, "$1"},
	{"two recipient Aktenzeichen", `(?s)(<tns:empfaenger>.*?</tns:aktenzeichen.freitext>)`, "$1<tns:aktenzeichen.neu>true</tns:aktenzeichen.neu>"},
	{"aktenzeichen.neu false", `<tns:aktenzeichen.unbekannt>true`, "<tns:aktenzeichen.unbekannt>false"},
	{"own id under empfaenger", `(?s)(<tns:empfaenger>.*?)(</tns:empfaenger>)`, "${1}<tns:eigeneNachrichtenID>6e1f0a2b-3c4d-4e5f-a6b7-c8d9e0f1a2b3</tns:eigeneNachrichtenID>$2"},
	{"no herstellerinformation", `(?s)<tns:herstellerinformation>.*?</tns:herstellerinformation>`, ""},
	{"herstellerinformation without version", `<tns:version>[^<]*</tns:version>`, ""},
	{"flat Aktenzeichen in the 3.6 header", `(<tns:nachrichtenkopf[^>]*>\s*)(<tns:erstellungszeitpunkt>)`, "${1}<tns:aktenzeichen.absender>1</tns:aktenzeichen.absender>$2"},
	{"partner id not a UUID", `(<tns:absender>(?s:.*?)<tns:eigeneNachrichtenID>)`, "${1}z"},
}

// breakOnce replaces the first match of pattern, reporting whether there was one.
func breakOnce(doc []byte, pattern, repl string) ([]byte, bool) {
	re := regexp.MustCompile(pattern)
	loc := re.FindSubmatchIndex(doc)
	if loc == nil {
		return nil, false
	}
	out := append([]byte{}, doc[:loc[0]]...)
	out = re.Expand(out, []byte(repl), doc, loc)
	return append(out, doc[loc[1]:]...), true
}

// TestSchemaAgainstXmllint has xmllint validate each document against the real XSDs
// of its version and requires the validator to reach the same verdict: the samples
// and written eEBs valid, every broken variant refused.
func TestSchemaAgainstXmllint(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is not installed: run test/setup.sh")
	}
	dir := t.TempDir()
	var cases []oracleCase
	for _, base := range oracleBase(t) {
		cases = append(cases, base)
		for _, b := range breakages {
			if doc, ok := breakOnce(base.doc, b.pattern, b.repl); ok {
				cases = append(cases, oracleCase{base.name + ": " + b.name, doc})
			}
		}
	}
	valid, refused := 0, 0
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.doc, Limits{})
			if err != nil {
				t.Fatalf("not parsed: %v", err)
			}
			version := m.SchemaChecked
			if version == "" {
				version = oracleVersion(tc.doc)
			}
			file := filepath.Join(dir, fmt.Sprintf("case%03d.xml", i))
			if err := os.WriteFile(file, tc.doc, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", oracleSchema(t, version, tc.doc), file).CombinedOutput()
			lintValid := err == nil
			var ours []string
			for _, p := range m.Problems {
				if strings.HasPrefix(p, "schema XJustiz ") {
					ours = append(ours, p)
				}
			}
			oursValid := m.SchemaChecked != "" && len(ours) == 0
			if lintValid != oursValid {
				t.Errorf("xmllint valid=%v, validator valid=%v (checked %q)\nxmllint: %s\nvalidator: %q\n%s", lintValid, oursValid, m.SchemaChecked, out, ours, tc.doc)
			}
			if version == "3.6.2" {
				// The 3.7.0 package keeps the 3.6.2 Nachrichtenkopf and eEB: the same verdict.
				out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", oracleSchema(t, "3.7.0", tc.doc), file).CombinedOutput()
				if (err == nil) != lintValid {
					t.Errorf("xmllint 3.7.0 valid=%v, 3.6.2 valid=%v\n%s", err == nil, lintValid, out)
				}
			}
			if lintValid {
				valid++
			} else {
				refused++
			}
		})
	}
	t.Logf("%d documents: %d valid, %d refused", len(cases), valid, refused)
	if valid < 5 || refused < 50 {
		t.Errorf("only %d valid and %d refused documents compared", valid, refused)
	}
}

// oracleVersion is the version a document without a schema table was written in
// (its xjustizVersion was the thing broken): the schemaLocation and the samples tell.
func oracleVersion(doc []byte) string {
	switch {
	case bytes.Contains(doc, []byte("<tns:absender>")) || bytes.Contains(doc, []byte("nachrichten_3_2.xsd")):
		return "3.6.2"
	case bytes.Contains(doc, []byte("Testnachricht")) || bytes.Contains(doc, []byte("2021-12-08")):
		return "3.2.1"
	case bytes.Contains(doc, []byte("din-spec-91379")):
		return "3.4.1"
	}
	return "3.5.1"
}

func oracleSchema(t *testing.T, version string, doc []byte) string {
	t.Helper()
	pattern := "xjustiz_0005_nachrichten_*.xsd"
	if bytes.Contains(doc, []byte("nachricht.eeb.zuruecklaufend.2200007")) {
		pattern = "xjustiz_2200_eeb_*.xsd"
	}
	files, err := filepath.Glob(filepath.Join(corpus.Path(t, "xjustiz", "xsd", version), pattern))
	if err != nil || len(files) != 1 {
		t.Fatalf("schema %s of %s: %v %v", pattern, version, files, err)
	}
	return files[0]
}

// TestWrittenIsSchemaValid: what the gateway itself writes to a court (the golden
// answers and eEBs in XJustiz 3.5.1) is valid against the published schema as
// xmllint reads it, including the parts inside schriftgutobjekte that the
// validator does not check.
func TestWrittenIsSchemaValid(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is not installed: run test/setup.sh")
	}
	for _, name := range []string{"reply-to-3.xml", "reply-to-2.xml", "eeb-acknowledged-3.xml", "eeb-refused-3.xml"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("testdata", name)
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", oracleSchema(t, "3.5.1", doc), file).CombinedOutput()
			if err != nil {
				t.Errorf("xmllint refuses %s: %v\n%s", name, err, out)
			}
		})
	}
}

// request36 is the 3.6.2 request written for these tests (valid by xmllint against
// the 3.6.2 and the 3.7.0 schemas).
func request36(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "request-3.6.2.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
