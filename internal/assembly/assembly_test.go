package assembly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// config writes a configuration with every listener on a free loopback
// port, plus extra YAML, and loads it as serve does.
func config(t *testing.T, extra string) *Config {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "poststelle.yaml")
	body := fmt.Sprintf("data_dir: %s\nsmtp: {listen: \"127.0.0.1:0\", accept_all: true}\noffice_imap: {listen: \"127.0.0.1:0\"}\nsmtp_submission: {listen: \"127.0.0.1:0\"}\n%s",
		filepath.Join(dir, "data"), extra)
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBuildRun: Build binds every listener before Run, Run serves until its
// context ends and then returns nil, and Close closes the stores.
func TestBuildRun(t *testing.T) {
	cfg := config(t, "office_api: {listen: \"127.0.0.1:0\"}\n")
	g, err := Build(context.Background(), cfg, Deps{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]net.Addr{"smtp": g.SMTPAddr(), "office api": g.OfficeAPIAddr(),
		"office imap": g.OfficeIMAPAddr(), "submission": g.SubmissionAddr()} {
		c, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatalf("%s is not bound after Build: %v", name, err)
		}
		c.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-g.Running():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not start")
	}
	resp, err := http.Get("http://" + g.OfficeAPIAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end after cancel")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Log().End(context.Background(), 0); err == nil {
		t.Fatal("the log still answers after Close")
	}
}

// TestBuildPortInUse: a busy port fails Build, naming the section, and a
// second Build on the same data directory succeeds.
func TestBuildPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config(t, "office_api: {listen: \"127.0.0.1:0\"}\n")
	cfg.Submission.Listen = busy.Addr().String()
	deps := Deps{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard}
	if g, err := Build(context.Background(), cfg, deps); err == nil {
		g.Close()
		t.Fatal("Build succeeded on a busy port")
	} else if !strings.Contains(err.Error(), "smtp_submission") {
		t.Fatalf("error does not name the section: %v", err)
	}
	cfg.Submission.Listen = "127.0.0.1:0"
	g, err := Build(context.Background(), cfg, deps)
	if err != nil {
		t.Fatalf("Build after the failed one: %v", err)
	}
	g.Close()
}
