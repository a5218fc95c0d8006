// Package servetest runs the real `poststelle serve` binary for the
// integration tests, as an administrator would: built once, started with a
// configuration file on free loopback ports, waited for through its health
// endpoint, read through its sockets and its CLI (log replay, log verify),
// and stopped with SIGTERM (or killed, for the crash tests).
package servetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
)

// Build compiles cmd/poststelle into dir and returns the binary's path. A
// TestMain calls it once for the whole package. It builds with -tags
// crashpoints, which adds the crash point of internal/assembly
// (crashpoints.go): inert unless a test starts serve with
// POSTSTELLE_CRASH_AFTER_RECORDS set (StartCrashing). The default binary
// has no crash point.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "poststelle")
	out, err := exec.Command("go", "build", "-tags", "crashpoints", "-o", bin, "github.com/poststelle/poststelle/cmd/poststelle").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build poststelle: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago. The port comes from below Linux's ephemeral range (32768–60999 by
// default): a port in that range, released again, is what the kernel
// hands the next outgoing connection or ":0" listener, of this machine's
// other tests too, and the gateway then failed to bind it. Below the range
// only another FreeAddr can take it, and a port handed out once is not
// handed out again by this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 200 {
		port := freeLow + rand.IntN(freeHigh-freeLow)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("servetest: no free loopback port between 20000 and 32767")
	return ""
}

// The range FreeAddr draws from, and the ports it handed out: a test
// process's record, so that two calls never return the same port.
const freeLow, freeHigh = 20000, 32768

var handedOut sync.Map

// Process is one running `poststelle serve`.
type Process struct {
	Bin    string
	Config string // the configuration file
	API    string // the office API's base URL, http://host:port
	cmd    *exec.Cmd
	logf   *os.File
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// Start runs `bin serve --config config` and waits until apiAddr's
// GET /healthz answers 200. The process's stderr goes to log next to the
// configuration file and into the test log when the test fails. It is
// stopped with SIGTERM when the test ends, unless stopped before.
func Start(t testing.TB, bin, config, apiAddr string) *Process {
	t.Helper()
	p, err := Launch(bin, config, apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.done: // stopped or killed by the test
		default:
			p.signal(syscall.SIGTERM)
			<-p.done
			if p.err != nil {
				t.Errorf("poststelle serve ended with %v after SIGTERM, want exit 0", p.err)
			}
		}
		if t.Failed() {
			t.Logf("poststelle serve --config %s:\n%s", config, p.Log())
		}
	})
	return p
}

// Launch is Start for programs that are not tests (the benchmarks): the
// caller stops the process with Terminate.
func Launch(bin, config, apiAddr string) (*Process, error) {
	p, err := launch(bin, config, apiAddr)
	if err != nil {
		return nil, err
	}
	if err := p.waitHealthy(); err != nil {
		p.cmd.Process.Kill()
		<-p.done
		return nil, err
	}
	return p, nil
}

// launch starts the process, its output appended to the log file beside
// the configuration.
func launch(bin, config, apiAddr string, env ...string) (*Process, error) {
	p := &Process{Bin: bin, Config: config, API: "http://" + apiAddr, done: make(chan struct{})}
	logf, err := os.OpenFile(config+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p.logf = logf
	p.cmd = exec.Command(bin, "serve", "--config", config)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start poststelle serve: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// StartCrashing starts serve armed to SIGKILL itself once the n-th message
// was recorded, before the channel acknowledges it (the crash point that
// Build compiles in). It does not wait for /healthz, since the crash may
// come first; the test waits for it with WaitKilled.
func StartCrashing(t testing.TB, bin, config string, n int) *Process {
	t.Helper()
	p, err := launch(bin, config, "", fmt.Sprintf("POSTSTELLE_CRASH_AFTER_RECORDS=%d", n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("poststelle serve --config %s (crash point after %d records):\n%s", config, n, p.Log())
		}
	})
	return p
}

// WaitKilled waits up to within for the process to die of SIGKILL (its
// crash point), failing the test if it ends otherwise or lives on.
func (p *Process) WaitKilled(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("poststelle serve did not reach its crash point within %v:\n%s", within, p.Log())
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("poststelle serve ended with %v, want SIGKILL at its crash point:\n%s", p.err, p.Log())
	}
}

// waitHealthy polls GET /healthz until it answers 200 or the process ends.
func (p *Process) waitHealthy() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("poststelle serve ended before it was healthy (%v):\n%s", p.err, p.Log())
		default:
		}
		if resp, err := client.Get(p.API + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("poststelle serve not healthy after 60 s:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Process) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(s)
	}
}

// Signal sends s to the process (SIGHUP re-reads the routing rules).
func (p *Process) Signal(s os.Signal) { p.signal(s) }

// Stop sends SIGTERM and fails the test unless the process exits 0 within
// 30 s, as a clean stop must.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.Terminate(); err != nil {
		t.Fatal(err)
	}
}

// Terminate sends SIGTERM and returns an error unless the process exits 0
// within 30 s.
func (p *Process) Terminate() error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("poststelle serve did not stop within 30 s of SIGTERM:\n%s", p.Log())
	}
	if p.err != nil {
		return fmt.Errorf("poststelle serve stopped with %v after SIGTERM:\n%s", p.err, p.Log())
	}
	return nil
}

// Kill ends the process with SIGKILL, as a crash or a power cut would.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.done
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("poststelle serve was not killed: %v", p.err)
	}
}

// PID is the process id, for a benchmark that reads the process's CPU time
// from /proc.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log is what the process wrote to stderr and stdout so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.Config + ".log")
	return string(b)
}

// CLI runs `bin args... --config config` and returns its exit code, stdout
// and stderr. It fails the test only when the binary cannot run at all.
func CLI(t testing.TB, bin, config string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--config", config)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("poststelle %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		return 0, "", ""
	}
}

// replayed is a line of `poststelle log replay`.
type replayed struct {
	ID      string          `json:"id"`
	Tenant  string          `json:"tenant"`
	Stream  string          `json:"stream"`
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Data    json.RawMessage `json:"data"`
}

// Recorded is one event as `poststelle log replay` printed it, decoded.
type Recorded struct {
	ID      string
	Stream  string
	Payload gateway.Payload
}

// Replay returns the events of one type with their ids and streams, read
// with `poststelle log replay --type typ`, which opens the log read-only and
// so works while serve runs (and after it was killed).
func Replay(t testing.TB, bin, config, typ string) []Recorded {
	t.Helper()
	code, out, errs := CLI(t, bin, config, "log", "replay", "--type", typ)
	if code != 0 {
		t.Fatalf("poststelle log replay --type %s: exit %d\n%s", typ, code, errs)
	}
	reg := gateway.NewRegistry()
	var got []Recorded
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r replayed
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log replay line %q: %v", sc.Text(), err)
		}
		e := eventstore.Event{ID: r.ID, Tenant: r.Tenant, Stream: r.Stream, Type: r.Type, Version: r.Version, Data: r.Data}
		pl, err := reg.Decode(&e)
		if err != nil {
			t.Fatalf("log replay: %v", err)
		}
		got = append(got, Recorded{ID: r.ID, Stream: r.Stream, Payload: pl})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("log replay output: %v", err)
	}
	return got
}

// Events returns the decoded events of one type (see Replay).
func Events(t testing.TB, bin, config, typ string) []gateway.Payload {
	t.Helper()
	var got []gateway.Payload
	for _, r := range Replay(t, bin, config, typ) {
		got = append(got, r.Payload)
	}
	return got
}

// WaitEvents polls Events until there are at least n of the type.
func WaitEvents(t testing.TB, bin, config, typ string, n int) []gateway.Payload {
	t.Helper()
	var got []gateway.Payload
	WaitFor(t, fmt.Sprintf("%d %s events", n, typ), func() bool {
		got = Events(t, bin, config, typ)
		return len(got) >= n
	})
	return got
}

// WaitFor polls cond every 100 ms for up to 60 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DemoLogin reads the demo office's login that serve made in dataDir on its
// first start.
func DemoLogin(t testing.TB, dataDir string) offices.Credentials {
	t.Helper()
	c, err := offices.ReadDemoCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Reply answers the message of stream through the office API at api as the
// demo office's member, retrying while the office does not have the message
// yet (404) for up to a minute.
func Reply(t testing.TB, api, dataDir, stream, text string) {
	t.Helper()
	login := DemoLogin(t, dataDir)
	body, err := json.Marshal(map[string]string{"body": text})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + api + "/offices/" + offices.DemoOffice + "/messages/" + stream + "/replies"
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.SetBasicAuth(login.User, login.Password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			return
		}
		if resp.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("reply request: %s", resp.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Main is the TestMain of an integration test package that runs the
// binary: it builds it once into a temporary directory (Build), sets *bin,
// runs the tests and removes the directory.
func Main(m *testing.M, bin *string) {
	os.Exit(runMain(m, bin))
}

func runMain(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "poststelle-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
