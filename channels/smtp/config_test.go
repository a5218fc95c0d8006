package smtp

import (
	"crypto/x509"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// TestConfigYAML decodes the configuration as the README shows it.
func TestConfigYAML(t *testing.T) {
	const doc = `
listen: 0.0.0.0:25
hostname: mx.kreis.example
max_message_bytes: 33554432
max_recipients: 50
max_connections: 20
tls_cert_file: /etc/poststelle/mx.crt
tls_key_file: /etc/poststelle/mx.key
require_tls: true
accept_all: false
accept_domains: [kreis.example, stadt.example]
accept_addresses: [poststelle@landkreis.example]
read_timeout: 5m
write_timeout: 2m
shutdown_timeout: 10s
`
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Config{Listen: "0.0.0.0:25", Hostname: "mx.kreis.example", MaxMessageBytes: 32 << 20, MaxRecipients: 50,
		MaxConnections: 20, TLSCertFile: "/etc/poststelle/mx.crt", TLSKeyFile: "/etc/poststelle/mx.key", RequireTLS: true,
		AcceptDomains: []string{"kreis.example", "stadt.example"}, AcceptAddresses: []string{"poststelle@landkreis.example"},
		ReadTimeout: 5 * time.Minute, WriteTimeout: 2 * time.Minute, ShutdownTimeout: 10 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestClientCAsNeedCertificate refuses to require client certificates
// without a server certificate to offer STARTTLS with.
func TestClientCAsNeedCertificate(t *testing.T) {
	blobs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Listen: "127.0.0.1:0", AcceptAll: true, ClientCAs: x509.NewCertPool()}, gateway.IntakeDeps{Intake: &gateway.Intake{}, Blobs: blobs})
	if err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Fatalf("err = %v, want the missing server certificate named", err)
	}
}
