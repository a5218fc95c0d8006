package assembly

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/selfissued"
	"github.com/poststelle/poststelle/crypto/tsp"
)

func TestConfigTSAServerAndSeal(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"defaults", "tsa_server: {}\n", ""},
		{"bad listen", "tsa_server: {listen: nowhere}\n", "tsa_server.listen"},
		{"bad policy", "tsa_server: {policy: 1.x}\n", "tsa_server.policy"},
		{"huge arc", "tsa_server: {policy: 2.25.289537271698992784964807222654188335552}\n", "tsa_server.policy"},
		{"cert without key", "tsa_server: {cert_file: /etc/tsa.pem}\n", "cert_file and key_file"},
		{"key and token", "evidence: {seal: {cert_file: a, key_file: b, pkcs11: {module: m, token: t, pin_file: p, label: l}}}\n", "exclude each other"},
		{"seal incomplete", "evidence: {seal: {key_file: b}}\n", "evidence.seal"},
		{"seal", "evidence: {seal: {cert_file: /etc/seal.pem, key_file: /etc/seal.key}}\n", ""},
		{"unknown key", "tsa_server: {port: 3180}\n", "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "poststelle.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(f)
			if tc.want == "" && err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("LoadConfig: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The demo set-up runs a TSA and has a seal; a file without them has neither.
func TestDemoDefaults(t *testing.T) {
	demo, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if s := demo.TSAServer; s == nil || s.Listen != "127.0.0.1:3180" || s.Dir != filepath.Join("data", "tsa") ||
		s.Policy != DemoTSAPolicy || !s.selfIssued {
		t.Fatalf("demo tsa_server %+v", s)
	}
	if s := demo.Evidence.Seal; s == nil || s.CertFile != filepath.Join("data", "seal", "seal.pem") {
		t.Fatalf("demo seal %+v", s)
	}
	f := filepath.Join(t.TempDir(), "poststelle.yaml")
	if err := os.WriteFile(f, []byte("tenant: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if file.TSAServer != nil || file.Evidence.Seal != nil {
		t.Fatalf("a file without tsa_server got %+v, seal %+v", file.TSAServer, file.Evidence.Seal)
	}
}

// With tsa_server and its own certificate files the gateway answers RFC
// 3161 requests and, with no verification.tsas, stamps receipts with it;
// with verification.tsas those stay.
func TestBuildTSAServer(t *testing.T) {
	keys := t.TempDir()
	ca, err := selfissued.LoadOrCreateCA(filepath.Join(keys, "ca.pem"), filepath.Join(keys, "ca-key.pem"), "Site CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrIssue(filepath.Join(keys, "tsa.pem"), filepath.Join(keys, "tsa.key"), "Site TSA", selfissued.TSA); err != nil {
		t.Fatal(err)
	}
	section := "tsa_server: {listen: \"127.0.0.1:0\", policy: 1.3.6.1.4.1.32473.7, cert_file: " + filepath.Join(keys, "tsa.pem") +
		", key_file: " + filepath.Join(keys, "tsa.key") + "}\n"
	for _, tc := range []struct {
		name, extra string
		wantTSA     string
	}{
		{"local stamps receipts", "", LocalTSAName},
		{"configured TSAs stay", "verification: {tsas: [{name: other, url: \"http://127.0.0.1:9/\"}]}\n", "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, "office_api: {listen: \"127.0.0.1:0\"}\n"+section+tc.extra)
			g, err := Build(context.Background(), cfg, Deps{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if tsas := g.cfg.Verification.TSAs; len(tsas) != 1 || tsas[0].Name != tc.wantTSA {
				t.Fatalf("verification.tsas %+v", tsas)
			}
			if len(cfg.Verification.TSAs) > 0 && cfg.Verification.TSAs[0].Name == LocalTSAName {
				t.Fatal("Build changed the caller's configuration")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			defer func() { cancel(); <-done }()
			digest := sha256.Sum256([]byte("x"))
			c := &tsp.Client{TSAs: []tsp.TSA{{URL: "http://" + g.TSAAddr().String() + "/"}}}
			st, err := c.Timestamp(ctx, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			signer := st.Result.TSACertificate
			if st.Token.Info.Policy.String() != "1.3.6.1.4.1.32473.7" || signer == nil || signer.Subject.CommonName != "Site TSA" {
				t.Fatalf("policy %s, signer %v", st.Token.Info.Policy, signer)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "tsa", "serial")); err != nil {
				t.Fatalf("serial file: %v", err)
			}
		})
	}
}
