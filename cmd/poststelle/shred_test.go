package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/assembly"
)

// TestShreddedMessage walks docs/retention.md on a running gateway with
// encryption at rest on (the default): a message's bytes are in no file of
// the data directory in plaintext; once an admin erases it, every download
// of its contents answers 410 Gone, while log verify --blobs passes, the
// bundle taken before the erasure still verifies, and a bundle taken after
// says the contents were erased and verifies too.
func TestShreddedMessage(t *testing.T) {
	t.Chdir(t.TempDir())
	member := offices.Credentials{User: "sachbearbeiter", Password: "pw-bauamt-1"}
	admin := offices.Credentials{User: "datenschutz", Password: "pw-admin-1"}
	writeShredConfig(t, member, admin)
	d := startDemoWith(t, func(c *assembly.Config) {
		c.Offices, c.Routing.Rules = "offices.yaml", "rules.yaml"
		c.Retention.Enabled = true
	})
	const marker = "Geheimnis-4711-Personalakte"
	sendMail(t, d.smtp, "buerger@example.org", "poststelle@kreis.example",
		"From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Antrag\r\nMessage-ID: <shred@example.org>\r\n\r\n"+marker+"\r\n")
	var list struct {
		Messages []struct {
			Stream string `json:"stream"`
		} `json:"messages"`
	}
	eventually(t, "the message in the office", func() bool {
		return d.call(t, member, "GET", "/offices/bauamt/messages", "", &list) == http.StatusOK && len(list.Messages) == 1
	})
	base := "/offices/bauamt/messages/" + list.Messages[0].Stream
	raw := get(t, d, member, base+"/raw")
	if raw.status != http.StatusOK || !bytes.Contains(raw.body, []byte(marker)) {
		t.Fatalf("raw before erasure: %d %q", raw.status, raw.body)
	}
	var before []byte
	eventually(t, "the bundle before erasure", func() bool {
		r := get(t, d, member, base+"/bundle")
		before = r.body
		return r.status == http.StatusOK
	})
	assertNoPlaintext(t, "data", marker)

	if code := d.call(t, member, "POST", "/admin/messages/"+list.Messages[0].Stream+"/erase", `{"reason":"Löschantrag nach Art. 17 DSGVO"}`, nil); code != http.StatusForbidden {
		t.Fatalf("an office member erasing: %d, want 403", code)
	}
	if code := d.call(t, admin, "POST", "/admin/messages/"+list.Messages[0].Stream+"/erase", `{"reason":"Löschantrag nach Art. 17 DSGVO"}`, nil); code != http.StatusOK {
		t.Fatalf("erase: %d", code)
	}
	eventually(t, "raw answering 410", func() bool { return get(t, d, member, base+"/raw").status == http.StatusGone })
	for _, p := range []string{"/parts/1", "/report"} {
		if r := get(t, d, member, base+p); r.status != http.StatusGone && r.status != http.StatusNotFound {
			t.Errorf("GET %s after erasure: %d %q, want 410", p, r.status, r.body)
		} else if bytes.Contains(r.body, []byte(marker)) {
			t.Errorf("GET %s after erasure holds the content", p)
		}
	}
	var status struct {
		Erased any `json:"erased"`
	}
	if code := d.call(t, admin, "GET", "/admin/messages/"+list.Messages[0].Stream+"/retention", "", &status); code != http.StatusOK || status.Erased == nil {
		t.Fatalf("retention status after erasure: %d %+v", code, status)
	}
	after := get(t, d, member, base+"/bundle")
	if after.status != http.StatusOK || bytes.Contains(after.body, []byte(marker)) {
		t.Fatalf("bundle after erasure: %d, holds the content: %v", after.status, bytes.Contains(after.body, []byte(marker)))
	}
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	code, out, errs := cli(t, "data", "log", "verify", "--blobs")
	t.Logf("log verify:\n%s", out)
	if code != exitOK || !strings.Contains(out, "blobs erased as ContentErased events record") {
		t.Fatalf("log verify --blobs after erasure: exit %d\n%s%s", code, out, errs)
	}
	os.WriteFile("before.asice", before, 0o600)
	os.WriteFile("after.asice", after.body, 0o600)
	for _, tc := range []struct{ file, want string }{
		{"before.asice", "ok     original"},
		{"after.asice", "ok     erased"},
	} {
		code, out, errs := cli(t, "data", "evidence", "verify", tc.file,
			"--key", filepath.Join("data", "keys", "gateway.pub"), "--trust", filepath.Join("data", "demo-ca", "ca.pem"))
		t.Logf("%s:\n%s", tc.file, out)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("evidence verify %s: exit %d, want %q\n%s%s", tc.file, code, tc.want, out, errs)
		}
	}
	assertNoPlaintext(t, "data", marker)
}

type answer struct {
	status int
	body   []byte
}

func get(t *testing.T, d *demoServer, c offices.Credentials, path string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.api+path, nil)
	req.SetBasicAuth(c.User, c.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, b}
}

// writeShredConfig writes an offices file (office bauamt with a member, an
// admin) and rules routing every e-mail to bauamt.
func writeShredConfig(t *testing.T, member, admin offices.Credentials) {
	t.Helper()
	hm, err := offices.HashPassword(member.Password)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := offices.HashPassword(admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"offices": []map[string]any{{"id": "bauamt", "name": "Bauordnungsamt",
			"retention": map[string]string{"period": "10y", "from": "end-of-year"},
			"members":   []map[string]string{{"user": member.User, "password_hash": hm}}}},
		"admins": []map[string]string{{"user": admin.User, "password_hash": ha}},
	}
	b, _ := json.Marshal(cfg) // JSON is YAML
	if err := os.WriteFile("offices.yaml", b, 0o600); err != nil {
		t.Fatal(err)
	}
	rules := "rules:\n  - id: alles\n    match: {channel: smtp}\n    offices: [bauamt]\n"
	if err := os.WriteFile("rules.yaml", []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertNoPlaintext fails when a file under dir holds needle: with
// encryption at rest, message contents are in no file in plaintext.
func assertNoPlaintext(t *testing.T, dir, needle string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(needle)) {
			t.Errorf("%s holds %q in plaintext", path, needle)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
