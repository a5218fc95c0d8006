package main

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/demail"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/routing"
	"github.com/poststelle/poststelle/internal/assembly"
)

// deployDir holds the production example; its files are installed under
// /etc/poststelle.
const deployDir = "../../deploy"

// installed maps a path of the example configuration to the file in
// deploy/ that is installed there.
func installed(t *testing.T, path string) string {
	t.Helper()
	rel, ok := strings.CutPrefix(path, "/etc/poststelle/")
	if !ok {
		t.Fatalf("%s is not under /etc/poststelle", path)
	}
	return filepath.Join(deployDir, rel)
}

// TestDeployConfiguration loads deploy/poststelle.yaml, and the offices and
// rules files it names, through the loaders serve uses, and checks that it
// and the systemd unit agree, so that neither rots as the code moves.
func TestDeployConfiguration(t *testing.T) {
	cfg, err := loadConfig(filepath.Join(deployDir, "poststelle.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(cfg.DataDir, cfg.Keys.SigningKey); err != nil || !strings.HasPrefix(rel, "..") {
		t.Errorf("signing key %s lies inside the data directory %s", cfg.Keys.SigningKey, cfg.DataDir)
	}
	in := assembly.ChannelSection[smtp.Config](cfg, channels.SMTPSection)
	if in == nil {
		t.Fatal("no smtp section")
	}
	if cfg.WebUI == nil {
		t.Fatal("no web_ui section")
	}
	tls := map[string]string{"smtp": in.TLSCertFile, "office_api": cfg.OfficeAPI.TLSCertFile, "web_ui": cfg.WebUI.TLSCertFile,
		"office_imap": cfg.OfficeIMAP.CertFile, "smtp_submission": cfg.Submission.TLSCertFile}
	for section, cert := range tls {
		if cert == "" {
			t.Errorf("%s has no TLS certificate", section)
		}
	}

	ocfg, err := offices.LoadConfig(installed(t, cfg.Offices))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := offices.NewDirectory(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	known := func(id string) bool { _, ok := dir.Office(id); return ok }
	if _, err := routing.Load(installed(t, cfg.Routing.Rules), routing.Options{KnownOffice: known}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	out := assembly.ChannelSection[smtpout.Config](cfg, channels.SMTPOutSection)
	if out == nil || out.Maildir != "" || out.Relay.Username == "" || out.Relay.PasswordFile == "" || out.Relay.TLS != smtpout.TLSStartTLS {
		t.Fatalf("smtp_out is not an authenticated relay over STARTTLS: %+v", out)
	}
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smtpout.New(*out, smtpout.Deps{Blobs: bs}); err != nil {
		t.Fatal(err)
	}

	unit := unitSettings(t, filepath.Join(deployDir, "systemd", "poststelle.service"))
	if want := "/usr/local/bin/poststelle serve --config /etc/poststelle/poststelle.yaml"; unit["ExecStart"] != want {
		t.Errorf("ExecStart=%s, want %s", unit["ExecStart"], want)
	}
	if "/var/lib/"+unit["StateDirectory"] != cfg.DataDir {
		t.Errorf("StateDirectory=%s does not hold data_dir %s", unit["StateDirectory"], cfg.DataDir)
	}
	creds := unitCredentials(t, filepath.Join(deployDir, "systemd", "poststelle.service"))
	if !creds[out.Relay.PasswordFile] {
		t.Errorf("smtp_out password_file %s, but the unit loads only %v", out.Relay.PasswordFile, creds)
	}
	dm := assembly.ChannelSection[demail.Config](cfg, channels.DeMailSection)
	if dm == nil || dm.Qualification == nil || dm.Outbound == nil || len(dm.Providers) == 0 || len(dm.Providers[0].CRLFiles) == 0 {
		t.Fatalf("demail is not configured for written form and answers: %+v", dm)
	}
	for _, mb := range dm.Mailboxes {
		if mb.CertFile == "" || !creds[mb.PasswordFile] {
			t.Errorf("demail mailbox %s: client certificate %q, password_file %s not among the unit's credentials %v",
				mb.Name, mb.CertFile, mb.PasswordFile, creds)
		}
	}
	for _, k := range []string{"User", "Restart", "ExecReload", "ProtectSystem", "NoNewPrivileges"} {
		if unit[k] == "" {
			t.Errorf("the unit does not set %s", k)
		}
	}
}

// unitCredentials lists where the unit's LoadCredential= lines put their
// credentials.
func unitCredentials(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "LoadCredential="); ok {
			name, _, _ := strings.Cut(v, ":")
			out["/run/credentials/poststelle.service/"+name] = true
		}
	}
	return out
}

// unitSettings reads the first value of each key of a systemd unit file.
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if _, seen := m[k]; ok && !seen {
			m[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeployBlobExamples loads each commented-out blobs: example of
// deploy/poststelle.yaml, uncommented, through the configuration loader:
// the encryption settings it documents must be ones serve accepts.
func TestDeployBlobExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "poststelle.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var examples []string
	var cur []string
	for _, line := range append(strings.Split(string(data), "\n"), "") {
		switch {
		case line == "# blobs:":
			cur = []string{"blobs:"}
		case cur != nil && strings.HasPrefix(line, "#   "):
			cur = append(cur, strings.TrimPrefix(line, "# "))
		case cur != nil:
			examples = append(examples, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	if len(examples) != 2 {
		t.Fatalf("%d blobs: examples in deploy/poststelle.yaml, want the local and the S3 one", len(examples))
	}
	want := []struct{ backend, kek string }{{"", "/var/lib/poststelle/keys/blob-kek"}, {"s3", "/etc/poststelle/keys/blob-kek"}}
	for i, ex := range examples {
		f := filepath.Join(t.TempDir(), "poststelle.yaml")
		if err := os.WriteFile(f, []byte("data_dir: /var/lib/poststelle\n"+ex+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(f)
		if err != nil {
			t.Fatalf("example %d:\n%s\n%v", i, ex, err)
		}
		if cfg.Blobs.Backend != want[i].backend && !(want[i].backend == "" && cfg.Blobs.Backend == "local") ||
			cfg.Blobs.Encryption == "off" || cfg.Blobs.KEKFile != want[i].kek || cfg.Blobs.KeysAllowVersioning {
			t.Errorf("example %d: backend %q, encryption %q, kek_file %q, keys_allow_versioning %v", i, cfg.Blobs.Backend,
				cfg.Blobs.Encryption, cfg.Blobs.KEKFile, cfg.Blobs.KeysAllowVersioning)
		}
	}
}
