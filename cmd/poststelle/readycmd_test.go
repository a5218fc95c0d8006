package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

func TestReadyURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{":9464", "http://127.0.0.1:9464/readyz"},
		{"0.0.0.0:9464", "http://127.0.0.1:9464/readyz"},
		{"[::]:9464", "http://127.0.0.1:9464/readyz"},
		{"127.0.0.2:1", "http://127.0.0.2:1/readyz"},
		{"[::1]:9464", "http://[::1]:9464/readyz"},
		{"", ""},
		{"9464", ""},
	}
	for _, tc := range tests {
		got, err := readyURL(tc.listen)
		if tc.want == "" {
			if err == nil {
				t.Errorf("readyURL(%q) = %q, want an error", tc.listen, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("readyURL(%q) = %q, %v, want %q", tc.listen, got, err, tc.want)
		}
	}
}

// TestReady asks a real listener on 127.0.0.1 that answers 200, then 503,
// then nothing.
func TestReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	cfg := filepath.Join(t.TempDir(), "poststelle.yaml")
	if err := os.WriteFile(cfg, []byte("ops: {listen: \""+ln.Addr().String()+"\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := func() int {
		var out, errb bytes.Buffer
		return run(context.Background(), []string{"ready", "--config", cfg, "--timeout", "2s"}, &out, &errb)
	}
	if code := ready(); code != exitOK {
		t.Fatalf("ready node: exit %d", code)
	}
	status.Store(http.StatusServiceUnavailable)
	if code := ready(); code != exitFailed {
		t.Fatalf("unready node: exit %d, want %d", code, exitFailed)
	}
	srv.Close()
	if code := ready(); code != exitFailed {
		t.Fatalf("no listener: exit %d, want %d", code, exitFailed)
	}
	if code := run(context.Background(), []string{"ready"}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitUsage {
		t.Fatalf("no ops listener configured: exit %d, want %d", code, exitUsage)
	}
}
