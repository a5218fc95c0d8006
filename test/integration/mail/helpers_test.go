//go:build integration

// Package mail runs the e-mail channels of the real `poststelle serve`
// binary against real peers: Dovecot (IMAP intake, STARTTLS and implicit
// TLS, IDLE, delivery through dovecot-lda, a Dovecot restart) and swaks (SMTP
// intake, plain and STARTTLS, refusals). Each test writes a configuration
// file as an administrator would, starts serve with it and talks to the
// gateway only through its sockets and its CLI (`log replay`). The crash
// tests SIGKILL serve while messages are in flight, start it again and check
// that every message is recorded exactly once. run.sh starts the peers.
package mail

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// The peers' addresses come from run.sh.
const (
	envIMAP  = "POSTSTELLE_IT_IMAP_ADDR"
	envIMAPS = "POSTSTELLE_IT_IMAPS_ADDR"
	envCA    = "POSTSTELLE_IT_DOVECOT_CA"
	envCtl   = "POSTSTELLE_IT_DOVECOT_CTL"
	envSwaks = "POSTSTELLE_IT_SWAKS"
	envConf  = "POSTSTELLE_IT_DOVECOT_CONF"
)

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run test/integration/mail/run.sh", name)
	}
	return v
}

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

// gw is one gateway installation: a data directory and a configuration
// file, started and stopped as `poststelle serve` processes.
type gw struct {
	dir    string
	config string
	api    string // the office API's listen address
	smtp   string // the SMTP receiver's listen address, "" when off
}

// newGateway makes a data directory and picks the office API's port; write
// then writes the configuration file.
func newGateway(t *testing.T) *gw {
	t.Helper()
	g := &gw{dir: t.TempDir(), api: servetest.FreeAddr(t)}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	return g
}

// write writes the configuration file with the channel sections given
// (YAML, at the top level); the office-facing servers listen on free
// loopback ports, and offices and rules are the demo set-up (one office
// "demo", everything routed to it).
func (g *gw) write(t *testing.T, channels string) {
	t.Helper()
	conf := fmt.Sprintf("data_dir: %s/data\nlog_level: debug\noffice_api: {listen: %q}\noffice_imap: {listen: %q}\nsmtp_submission: {listen: %q}\n%s",
		g.dir, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t), channels)
	if err := os.WriteFile(g.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `poststelle serve --config` and waits until it is healthy.
func (g *gw) start(t *testing.T) *servetest.Process {
	t.Helper()
	p := servetest.Start(t, bin, g.config, g.api)
	if g.smtp != "" {
		waitListening(t, g.smtp)
	}
	return p
}

// received returns the MessageReceived events in the log, read with
// `poststelle log replay`.
func (g *gw) received(t *testing.T) []*gateway.MessageReceived {
	t.Helper()
	var out []*gateway.MessageReceived
	for _, r := range servetest.Replay(t, bin, g.config, "MessageReceived") {
		out = append(out, r.Payload.(*gateway.MessageReceived))
	}
	return out
}

// imapUser is a Dovecot test user.
type imapUser struct {
	name, password string
}

func user(n int) imapUser {
	return imapUser{name: fmt.Sprintf("user%d@test", n), password: fmt.Sprintf("secret-user%d", n)}
}

// mailbox is the YAML of one entry of imap.mailboxes: the user's INBOX over
// tlsMode (none, starttls, implicit), the password in a file beside the
// configuration, extra YAML keys appended (", key: value").
func (g *gw) mailbox(t *testing.T, u imapUser, tlsMode, extra string) string {
	t.Helper()
	addr := env(t, envIMAP)
	if tlsMode == "implicit" {
		addr = env(t, envIMAPS)
	}
	_, port, _ := net.SplitHostPort(addr)
	pw := filepath.Join(g.dir, strings.TrimSuffix(u.name, "@test")+".password")
	if err := os.WriteFile(pw, []byte(u.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := ""
	if tlsMode != "none" {
		ca = ", ca_file: " + env(t, envCA)
	}
	return fmt.Sprintf("    - {host: 127.0.0.1, port: %s, tls: %s%s, username: %q, password_file: %s, poll_interval: 2s%s}\n",
		port, tlsMode, ca, u.name, pw, extra)
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
		appendTo(t, c, "INBOX", raw)
		subjects = append(subjects, subj)
	}
	return subjects
}

func appendTo(t testing.TB, c *imapclient.Client, folder, raw string) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// appendRaw delivers one message as given.
func appendRaw(t testing.TB, u imapUser, folder, raw string) {
	t.Helper()
	c := dialDovecot(t, u)
	defer c.Close()
	appendTo(t, c, folder, raw)
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

func waitListening(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 30*time.Second, addr+" accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
