package servetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/gateway/offices"
)

// WriteKEK makes a key-encryption key for encryption at rest at path, as
// an operator would with `openssl rand -hex 32`: 64 hex digits from
// crypto/rand, mode 0600. serve makes one itself only for a local store;
// every node of an S3 cluster must be given the same file.
func WriteKEK(t testing.TB, path string) {
	t.Helper()
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Staff is an offices configuration with an admin: the office "demo" (as in
// the demo set-up, so queues and paths stay the same) with one member, a
// catch-all rule to it, and an admin who may erase contents.
type Staff struct {
	// OfficesFile and RulesFile are the files for offices: and
	// routing.rules.
	OfficesFile, RulesFile string
	// Member logs in to the office "demo" with HTTP Basic.
	Member offices.Credentials
	// AdminToken is the admin's bearer token.
	AdminToken string
}

// WriteStaff writes a Staff configuration into dir. Every node of a
// cluster reads the same files, so one login works everywhere.
func WriteStaff(t testing.TB, dir string) Staff {
	t.Helper()
	token, err := offices.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	pw, err := offices.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := offices.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	s := Staff{OfficesFile: filepath.Join(dir, "offices.yaml"), RulesFile: filepath.Join(dir, "rules.yaml"),
		Member: offices.Credentials{User: "sachbearbeitung", Password: pw}, AdminToken: token}
	conf := fmt.Sprintf("offices:\n  - id: %s\n    name: Demo office\n    members: [{user: %s, password_hash: %q}]\n"+
		"admins: [{user: admin1, token_hash: %q}]\n", offices.DemoOffice, s.Member.User, hash, offices.HashToken(token))
	rules := fmt.Sprintf("rules:\n  - id: alles\n    offices: [%s]\n", offices.DemoOffice)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string]string{s.OfficesFile: conf, s.RulesFile: rules} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Erase erases a message's contents through the admin endpoint of the
// office API at api (POST /admin/messages/{stream}/erase) and fails the
// test unless the gateway answers 200.
func (s Staff) Erase(t testing.TB, api, stream, reason string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"reason": reason})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+api+"/admin/messages/"+stream+"/erase", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("erase %s: %v", stream, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("erase %s at %s: %s %s", stream, api, resp.Status, answer)
	}
}
