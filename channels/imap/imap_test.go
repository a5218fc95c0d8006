package imap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, string, string, *gateway.MessageReceived) (gateway.Receipt, error) {
	return gateway.Receipt{}, nil
}

func TestConfigValidation(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POSTSTELLE_TEST_IMAP_PW", "secret")
	ok := MailboxConfig{Host: "imap.example.de", Username: "poststelle", PasswordFile: pw}
	tests := []struct {
		name string
		mod  func(*MailboxConfig)
		want string // "" for valid
	}{
		{"defaults", func(*MailboxConfig) {}, ""},
		{"env password", func(m *MailboxConfig) { m.PasswordFile, m.PasswordEnv = "", "POSTSTELLE_TEST_IMAP_PW" }, ""},
		{"plain on loopback", func(m *MailboxConfig) { m.Host, m.TLS = "127.0.0.1", "none" }, ""},
		{"plain elsewhere", func(m *MailboxConfig) { m.TLS = "none" }, "loopback"},
		{"no host", func(m *MailboxConfig) { m.Host = "" }, "host"},
		{"two passwords", func(m *MailboxConfig) { m.PasswordEnv = "X" }, "exactly one"},
		{"missing env", func(m *MailboxConfig) { m.PasswordFile, m.PasswordEnv = "", "POSTSTELLE_TEST_UNSET_VAR" }, "not set"},
		{"missing file", func(m *MailboxConfig) { m.PasswordFile = pw + ".missing" }, "password file"},
		{"bad tls", func(m *MailboxConfig) { m.TLS = "ssl" }, "tls"},
		{"bad done", func(m *MailboxConfig) { m.Done = "delete" }, "done"},
		{"done folder is folder", func(m *MailboxConfig) { m.DoneFolder = "inbox" }, "differ"},
	}
	for _, tc := range tests {
		mc := ok
		tc.mod(&mc)
		_, err := New(Config{Mailboxes: []MailboxConfig{mc}}, gateway.IntakeDeps{Intake: nopRecorder{}, Blobs: &blob.Store{}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: error reveals the password: %v", tc.name, err)
		}
	}
	w, err := New(Config{Mailboxes: []MailboxConfig{ok}}, gateway.IntakeDeps{Intake: nopRecorder{}, Blobs: &blob.Store{}})
	if err != nil {
		t.Fatal(err)
	}
	m := w.boxes[0].cfg
	if m.Port != 993 || m.Folder != "INBOX" || m.Done != DoneMove || m.Name != "poststelle@imap.example.de/INBOX" {
		t.Errorf("defaults %+v", m)
	}
	if _, err := New(Config{Mailboxes: []MailboxConfig{ok, ok}}, gateway.IntakeDeps{Intake: nopRecorder{}, Blobs: &blob.Store{}}); err == nil {
		t.Error("two mailboxes with the same name accepted")
	}
}

func TestSizeProblem(t *testing.T) {
	ref := func(n int64) *blob.Ref { return &blob.Ref{Size: n} }
	tests := []struct {
		name string
		f    fetched
		want bool
	}{
		{"sizes agree", fetched{ref: ref(42), size: 42}, false},
		{"no RFC822.SIZE", fetched{ref: ref(42), size: -1}, false},
		{"no body", fetched{size: 42}, false},
		{"shorter body", fetched{ref: ref(40), size: 42}, true},
		{"longer body", fetched{ref: ref(44), size: 42}, true},
	}
	for _, tc := range tests {
		if got := tc.f.sizeProblem(); (got != "") != tc.want {
			t.Errorf("%s: problem %q, want one: %v", tc.name, got, tc.want)
		}
	}
}
