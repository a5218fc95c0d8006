package egvpsoap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
)

const (
	respHead = `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` +
		`<ns2:receiveMessageResponse xmlns:ns2="urn:de:bos-bremen:egvp:ws"><messageID>m</messageID>`
	respTail = `<returnCode>OK</returnCode></ns2:receiveMessageResponse></soap:Body></soap:Envelope>`
)

func serveBody(t *testing.T, write func(w io.Writer)) *egvpsoap.Client {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		write(w)
	}))
	t.Cleanup(hs.Close)
	return &egvpsoap.Client{Endpoint: hs.URL, HTTP: hs.Client()}
}

// TestReceiveStreams: the messageZIP arrives as written, folded or not, and in the
// qualified form some services write.
func TestReceiveStreams(t *testing.T) {
	data := make([]byte, 300_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	var folded strings.Builder
	for i := 0; i < len(b64); i += 76 {
		folded.WriteString(b64[i:min(i+76, len(b64))] + "\r\n")
	}
	for name, zip := range map[string]string{
		"plain":     "<messageZIP>" + b64 + "</messageZIP>",
		"folded":    "<messageZIP>\r\n" + folded.String() + "</messageZIP>",
		"attribute": `<messageZIP xmlns:xmime="http://www.w3.org/2005/05/xmlmime" xmime:contentType="application/octet-stream">` + b64 + "</messageZIP>",
		"qualified": "<ns2:messageZIP>" + b64 + "</ns2:messageZIP>",
	} {
		t.Run(name, func(t *testing.T) {
			c := serveBody(t, func(w io.Writer) { io.WriteString(w, respHead+zip+respTail) })
			var got bytes.Buffer
			n, err := c.ReceiveMessageTo(context.Background(), "u", "m", &got)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
				t.Errorf("got %d bytes, want %d, equal %v", n, len(data), bytes.Equal(got.Bytes(), data))
			}
		})
	}
}

func TestReceiveRefusesBadZIPText(t *testing.T) {
	for name, zip := range map[string]string{
		"entity":        "<messageZIP>UEsD&#13;BA==</messageZIP>",
		"after padding": "<messageZIP>UEsDBA==UEsD</messageZIP>",
		"left over":     "<messageZIP>UEsDBA</messageZIP>",
		"not base64":    "<messageZIP>UE!DBA==</messageZIP>",
		"two":           "<messageZIP>UEsDBA==</messageZIP><messageZIP>UEsDBA==</messageZIP>",
		"unclosed":      "<messageZIP>UEsDBA==",
		"cdata":         "<messageZIP><![CDATA[UEsDBA==]]></messageZIP>",
	} {
		t.Run(name, func(t *testing.T) {
			c := serveBody(t, func(w io.Writer) { io.WriteString(w, respHead+zip+respTail) })
			if _, err := c.ReceiveMessageTo(context.Background(), "u", "m", io.Discard); !errors.Is(err, egvpsoap.ErrFormat) {
				t.Errorf("err %v, want ErrFormat", err)
			}
		})
	}
}

// zeroReader yields n zero bytes without holding them.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestReceiveBoundedMemory: a 64 MiB message passes through with a small fraction
// of its size allocated, on the server's side and the client's together: the
// client never holds the message.
func TestReceiveBoundedMemory(t *testing.T) {
	const size = 64 << 20
	c := serveBody(t, func(w io.Writer) {
		io.WriteString(w, respHead+"<messageZIP>")
		enc := base64.NewEncoder(base64.StdEncoding, w)
		io.Copy(enc, &zeroReader{n: size})
		enc.Close()
		io.WriteString(w, "</messageZIP>"+respTail)
	})
	c.MaxResponseBytes = size * 2
	h := sha256.New()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := c.ReceiveMessageTo(context.Background(), "u", "m", h)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("%d bytes", n)
	}
	want := sha256.Sum256(make([]byte, size))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("the bytes differ")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("%d bytes allocated for a %d byte message", alloc, size)
	}
}
