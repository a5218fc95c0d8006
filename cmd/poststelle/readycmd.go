package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runReady asks the ops listener of the configured gateway whether the node
// is ready (GET /readyz) and exits 0 when it answers 200. It exists for
// container health checks: the distroless image has no shell, curl or
// wget, only this binary.
func runReady(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("ready", stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this `duration`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle ready:", err)
		return exitUsage
	}
	url, err := readyURL(cfg.Ops.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle ready:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	status, err := getStatus(ctx, url)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle ready:", err)
		return exitFailed
	}
	if status != http.StatusOK {
		fmt.Fprintf(stderr, "poststelle ready: %s answered %d\n", url, status)
		return exitFailed
	}
	fmt.Fprintln(stdout, "ready")
	return exitOK
}

// readyURL is /readyz on the ops listener; a wildcard listen address is
// asked on loopback, where the probe runs (inside the container).
func readyURL(listen string) (string, error) {
	if listen == "" {
		return "", errors.New("ops.listen is not configured: no /readyz to ask")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("ops.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

func getStatus(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ask %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
