package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/poststelle/poststelle/gateway"
)

// buildPoststelle compiles the real binary into dir, so that the serve
// target measures exactly what an installation runs.
func buildPoststelle(dir string) (string, error) {
	exe := filepath.Join(dir, "poststelle")
	cmd := exec.Command("go", "build", "-o", exe, "github.com/poststelle/poststelle/cmd/poststelle")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build poststelle: %w", err)
	}
	return exe, nil
}

// freePorts reserves n loopback ports and releases them for serve to take.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// serveConfig is a configuration as an administrator would write it for
// e-mail intake: the receiver, the demo office, verification on, the
// bench's signing certificate as the one trust anchor so that a signature
// verified end to end comes out TOTAL_PASSED.
func serveConfig(dir string, addrs []string, anchor string, senders int, extra string) string {
	var ind strings.Builder
	for l := range strings.SplitSeq(strings.TrimSpace(extra), "\n") {
		if l != "" {
			ind.WriteString("  " + strings.TrimSpace(l) + "\n")
		}
	}
	extra = ind.String()
	return fmt.Sprintf(`data_dir: %s
log_level: warn
smtp:
  listen: %s
  hostname: bench
  accept_all: true
  max_connections: %d
office_api: {listen: %s}
office_imap: {listen: %s}
smtp_submission: {listen: %s}
verification:
  trust_anchors: [%s]
%s
`, filepath.Join(dir, "data"), addrs[0], senders+4, addrs[1], addrs[2], addrs[3], anchor, extra)
}

// measureServe starts `poststelle serve` in dir, sends it senders×rounds
// copies of body, waits until every message has its SignaturesVerified
// event and reads serve's peak RSS.
func measureServe(exe, dir, kind string, body []byte, senders, rounds int, s *signer, extra string) (result, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return result{}, err
	}
	anchor := filepath.Join(dir, "anchor.pem")
	if err := os.WriteFile(anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}), 0o640); err != nil {
		return result{}, err
	}
	addrs, err := freePorts(4)
	if err != nil {
		return result{}, err
	}
	cfg := filepath.Join(dir, "poststelle.yaml")
	if err := os.WriteFile(cfg, []byte(serveConfig(dir, addrs, anchor, senders, extra)), 0o640); err != nil {
		return result{}, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(exe, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if out := strings.TrimSpace(stderr.String()); out != "" {
			fmt.Fprintf(os.Stderr, "%s serve said:\n%s\n", kind, out)
		}
	}()
	if err := waitListening(addrs[0], exited); err != nil {
		return result{}, err
	}
	idle, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := sendAll(addrs[0], kind, senders, rounds, body); err != nil {
		return result{}, err
	}
	n := senders * rounds
	verdicts, err := waitVerified(exe, cfg, n, exited)
	if err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	peak, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	fmt.Fprintf(os.Stderr, "%s serve: %d SignaturesVerified, signatures: %s\n", kind, n, verdicts)
	want := "none"
	if kind != "plain" {
		want = fmt.Sprintf("%d×TOTAL_PASSED", n)
	}
	if verdicts != want {
		return result{}, fmt.Errorf("serve's verdicts are %s, want %s", verdicts, want)
	}
	return result{kind: kind, messages: n, bytes: int64(n) * int64(len(body)), elapsed: elapsed, idleKiB: idle, peakKiB: peak}, nil
}

// waitListening waits until serve's SMTP receiver accepts connections.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited before listening: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("serve is not listening on %s after a minute", addr)
}

// waitVerified polls `poststelle log replay --type SignaturesVerified`
// until want events are in the log, and tallies their indications.
func waitVerified(exe, cfg string, want int, exited <-chan error) (string, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		select {
		case err := <-exited:
			return "", fmt.Errorf("serve exited while verifying: %v", err)
		default:
		}
		tally, n, err := replayVerified(exe, cfg)
		if err != nil {
			return "", err
		}
		if n >= want {
			return tally, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("only %d of %d messages verified after 10 minutes", n, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func replayVerified(exe, cfg string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "log", "replay", "--config", cfg, "--type", "SignaturesVerified").Output()
	if err != nil {
		return "", 0, fmt.Errorf("log replay: %w", err)
	}
	counts := map[string]int{}
	var order []string
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Data gateway.SignaturesVerified `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return "", 0, fmt.Errorf("log replay: %w", err)
		}
		n++
		for _, s := range line.Data.Signatures {
			k := s.Indication
			if s.SubIndication != "" {
				k += "/" + s.SubIndication
			}
			if counts[k] == 0 {
				order = append(order, k)
			}
			counts[k]++
		}
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d×%s", counts[k], k))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	return strings.Join(parts, ", "), n, sc.Err()
}
