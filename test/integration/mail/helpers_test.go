//go:build integration

package mail

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// The peers' addresses come from run.sh.
const (
	envIMAP    = "POSTSTELLE_IT_IMAP_ADDR"
	envIMAPS   = "POSTSTELLE_IT_IMAPS_ADDR"
	envCA      = "POSTSTELLE_IT_DOVECOT_CA"
	envCtl     = "POSTSTELLE_IT_DOVECOT_CTL"
	envSwaks   = "POSTSTELLE_IT_SWAKS"
	envChild   = "POSTSTELLE_IT_CHILD"
	envChildDo = "POSTSTELLE_IT_CHILD_CONFIG"
)

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run test/integration/mail/run.sh", name)
	}
	return v
}

// childConfig tells a child process what to run.
type childConfig struct {
	Dir         string
	IMAP        imap.Config
	SMTP        smtp.Config
	KillAfter   int // SIGKILL itself after this many records, before the ack
	TLSCertFile string
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func openLog(dir string) (*sqlitelog.Log, error) {
	return sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
}

// runChild runs an intake in this process until SIGTERM, and kills itself
// hard in the window between record and acknowledgement when told to.
func runChild(mode string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(os.Getenv(envChildDo)), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	l, err := openLog(cc.Dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(cc.Dir, "blobs"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var records atomic.Int64
	kill := func() {
		if n := records.Add(1); cc.KillAfter > 0 && n == int64(cc.KillAfter) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	intake := &gateway.Intake{Log: l}
	switch mode {
	case "imap":
		w, err := imap.New(cc.IMAP, gateway.IntakeDeps{Intake: intake, Blobs: blobs, Logger: logger,
			AfterRecord: func(gateway.Receipt) { kill() }})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		w.Run(ctx)
	case "smtp":
		s, err := smtp.New(cc.SMTP, gateway.IntakeDeps{Intake: intake, Blobs: blobs, Logger: logger,
			AfterRecord: func(gateway.Receipt) { kill() }})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		s.Run(ctx)
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		return 2
	}
	return 0
}

// child is a running intake process.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(t *testing.T, mode string, cc childConfig) *child {
	t.Helper()
	b, err := json.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envChildDo+"="+string(b))
	cmd.Stderr = &prefixWriter{t: t, prefix: mode + " child: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// waitKilled waits for the child to die of SIGKILL.
func (c *child) waitKilled(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v, want SIGKILL", err)
		}
	case <-time.After(within):
		t.Fatal("child was not killed in time")
	}
}

// stop ends the child gracefully.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not stop")
	}
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + line)
	}
	return len(p), nil
}

// received returns the MessageReceived events in a log directory.
func received(t *testing.T, dir string) []*gateway.MessageReceived {
	t.Helper()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := gateway.NewRegistry()
	var out []*gateway.MessageReceived
	for off := int64(0); ; {
		evs, err := l.Read(context.Background(), 0, off, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for i := range evs {
			p, err := reg.Decode(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := p.(*gateway.MessageReceived); ok {
				out = append(out, m)
			}
		}
		off += int64(len(evs))
	}
}

// imapUser is a Dovecot test user.
type imapUser struct {
	name, password string
}

func user(n int) imapUser {
	return imapUser{name: fmt.Sprintf("user%d@test", n), password: fmt.Sprintf("secret-user%d", n)}
}

func dialDovecot(t testing.TB, u imapUser) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(env(t, envIMAP), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(u.name, u.password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// appendMessages delivers n distinct messages into a user's INBOX by IMAP
// APPEND and returns their subjects.
func appendMessages(t testing.TB, u imapUser, tag string, n int) []string {
	t.Helper()
	c := dialDovecot(t, u)
	defer c.Close()
	var subjects []string
	for i := 0; i < n; i++ {
		subj := fmt.Sprintf("%s %d", tag, i)
		raw := fmt.Sprintf("From: Buerger %d <b%d@example.org>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s.%d@example.org>\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nNachricht %d.\r\n", i, i, u.name, subj, strings.ReplaceAll(tag, " ", "-"), i, i)
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subj)
	}
	return subjects
}

// count returns how many messages a folder holds, and how many carry flag;
// -1 while Dovecot cannot be reached.
func count(t testing.TB, u imapUser, folder string, flag goimap.Flag) (total, flagged int) {
	t.Helper()
	c, err := imapclient.DialInsecure(env(t, envIMAP), nil)
	if err != nil {
		return -1, -1
	}
	defer c.Close()
	if err := c.Login(u.name, u.password).Wait(); err != nil {
		return -1, -1
	}
	sel, err := c.Select(folder, &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, 0
	}
	if flag != "" {
		data, err := c.Search(&goimap.SearchCriteria{Flag: []goimap.Flag{flag}}, nil).Wait()
		if err != nil {
			return -1, -1
		}
		flagged = len(data.AllSeqNums())
	}
	return int(sel.NumMessages), flagged
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mailboxConfig(t testing.TB, u imapUser, tlsMode string) imap.MailboxConfig {
	mc := imap.MailboxConfig{Host: "127.0.0.1", Username: u.name, PasswordEnv: "POSTSTELLE_IT_PW_" + strings.TrimSuffix(u.name, "@test"),
		TLS: tlsMode, PollInterval: 2 * time.Second}
	os.Setenv(mc.PasswordEnv, u.password)
	addr := env(t, envIMAP)
	if tlsMode == imap.TLSImplicit {
		addr = env(t, envIMAPS)
	}
	if tlsMode != imap.TLSNone {
		mc.CAFile = env(t, envCA)
	}
	_, port, _ := net.SplitHostPort(addr)
	mc.Port, _ = strconv.Atoi(port)
	return mc
}

// subjectsOnce checks that every subject was recorded exactly once.
func subjectsOnce(t *testing.T, msgs []*gateway.MessageReceived, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.Subject]++
	}
	for _, s := range want {
		if seen[s] != 1 {
			t.Errorf("%q recorded %d times", s, seen[s])
		}
	}
	if len(msgs) != len(want) {
		t.Errorf("%d messages recorded, want %d", len(msgs), len(want))
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
