package officeapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name, body string
		status     int // 0: accepted
		msg        string
	}{
		{"one object", `{"body":"x"}`, 0, ""},
		{"white space after", "{\"body\":\"x\"} \r\n\t", 0, ""},
		{"trailing garbage", `{"body":"x"} garbage`, 400, "continues after"},
		{"second object", `{"body":"x"}{"body":"y"}`, 400, "continues after"},
		{"second value", `{"body":"x"} 1`, 400, "continues after"},
		{"trailing brace", `{"body":"x"}}`, 400, "continues after"},
		{"unknown field", `{"body":"x","bcc":"y"}`, 400, "unknown field"},
		{"wrong type", `{"body":1}`, 400, "malformed JSON"},
		{"empty", ``, 400, "empty"},
		{"truncated", `{"body":"x`, 400, "ended early"},
		{"over the cap", `{"body":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64"},
		{"garbage after the cap", `{"body":"x"}` + strings.Repeat(" ", 60) + "x", 413, "larger than 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v struct {
				Body string `json:"body"`
			}
			err := decodeBody(http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(tc.body)), 64), 64, &v)
			var be *bodyError
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.status == 0:
				if v.Body != "x" {
					t.Fatalf("decoded %+v", v)
				}
			case !errors.As(err, &be) || be.status != tc.status || !strings.Contains(be.msg, tc.msg):
				t.Fatalf("err %v, want %d with %q", err, tc.status, tc.msg)
			}
		})
	}
}

// rawRequest writes head and body to the test server over a plain TCP
// connection, half-closes it when closeWrite is set, and reads the status
// line and the error text of the answer.
func rawRequest(t *testing.T, e *testEnv, head, body string, closeWrite bool) (int, string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

func TestBodyOverRealSocket(t *testing.T) {
	e := newTestEnv(t)
	m := e.seed("m1", "a", "Antrag.pdf")
	head := func(length string) string {
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST /offices/a/messages/%s/replies HTTP/1.1\r\nHost: poststelle.test\r\n", m.Stream)
		b.WriteString("Authorization: Basic bWVtYmVyLWE6cHctbWVtYmVyLWE=\r\nContent-Type: application/json\r\n")
		fmt.Fprintf(&b, "Content-Length: %s\r\n", length)
		return b.String()
	}
	body := `{"body":"Danke sehr"}` // 21 bytes
	tests := []struct {
		name       string
		length     string
		body       string
		closeWrite bool
		status     int
		msg        string
	}{
		{"declares 10 GiB, sends 21 bytes", "10737418240", body, false, 413, "10737418240 bytes declared"},
		{"declares 100, sends 21 and stops", "100", body, true, 400, "ended early"},
		{"trailing garbage", fmt.Sprint(len(body) + 8), body + " garbage", false, 400, "continues after"},
		{"second object", fmt.Sprint(2 * len(body)), body + body, false, 400, "continues after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, text, took := rawRequest(t, e, head(tc.length), tc.body, tc.closeWrite)
			if status != tc.status || !strings.Contains(text, tc.msg) {
				t.Fatalf("%d %s, want %d with %q", status, text, tc.status, tc.msg)
			}
			if took > 5*time.Second {
				t.Fatalf("answered after %v", took)
			}
		})
	}
	// The same body, honestly declared, is an answer the office may send.
	status, text, _ := rawRequest(t, e, head(fmt.Sprint(len(body))), body, false)
	if status != http.StatusAccepted {
		t.Fatalf("honest request: %d %s", status, text)
	}
}

// FuzzDecodeBody: any body is either decoded or refused with 400 or 413,
// never a panic, and an accepted body is one value and nothing else.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"body":"x"}`, `{"body":"x"} garbage`, `{"body":"x"}{"body":"y"}`, `{"offices":["a"],"reason":"r"}`,
		`{"subject":"a\r\nBcc: x","body":"y"}`, ``, `{`, `[]`, `null`, `{"body":"x"}` + "\x00", `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req replyRequest
		err := decodeBody(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(b)), 256), 256, &req)
		if err == nil {
			if len(b) > 256 {
				t.Fatalf("accepted %d bytes over the cap", len(b))
			}
			return
		}
		var be *bodyError
		if !errors.As(err, &be) || (be.status != 400 && be.status != 413) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
