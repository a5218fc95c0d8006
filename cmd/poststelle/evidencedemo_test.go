package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway/offices"
)

// TestDemoEvidenceBundle walks docs/evidence.md on the demo set-up: a
// newcomer's message gets its receipt timestamp from the local TSA, the
// office API hands out its bundle sealed with the demo seal and with a
// head timestamped by the local TSA, and evidence verify passes it with the
// published key and the demo CA as the only trust anchor.
func TestDemoEvidenceBundle(t *testing.T) {
	t.Chdir(t.TempDir())
	d := startDemo(t)
	creds, err := readDemoCredentials(t)
	if err != nil {
		t.Fatal(err)
	}
	sendMail(t, d.smtp, "buerger@example.org", "poststelle@kreis.example",
		"From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Beweis\r\nMessage-ID: <bundle@example.org>\r\n\r\nGuten Tag\r\n")
	var stream string
	eventually(t, "TimestampApplied", func() bool {
		_, out, _ := cli(t, "data", "log", "replay", "--type", "TimestampApplied")
		if i := strings.Index(out, `"stream":"`); i >= 0 {
			stream = strings.SplitN(out[i+len(`"stream":"`):], `"`, 2)[0]
		}
		return stream != ""
	})
	var bundle []byte
	eventually(t, "the bundle download", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.api+"/offices/"+offices.DemoOffice+"/messages/"+stream+"/bundle", nil)
		req.SetBasicAuth(creds.User, creds.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false // not delivered to the demo office yet
		}
		bundle, _ = io.ReadAll(resp.Body)
		return true
	})
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	os.WriteFile("bundle.asice", bundle, 0o600)
	code, out, errs := cli(t, "data", "evidence", "verify", "bundle.asice",
		"--key", filepath.Join("data", "keys", "gateway.pub"), "--trust", filepath.Join("data", "demo-ca", "ca.pem"))
	if code != exitOK {
		t.Fatalf("evidence verify: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"ok     seal", "ok     head-timestamp    covers the head", "ok     receipt-timestamp covers the original bytes", "chained to a trust anchor"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
