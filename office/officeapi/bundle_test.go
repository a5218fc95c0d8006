package officeapi

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// fakeBundle stands in for evidencebundle.Builder.Build: the API's part is
// who may download which message's bundle, and how it is sent.
func fakeBundle(_ context.Context, tenant, stream string, w io.Writer) error {
	_, err := fmt.Fprintf(w, "bundle of %s/%s", tenant, stream)
	return err
}

func TestDownloadBundle(t *testing.T) {
	e := newTestEnv(t)
	e.seed("ma", "a", "a.pdf")
	e.seed("mb", "b", "b.pdf")
	member := creds{token: e.tokens["member-a"]}
	resp := e.do(member, "GET", "/offices/a/messages/"+e.streams["ma"]+"/bundle", "")
	body := readBody(t, resp)
	if resp.StatusCode != 200 || body != "bundle of default/"+e.streams["ma"] {
		t.Fatalf("bundle: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.etsi.asic-e+zip" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, ".asice") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length %q for %d bytes", cl, len(body))
	}
	// Another office's message is not reachable through one's own office.
	if resp := e.do(member, "GET", "/offices/a/messages/"+e.streams["mb"]+"/bundle", ""); resp.StatusCode != 404 {
		t.Fatalf("foreign bundle: %d", resp.StatusCode)
	}
}
