package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The three readers take outside input; none may panic or accept more than
// MaxJSONSize, and whatever ReadJSON accepts must render.

func FuzzReadJSON(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"signatures":[{"id":"S","indication":"INDETERMINATE","subIndication":null,"qualification":"N/A"}]}`))
	f.Add([]byte(`{"signatures":null,"timestamps":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadJSON(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, w := range []func(*bytes.Buffer, *Report) error{
			func(b *bytes.Buffer, r *Report) error { return WriteJSON(b, r) },
			func(b *bytes.Buffer, r *Report) error { return WriteText(b, r) },
			func(b *bytes.Buffer, r *Report) error { return WriteHTML(b, r) },
		} {
			var out bytes.Buffer
			if err := w(&out, r); err != nil {
				t.Fatalf("accepted report does not render: %v", err)
			}
		}
	})
}

func FuzzParseDSS(f *testing.F) {
	for _, name := range []string{"at-signing/cades/dss-1892/detached_with_counter_sig.p7m", "at-signing/tsp/d-trust.tsr", "now/cades/malformed-cades.p7m"} {
		if b, err := os.ReadFile(filepath.Join(oracleGolden, name+".json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"validationTime":"2020-01-01T00:00:00Z","signatures":[{"signer":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDSS(bytes.NewReader(b))
		if err != nil {
			return
		}
		CompareDSS(fromDSS(d), d)
		CompareDSS(&Report{}, d)
	})
}

func FuzzParseKnownDifferences(f *testing.F) {
	if b, err := os.ReadFile("DIFFERENCES.md"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("| g | i | f | o | d | r |\n|---|---|---|---|---|---|\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		known, err := ParseKnownDifferences(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, k := range known {
			if k.Golden == "" || strings.ContainsRune(k.Golden, '|') {
				t.Fatalf("bad row accepted: %+v", k)
			}
		}
	})
}
