package osci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func writeTestMessage(t *testing.T, headers bool, envelope string, parts ...OutPart) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	b := NewBoundary()
	if err := WriteMessage(&buf, b, headers, []byte(envelope), parts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), b
}

func TestMultipartRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("\r\n--MIME_boundary\r\n\x00\xff"), 50_000)
	env := "<?xml version=\"1.0\"?>\r\n<soap:Envelope/>"
	for _, headers := range []bool{true, false} {
		parts := []OutPart{
			{ContentID: "99 - Klage.pdf", Size: int64(len(big)), Body: bytes.NewReader(big)},
			{ContentID: "001_Ermittlungsübersicht.pdf", ContentType: "application/pdf", Size: 3, Body: strings.NewReader("abc")},
			{ContentID: "empty", Size: 0, Body: strings.NewReader("")},
		}
		msg, b := writeTestMessage(t, headers, env, parts...)
		var mp *Multipart
		var err error
		spool := DirSpool{Dir: t.TempDir()}
		if headers {
			mp, err = ReadMessage(context.Background(), bytes.NewReader(msg), Limits{}, spool)
		} else {
			mp, err = ReadBody(context.Background(), ContentType(b), bytes.NewReader(msg), Limits{}, spool)
		}
		if err != nil {
			t.Fatalf("headers %v: %v", headers, err)
		}
		if string(mp.Envelope) != env {
			t.Errorf("envelope %q", mp.Envelope)
		}
		want := [][]byte{big, []byte("abc"), nil}
		if len(mp.Parts) != len(want) {
			t.Fatalf("%d parts", len(mp.Parts))
		}
		for i, p := range mp.Parts {
			r, err := p.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if p.ContentID != parts[i].ContentID || !bytes.Equal(got, want[i]) || p.Size != int64(len(want[i])) {
				t.Errorf("part %d: <%s> %d bytes", i, p.ContentID, len(got))
			}
		}
		if mp.Part("001_Ermittlungsübersicht.pdf").ContentType != "application/pdf" || mp.Part("nope") != nil {
			t.Error("Part lookup")
		}
		if err := spool.Remove(mp.Spooled()...); err != nil {
			t.Error(err)
		}
	}
}

func TestWriteMessageRefuses(t *testing.T) {
	for name, p := range map[string]OutPart{
		"short body":      {ContentID: "a", Size: 5, Body: strings.NewReader("abc")},
		"long body":       {ContentID: "a", Size: 1, Body: strings.NewReader("abc")},
		"bad content id":  {ContentID: "a>\r\nX-Evil: 1", Size: 0, Body: strings.NewReader("")},
		"envelope id":     {ContentID: EnvelopeContentID, Size: 0, Body: strings.NewReader("")},
		"header in ctype": {ContentID: "a", ContentType: "text/plain\r\nX: y", Body: strings.NewReader("")},
	} {
		if err := WriteMessage(io.Discard, NewBoundary(), true, []byte("<x/>"), []OutPart{p}); err == nil {
			t.Errorf("%s: written", name)
		}
	}
}

// rawMessage builds a message by hand, for the framing errors a writer would not make.
func rawMessage(parts ...string) string {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=B; type=text/xml\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--B\r\n" + p + "\r\n")
	}
	b.WriteString("--B--\r\n")
	return b.String()
}

const soapPart = "Content-Type: text/xml; charset=UTF-8\r\nContent-ID: <osci@message>\r\n\r\n<x/>"

func TestMultipartRefuses(t *testing.T) {
	many := make([]string, 0, 12)
	many = append(many, soapPart)
	for i := 0; i < 11; i++ {
		many = append(many, "Content-ID: <p"+strings.Repeat("x", i)+">\r\n\r\ndata")
	}
	tests := []struct {
		name string
		msg  string
		lim  Limits
		want error
	}{
		{"not related", "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + soapPart + "\r\n--B--\r\n", Limits{}, ErrFormat},
		{"not xml", strings.Replace(rawMessage(soapPart), "type=text/xml", "type=text/html", 1), Limits{}, ErrFormat},
		{"no parts", "Content-Type: Multipart/Related; boundary=B\r\n\r\n--B--\r\n", Limits{}, ErrFormat},
		{"soap part second", rawMessage("Content-ID: <a>\r\n\r\nx", soapPart), Limits{}, ErrFormat},
		{"soap part not xml", rawMessage("Content-Type: text/plain\r\nContent-ID: <osci@message>\r\n\r\n<x/>"), Limits{}, ErrFormat},
		{"soap part latin-1", rawMessage(strings.Replace(soapPart, "UTF-8", "ISO-8859-1", 1)), Limits{}, ErrFormat},
		{"soap part base64", rawMessage("Content-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <osci@message>\r\n\r\nPHgvPg=="), Limits{}, ErrFormat},
		{"no content id", rawMessage(soapPart, "Content-Type: text/plain\r\n\r\nx"), Limits{}, ErrFormat},
		{"two content ids", rawMessage(soapPart, "Content-ID: <a>\r\nContent-ID: <b>\r\n\r\nx"), Limits{}, ErrFormat},
		{"bare content id", rawMessage(soapPart, "Content-ID: a\r\n\r\nx"), Limits{}, ErrFormat},
		{"duplicate content id", rawMessage(soapPart, "Content-ID: <a>\r\n\r\nx", "Content-ID: <a>\r\n\r\ny"), Limits{}, ErrFormat},
		{"content length short", rawMessage(soapPart, "Content-ID: <a>\r\nContent-Length: 2\r\n\r\nxyz"), Limits{}, ErrFormat},
		{"content length junk", rawMessage(soapPart, "Content-ID: <a>\r\nContent-Length: -1\r\n\r\nx"), Limits{}, ErrFormat},
		{"quoted-printable", rawMessage(soapPart, "Content-ID: <a>\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx"), Limits{}, ErrFormat},
		{"unterminated", strings.TrimSuffix(rawMessage(soapPart, "Content-ID: <a>\r\n\r\nx"), "--B--\r\n"), Limits{}, ErrFormat},
		{"message too large", rawMessage(soapPart, "Content-ID: <a>\r\n\r\n"+strings.Repeat("x", 4096)), Limits{MaxMessageBytes: 2048}, ErrTooLarge},
		{"envelope too large", rawMessage(soapPart + strings.Repeat(" ", 200)), Limits{MaxEnvelopeBytes: 100}, ErrTooLarge},
		{"attachment too large", rawMessage(soapPart, "Content-ID: <a>\r\n\r\n"+strings.Repeat("x", 300)), Limits{MaxAttachmentBytes: 200}, ErrTooLarge},
		{"too many parts", rawMessage(many...), Limits{MaxParts: 10}, ErrTooLarge},
		{"header too large", "Content-Type: Multipart/Related; boundary=B\r\nX-Pad: " + strings.Repeat("x", 300) + "\r\n\r\n--B--\r\n", Limits{MaxHeaderBytes: 200}, ErrTooLarge},
		{"part header too large", rawMessage(soapPart, "Content-ID: <a>\r\nX-Pad: "+strings.Repeat("x", 300)+"\r\n\r\nx"), Limits{MaxHeaderBytes: 200}, ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMessage(context.Background(), strings.NewReader(tc.msg), tc.lim, DirSpool{Dir: t.TempDir()})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMultipartAcceptsLibraryQuirks(t *testing.T) {
	// What the reference library writes: unquoted type=text/xml, "8-bit", Content-Length.
	msg := rawMessage(soapPart, "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8-bit\r\nContent-ID: <a b.pdf>\r\nContent-Length: 3\r\n\r\nxyz")
	mp, err := ReadMessage(context.Background(), strings.NewReader(msg), Limits{}, DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if p := mp.Part("a b.pdf"); p == nil || p.Size != 3 || p.TransferEncoding != "8-bit" {
		t.Fatalf("part %+v", p)
	}
}

func TestMultipartContextCancelled(t *testing.T) {
	msg, _ := writeTestMessage(t, true, "<x/>", OutPart{ContentID: "a", Size: 1 << 20, Body: bytes.NewReader(make([]byte, 1<<20))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadMessage(ctx, bytes.NewReader(msg), Limits{}, DirSpool{Dir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
}
