package pades

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// rawPDF lays out objects (bodies by number, in order) with a table at the
// end whose trailer is trailer.
func rawPDF(objs []string, trailer string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	x := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f\r\n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n\r\n", o)
	}
	fmt.Fprintf(&b, "trailer\n%s\nstartxref\n%d\n%%%%EOF\n", trailer, x)
	return b.Bytes()
}

func streamObj(dict string, data []byte) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// TestHostile feeds PDFs built to exhaust a reader: each must end in an
// error or a result, within the limits, never a panic or a hang.
func TestHostile(t *testing.T) {
	catalog := "<< /Type /Catalog /AcroForm << /Fields [2 0 R] >> >>"
	bomb := deflate(make([]byte, 8<<20))
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	loop := func() []byte {
		// Two tables whose /Prev point at each other.
		b := rawPDF([]string{catalog}, "<< /Size 2 /Root 1 0 R /Prev 9 >>")
		i := bytes.LastIndex(b, []byte("startxref"))
		x := string(b[i+10 : bytes.IndexByte(b[i+10:], '\n')+i+10])
		second := len(b)
		b = append(b, fmt.Sprintf("xref\n0 1\n0000000000 65535 f\r\ntrailer\n<< /Size 2 /Root 1 0 R /Prev %s >>\nstartxref\n%d\n%%%%EOF\n", x, second)...)
		return bytes.Replace(b, []byte("/Prev 9 "), []byte(fmt.Sprintf("/Prev %d", second)), 1)
	}()
	cases := map[string][]byte{
		"xref loop": loop,
		"deep nesting": rawPDF([]string{catalog, "<< /FT /Sig /V 3 0 R >>", "<< /Contents <00> /ByteRange " + deep + " >>"},
			"<< /Size 4 /Root 1 0 R >>"),
		"flate bomb object stream": rawPDF([]string{catalog, "<< /FT /Sig /V 3 0 R >>",
			streamObj("/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", bomb)}, "<< /Size 4 /Root 1 0 R >>"),
		"huge object stream count": rawPDF([]string{catalog, "<< /FT /Sig /V 3 0 R >>",
			streamObj("/Type /ObjStm /N 100000000 /First 4", []byte("1 0 "))}, "<< /Size 4 /Root 1 0 R >>"),
		"broken compression": rawPDF([]string{catalog, streamObj("/Type /XRef /W [1 2 1] /Size 3 /Filter /FlateDecode", []byte("not zlib at all"))},
			"<< /Size 3 /Root 1 0 R /XRefStm 60 >>"),
		"reference cycle":  rawPDF([]string{"2 0 R", "1 0 R"}, "<< /Size 3 /Root 1 0 R >>"),
		"field kids cycle": rawPDF([]string{"<< /Type /Catalog /AcroForm << /Fields [2 0 R] >> >>", "<< /Kids [2 0 R] /FT /Sig >>"}, "<< /Size 3 /Root 1 0 R >>"),
		"huge length":      rawPDF([]string{catalog, "<< /Length 99999999999 >>\nstream\nx\nendstream"}, "<< /Size 3 /Root 1 0 R >>"),
		"no header":        []byte("hello world"),
		"only header":      []byte("%PDF-1.7\n"),
		"empty":            {},
	}
	for name, pdf := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := Verify(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), Options{})
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if err == nil {
				for _, s := range res.Signatures {
					if len(s.Problems) == 0 && s.ParseErr == nil {
						t.Errorf("hostile signature without a problem: %+v", s.SignatureField)
					}
				}
			}
		})
	}
}

// TestFlateRatioCap: a stream expanding beyond the ratio cap is refused.
func TestFlateRatioCap(t *testing.T) {
	d := &Document{lim: Limits{}.withDefaults()}
	if _, err := d.inflate(deflate(make([]byte, 8<<20))); err == nil || !strings.Contains(err.Error(), "cap") {
		t.Errorf("8 MiB of zeros inflated: %v", err)
	}
	out, err := d.inflate(deflate([]byte("BT /F1 12 Tf ET")))
	if err != nil || string(out) != "BT /F1 12 Tf ET" {
		t.Errorf("small stream: %q %v", out, err)
	}
}

// TestPredictor: PNG Up rows as cross-reference streams use them.
func TestPredictor(t *testing.T) {
	in := []byte{2, 1, 0, 10, 2, 0, 0, 5}
	out, err := unpredict(in, Dict{"Predictor": int64(12), "Columns": int64(3)})
	if err != nil || !bytes.Equal(out, []byte{1, 0, 10, 1, 0, 15}) {
		t.Errorf("unpredict = %v, %v", out, err)
	}
	if _, err := unpredict([]byte{2, 1}, Dict{"Predictor": int64(12), "Columns": int64(3)}); err == nil {
		t.Error("partial row accepted")
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"D:20261202101500Z":       "2026-12-02T10:15:00Z",
		"D:20140815124401+02'00'": "2014-08-15T10:44:01Z",
		"D:20140815124401-05'30":  "2014-08-15T18:14:01Z",
		"D:2014":                  "2014-01-01T00:00:00Z",
		"20211123164935":          "2021-11-23T16:49:35Z",
	} {
		got, ok := ParseDate(in)
		if !ok || got.Format(time.RFC3339) != want {
			t.Errorf("ParseDate(%q) = %v %v, want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "D:", "D:20141315", "yesterday", "D:2014+x"} {
		if _, ok := ParseDate(in); ok {
			t.Errorf("ParseDate(%q) accepted", in)
		}
	}
}

// xrefStreamPDF lays out a catalog (1), an object stream (5) holding
// objects 2 and 3 with the given data, and a cross-reference stream that
// points objects 2 and 3 into it.
func xrefStreamPDF(objStm []byte, objStmDict string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	o1 := b.Len()
	b.WriteString("1 0 obj\n<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>\nendobj\n")
	o5 := b.Len()
	fmt.Fprintf(&b, "5 0 obj\n<< /Type /ObjStm %s /Length %d >>\nstream\n%s\nendstream\nendobj\n", objStmDict, len(objStm), objStm)
	ox := b.Len()
	be := func(v int) []byte { return []byte{byte(v >> 16), byte(v >> 8), byte(v)} }
	var rows []byte
	rows = append(rows, 0, 0, 0, 0, 0)
	rows = append(append(append(rows, 1), be(o1)...), 0)
	rows = append(rows, 2, 0, 0, 5, 0)
	rows = append(rows, 2, 0, 0, 5, 1)
	rows = append(rows, 0, 0, 0, 0, 0)
	rows = append(append(append(rows, 1), be(o5)...), 0)
	rows = append(append(append(rows, 1), be(ox)...), 0)
	fmt.Fprintf(&b, "6 0 obj\n<< /Type /XRef /Size 7 /W [1 3 1] /Root 1 0 R /Length %d >>\nstream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", len(rows), rows, ox)
	return b.Bytes()
}

// TestObjectStreams: objects inside an object stream are found through a
// cross-reference stream; an object stream that inflates past the caps, does
// not inflate at all or has a bad header ends in an error wrapping
// ErrMalformed, within the caps.
func TestObjectStreams(t *testing.T) {
	body := []byte("2 0 3 37 << /Type /Pages /Kids [] /Count 0 >> << /FT /Sig /T (S) >>")
	cases := []struct {
		name, dict string
		data       []byte
		wantErr    string
	}{
		{"plain", "/N 2 /First 9", body, ""},
		{"flate", "/N 2 /First 9 /Filter /FlateDecode", deflate(body), ""},
		{"bomb", "/N 2 /First 9 /Filter /FlateDecode", deflate(append(body, make([]byte, 64<<20)...)), "cap"},
		{"broken", "/N 2 /First 9 /Filter /FlateDecode", []byte("definitely not zlib"), "FlateDecode"},
		{"first past data", "/N 2 /First 99999", body, "/First"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pdf := xrefStreamPDF(tc.data, tc.dict)
			d, err := Open(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Signatures()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("signatures: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMalformed)):
				t.Errorf("signatures: %v, want an error about %q", err, tc.wantErr)
			}
			if tc.wantErr == "" {
				pages, err := d.ResolveDict(Ref{Num: 2}, 0)
				if err != nil || pages["Type"] != Name("Pages") {
					t.Errorf("object 2 from the object stream: %v, %v", pages, err)
				}
			}
		})
	}
}
