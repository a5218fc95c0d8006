package capture

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRecordsAndAnswers(t *testing.T) {
	s, err := Start(t.Context(), Config{MaxBody: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	resp, err := http.Post(s.URL()+"osci", "text/xml", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<osci:Code>"+DefaultFaultCode+"</osci:Code>")) {
		t.Errorf("answer %d %q, want 200 with the default fault", resp.StatusCode, body)
	}

	resp, err = http.Post(s.URL(), "text/xml", strings.NewReader(strings.Repeat("x", 65)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized request: status %d, want 413", resp.StatusCode)
	}

	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded, want 1 (the oversized one is not kept)", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/osci" || string(r.Body) != "hello" {
		t.Errorf("recorded %s %s %q", r.Method, r.Path, r.Body)
	}
	if !bytes.HasPrefix(r.Wire, []byte("POST /osci HTTP/1.1\r\n")) || !bytes.HasSuffix(r.Wire, []byte("\r\n\r\nhello")) {
		t.Errorf("wire form %q", r.Wire)
	}
}

func TestFaultKind(t *testing.T) {
	for _, tc := range []struct{ code, kind string }{
		{"9000", "soap:Server"}, {"9503", "soap:Server"}, {"9400", "soap:Client"}, {"9801", "soap:Client"},
	} {
		b := string(Fault(tc.code).Body)
		if !strings.Contains(b, "<faultcode>"+tc.kind+"</faultcode>") || !strings.Contains(b, "<osci:Code>"+tc.code+"</osci:Code>") {
			t.Errorf("Fault(%s) = %q, want %s", tc.code, b, tc.kind)
		}
		if !strings.HasPrefix(b, "\r\nMIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=") {
			t.Errorf("Fault(%s) lacks the OSCI MIME framing", tc.code)
		}
	}
}
