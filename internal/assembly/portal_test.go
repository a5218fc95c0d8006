package assembly

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/portal"
)

// TestPortalSection: the portal: section of the agreed form loads through the
// configuration loader, sizes and durations read; a wrong one is refused at
// load with the field named.
func TestPortalSection(t *testing.T) {
	good := "portal:\n  submission_api: http://127.0.0.1:1/v1\n  token_url: http://127.0.0.1:1/token\n  client_id: c\n" +
		"  client_secret_file: /run/secret\n  destination_id: 0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6\n" +
		"  decryption_key_file: /k.jwk\n  signing_key_file: /s.jwk\n  poll_interval: 30s\n  callback_listen: 127.0.0.1:0\n" +
		"  callback_secret_file: /run/cb\n  max_submission_size: 100MiB\n"
	for _, tc := range []struct {
		conf, err string
	}{
		{good, ""},
		{strings.Replace(good, "0b7c1a52-4e38-4a0a-9c1e-54f2a3b4c5d6", "dest", 1), "destination_id"},
		{strings.Replace(good, "100MiB", "lots", 1), `size "lots"`},
		{good + "  unknown_key: 1\n", "unknown_key"},
	} {
		path := filepath.Join(t.TempDir(), "poststelle.yaml")
		if err := os.WriteFile(path, []byte("data_dir: "+t.TempDir()+"\n"+tc.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err %v, want one naming %s", err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		p := ChannelSection[portal.Config](cfg, channels.PortalSection)
		if p == nil || p.MaxSubmissionSize != 100<<20 || p.PollInterval.Seconds() != 30 || p.CallbackListen != "127.0.0.1:0" {
			t.Fatalf("portal section %+v", p)
		}
	}
}
