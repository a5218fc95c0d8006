package imap

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestConfigYAML decodes the configuration as the README shows it.
func TestConfigYAML(t *testing.T) {
	const doc = `
max_message_bytes: 67108864
mailboxes:
  - name: poststelle
    host: imap.kreis.example
    port: 993
    tls: implicit
    ca_file: /etc/poststelle/imap-ca.pem
    cert_file: /etc/poststelle/imap-client.pem
    key_file: /etc/poststelle/imap-client.key
    username: poststelle@kreis.example
    password_file: /run/secrets/imap-poststelle
    folder: INBOX
    done: move
    done_folder: Poststelle-Eingegangen
    poll_interval: 1m
    tenant: landkreis
  - name: bauamt
    host: imap.kreis.example
    username: bauamt@kreis.example
    password_env: POSTSTELLE_IMAP_BAUAMT
    done: flag
    done_flag: $PoststelleReceived
`
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Config{MaxMessageBytes: 64 << 20, Mailboxes: []MailboxConfig{
		{Name: "poststelle", Host: "imap.kreis.example", Port: 993, TLS: "implicit", CAFile: "/etc/poststelle/imap-ca.pem",
			CertFile: "/etc/poststelle/imap-client.pem", KeyFile: "/etc/poststelle/imap-client.key", Username: "poststelle@kreis.example", PasswordFile: "/run/secrets/imap-poststelle", Folder: "INBOX", Done: "move",
			DoneFolder: "Poststelle-Eingegangen", PollInterval: time.Minute, Tenant: "landkreis"},
		{Name: "bauamt", Host: "imap.kreis.example", Username: "bauamt@kreis.example", PasswordEnv: "POSTSTELLE_IMAP_BAUAMT",
			Done: "flag", DoneFlag: "$PoststelleReceived"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestClientCertificateSettings checks the client certificate settings a
// provider gateway needs: both files or neither, and never on plain text.
func TestClientCertificateSettings(t *testing.T) {
	base := MailboxConfig{Host: "imap.example", Username: "u", PasswordEnv: "P"}
	for _, tc := range []struct {
		name string
		edit func(*MailboxConfig)
		want string
	}{
		{"both", func(m *MailboxConfig) { m.CertFile, m.KeyFile = "c.pem", "k.pem" }, ""},
		{"cert only", func(m *MailboxConfig) { m.CertFile = "c.pem" }, "set both cert_file and key_file"},
		{"key only", func(m *MailboxConfig) { m.KeyFile = "k.pem" }, "set both cert_file and key_file"},
		{"plain text", func(m *MailboxConfig) { m.Host, m.TLS, m.CertFile, m.KeyFile = "127.0.0.1", TLSNone, "c.pem", "k.pem" },
			"cert_file needs tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := base
			tc.edit(&mc)
			_, err := withMailboxDefaults(mc)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
