package assembly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// TestOpsListener: with ops.listen set, /healthz and /readyz answer and the
// intake counter of /metrics moves with a message taken in over SMTP.
func TestOpsListener(t *testing.T) {
	cfg := config(t, "office_api: {listen: \"127.0.0.1:0\"}\nops: {listen: \"127.0.0.1:0\"}\n")
	g, err := Build(context.Background(), cfg, Deps{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-g.Running()
	ops := "http://" + g.OpsAddr().String()
	waitFor(t, ops+"/readyz", 200, `"ready"`)
	waitFor(t, "http://"+g.OfficeAPIAddr().String()+"/readyz", 200, `"ready"`)
	get(t, ops+"/healthz", 200, `"ok"`)
	msg := "From: buerger@example.org\r\nTo: post@stadt.example\r\nSubject: Antrag\r\nMessage-ID: <ops-1@example.org>\r\n\r\nGuten Tag.\r\n"
	if err := smtp.SendMail(g.SMTPAddr().String(), nil, "buerger@example.org", []string{"post@stadt.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ops+"/metrics", 200, `poststelle_intake_messages_total{channel="smtp"} 1`)
	body := get(t, ops+"/metrics", 200, "")
	for _, want := range []string{`poststelle_blob_operation_seconds_count{op="put"}`, `poststelle_log_end_offset{partition="0"}`,
		`poststelle_projection_lag_events{`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func get(t *testing.T, url string, code int, want string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code || !strings.Contains(string(b), want) {
		t.Fatalf("GET %s: %d %q, want %d with %q", url, resp.StatusCode, b, code, want)
	}
	return string(b)
}

// waitFor polls url until it answers code with want in the body.
func waitFor(t *testing.T, url string, code int, want string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == code && strings.Contains(string(b), want) {
			return
		}
		last = fmt.Sprintf("%d %.300s", resp.StatusCode, b)
	}
	t.Fatalf("GET %s never answered %d with %q; last: %s", url, code, want, last)
}
