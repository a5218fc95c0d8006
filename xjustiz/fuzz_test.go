package xjustiz

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/internal/corpus"
)

// FuzzParse: any input is read or refused without panic, and a message that reads is
// answered by an eEB that reads back.
func FuzzParse(f *testing.F) {
	for _, tc := range samples {
		data, err := os.ReadFile(filepath.Join(append([]string{corpus.Dir(f)}, tc.path...)...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(request3))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		a := AnswerTo(m, "0f0e0d0c-0b0a-4908-8706-050403020100", time.Unix(1, 0))
		a.Received = time.Unix(1, 0)
		out, err := BuildReceipt(a)
		if err != nil {
			return
		}
		if _, err := Parse(out, Limits{}); err != nil {
			t.Fatalf("the answer does not read back: %v\n%s", err, out)
		}
	})
}

// FuzzValidateSchema: any well-formed document is checked against every schema table
// without panic, with a bounded list of problems, and the same verdict twice.
func FuzzValidateSchema(f *testing.F) {
	f.Add([]byte(request3))
	f.Add([]byte(`<tns:nachricht.eeb.zuruecklaufend.2200007 xmlns:tns="http://www.xjustiz.de"><tns:nachrichtenkopf xjustizVersion="3.5.1"/><tns:fachdaten/></tns:nachricht.eeb.zuruecklaufend.2200007>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := xmldsig.Parse(data, xmldsig.Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		for _, v := range SchemaVersions() {
			p1, ok1 := validateSchema(schemaSets[v], doc.Root)
			p2, ok2 := validateSchema(schemaSets[v], doc.Root)
			if ok1 != ok2 || !slices.Equal(p1, p2) {
				t.Fatalf("%s: two verdicts on one document", v)
			}
			if len(p1) > maxSchemaProblems+1 {
				t.Fatalf("%s: %d problems, over the bound", v, len(p1))
			}
		}
	})
}
