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

// TestOpsPprof: ops.pprof serves a CPU profile on the ops listener, within
// the bound on its seconds; without it /debug/pprof/ is not there.
func TestOpsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("pprof=", on), func(t *testing.T) {
			cfg := config(t, fmt.Sprintf("office_api: {listen: \"127.0.0.1:0\"}\nops: {listen: \"127.0.0.1:0\", pprof: %v}\n", on))
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
			if !on {
				get(t, ops+"/debug/pprof/profile?seconds=1", http.StatusNotFound, "")
				return
			}
			// A CPU profile is gzipped protobuf.
			if body := get(t, ops+"/debug/pprof/profile?seconds=1", http.StatusOK, ""); !strings.HasPrefix(body, "\x1f\x8b") {
				t.Errorf("profile starts %q, want gzip", body[:min(len(body), 8)])
			}
			get(t, ops+"/debug/pprof/profile?seconds=121", http.StatusBadRequest, "seconds: 1 to 120")
			get(t, ops+"/debug/pprof/profile?seconds=x", http.StatusBadRequest, "seconds")
			get(t, ops+"/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile")
		})
	}
}

// TestOpsPprofConfig: ops.pprof needs a loopback ops listener.
func TestOpsPprofConfig(t *testing.T) {
	for body, want := range map[string]string{
		"ops: {pprof: true}\n":                             "ops.pprof: needs ops.listen",
		"ops: {listen: \"0.0.0.0:9464\", pprof: true}\n":   "ops.pprof: only on a loopback",
		"ops: {listen: \"10.1.2.3:9464\", pprof: true}\n":  "ops.pprof: only on a loopback",
		"ops: {listen: \"[::1]:9464\", pprof: true}\n":     "",
		"ops: {listen: \"localhost:9464\", pprof: true}\n": "",
		"ops: {listen: \"0.0.0.0:9464\"}\n":                "",
	} {
		_, err := LoadConfig(writeConfig(t, body))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", body, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want an error containing %q", body, err, want)
		}
	}
}
