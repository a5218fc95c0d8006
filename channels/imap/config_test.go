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
			Username: "poststelle@kreis.example", PasswordFile: "/run/secrets/imap-poststelle", Folder: "INBOX", Done: "move",
			DoneFolder: "Poststelle-Eingegangen", PollInterval: time.Minute, Tenant: "landkreis"},
		{Name: "bauamt", Host: "imap.kreis.example", Username: "bauamt@kreis.example", PasswordEnv: "POSTSTELLE_IMAP_BAUAMT",
			Done: "flag", DoneFlag: "$PoststelleReceived"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
