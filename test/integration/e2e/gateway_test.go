//go:build integration

// Package e2e runs the whole mailroom against real peers: Dovecot delivers
// a citizen's mail into the authority's mailbox, the gateway (the real
// `poststelle serve` binary, built once and started with a configuration
// file) takes it in over IMAP, the routing rules place it in an office, the
// office reads it with a real IMAP client (Python's imaplib) and over the
// API (curl) and answers through the API and from its mail client, and the answer
// arrives in the citizen's Dovecot mailbox through the gateway's SMTP
// outbound, threaded to the original. run.sh starts the peers.
package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

// The peers' addresses come from run.sh.
const (
	envIMAPS      = "POSTSTELLE_IT_IMAPS_ADDR"
	envCA         = "POSTSTELLE_IT_DOVECOT_CA"
	envDovecotDir = "POSTSTELLE_IT_DOVECOT_DIR"
)

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run test/integration/e2e/run.sh", name)
	}
	return v
}

// The authority's mail set-up in Dovecot: user1 is the authority's
// mailbox the gateway collects from, user2 a citizen.
const (
	authorityMailbox = "user1@test"
	citizen          = "user2@test"
	authorityFrom    = "Stadt Musterstadt <user1@test>"
	officeUser       = "sb.bau"
	officePassword   = "bau-geheim-1"
	otherUser        = "sb.ordnung"
	otherPassword    = "ordnung-geheim-1"
)

const rules = `rules:
  - id: bauantraege
    description: building applications by subject
    match:
      subject: '(?i)bauantrag'
    offices: [bauamt]
  - id: rest
    offices: [ordnungsamt]
`

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

// gatewayUnderTest is a running `poststelle serve`, configured as an
// authority would configure it: IMAP intake from its Dovecot mailbox,
// offices and rules from files, answers through its relay.
type gatewayUnderTest struct {
	dir        string
	config     string
	proc       *servetest.Process
	imapAddr   string // the office IMAP server
	submission string // the SMTP submission endpoint
	sink       *ldaSink
	apiAddr    string // the office API's listen address
	api        string // the office API's base URL
}

func startGateway(t *testing.T) *gatewayUnderTest {
	t.Helper()
	g := &gatewayUnderTest{dir: t.TempDir()}
	rulesFile := filepath.Join(g.dir, "rules.yaml")
	must(t, os.WriteFile(rulesFile, []byte(rules), 0o600))
	officesFile := filepath.Join(g.dir, "offices.yaml")
	must(t, os.WriteFile(officesFile, officesYAML(t), 0o600))
	pwFile := filepath.Join(g.dir, "intake-password")
	must(t, os.WriteFile(pwFile, []byte("secret-user1\n"), 0o600))

	g.sink = startSink(t)
	relayHost, relayPort, _ := net.SplitHostPort(g.sink.addr)
	imapsHost, imapsPort, _ := net.SplitHostPort(env(t, envIMAPS))
	g.apiAddr, g.imapAddr, g.submission = servetest.FreeAddr(t), servetest.FreeAddr(t), servetest.FreeAddr(t)
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	must(t, os.WriteFile(g.config, fmt.Appendf(nil, `data_dir: %[1]s/data
offices: %[2]s
routing: {rules: %[3]s}
office_api: {listen: "%[4]s"}
office_imap: {listen: "%[5]s", poll_interval: 200ms}
smtp_submission: {listen: "%[6]s"}
smtp_out:
  from: "%[7]s"
  hostname: gateway.test
  relay: {host: "%[8]s", port: %[9]s, tls: none}
replies: {first_backoff: 1s, poll_interval: 500ms}
imap:
  mailboxes:
    - name: poststelle
      host: "%[10]s"
      port: %[11]s
      tls: implicit
      ca_file: %[12]s
      username: %[13]s
      password_file: %[14]s
      poll_interval: 1s
`, g.dir, officesFile, rulesFile, g.apiAddr, g.imapAddr, g.submission, authorityFrom, relayHost, relayPort,
		imapsHost, imapsPort, env(t, envCA), authorityMailbox, pwFile), 0o600))
	g.start(t)
	return g
}

// start runs poststelle serve with the test's configuration.
func (g *gatewayUnderTest) start(t *testing.T) {
	t.Helper()
	g.proc = servetest.Start(t, bin, g.config, g.apiAddr)
	g.api = g.proc.API
}

func officesYAML(t *testing.T) []byte {
	t.Helper()
	hb, err := offices.HashPassword(officePassword)
	must(t, err)
	ho, err := offices.HashPassword(otherPassword)
	must(t, err)
	return fmt.Appendf(nil, `offices:
  - id: bauamt
    name: Bauamt
    members: [{user: %s, password_hash: '%s'}]
  - id: ordnungsamt
    name: Ordnungsamt
    members: [{user: %s, password_hash: '%s'}]
`, officeUser, hb, otherUser, ho)
}

// events returns the log's events of one type, read with
// `poststelle log replay`.
func (g *gatewayUnderTest) events(t *testing.T, typ string) []gateway.Payload {
	t.Helper()
	return servetest.Events(t, bin, g.config, typ)
}

func (g *gatewayUnderTest) waitEvents(t *testing.T, typ string, n int) []gateway.Payload {
	t.Helper()
	return servetest.WaitEvents(t, bin, g.config, typ, n)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	servetest.WaitFor(t, what, cond)
}

// deliver hands a mail to Dovecot's delivery agent for a local user, as the
// MTA in front of Dovecot would.
func deliver(t *testing.T, rcpt, from string, raw []byte) {
	t.Helper()
	conf := filepath.Join(env(t, envDovecotDir), "dovecot.conf")
	cmd := exec.Command("/usr/lib/dovecot/dovecot-lda", "-c", conf, "-d", rcpt, "-f", from)
	cmd.Stdin = strings.NewReader(string(raw))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dovecot-lda to %s: %v\n%s", rcpt, err, out)
	}
}

// ldaSink is the authority's outgoing relay in the test: an SMTP server
// that hands every mail to Dovecot's delivery agent for its recipients
// (the tests read what arrived from Dovecot, as the recipient would).
type ldaSink struct {
	addr string
	conf string
	mu   sync.Mutex
	// refuse answers the next DATA commands with 451, as a relay that is
	// briefly unavailable would.
	refuse int
}

func (s *ldaSink) refuseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = n
}

func startSink(t *testing.T) *ldaSink {
	t.Helper()
	s := &ldaSink{conf: filepath.Join(env(t, envDovecotDir), "dovecot.conf")}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

type sinkSession struct {
	s    *ldaSink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *gosmtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	refuse := ss.s.refuse > 0
	ss.s.refuse--
	ss.s.mu.Unlock()
	if refuse {
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "relay busy, try later"}
	}
	for _, rcpt := range ss.to {
		cmd := exec.Command("/usr/lib/dovecot/dovecot-lda", "-c", ss.s.conf, "-d", rcpt, "-f", ss.from)
		cmd.Stdin = strings.NewReader(string(raw))
		if out, err := cmd.CombinedOutput(); err != nil {
			return &gosmtp.SMTPError{Code: 451, Message: fmt.Sprintf("lda: %v %s", err, out)}
		}
	}
	return nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
