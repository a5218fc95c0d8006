//go:build integration

// Package e2e runs the whole mailroom against real peers: Dovecot delivers
// a citizen's mail into the authority's mailbox, the gateway's IMAP intake
// takes it in, the routing rules place it in an office, the office reads it
// with a real IMAP client (Python's imaplib) and over the API (curl) and
// answers through the API and from its mail client, and the answer
// arrives in the citizen's Dovecot mailbox through the gateway's SMTP
// outbound, threaded to the original. run.sh starts the peers.
package e2e

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/adapters/imap"
	"github.com/poststelle/poststelle/adapters/officeapi"
	"github.com/poststelle/poststelle/adapters/officeimap"
	"github.com/poststelle/poststelle/adapters/smtpout"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
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

// gatewayUnderTest is the gateway wired as serve wires it, in this process.
type gatewayUnderTest struct {
	dir        string
	log        *sqlitelog.Log
	state      *sql.DB
	blobs      *blob.Store
	runner     *projection.Runner
	imapServer *officeimap.Server
	submission *smtpout.Submission
	sink       *ldaSink
	logger     *slog.Logger
	api        string // the office API's base URL
}

func startGateway(t *testing.T) *gatewayUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatewayUnderTest{dir: t.TempDir()}
	g.logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	g.log, err = sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(g.dir, "log.db"), Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: g.logger})
	must(t, err)
	g.state, err = sql.Open("sqlite", "file:"+filepath.Join(g.dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	must(t, err)
	g.state.SetMaxOpenConns(1)
	g.blobs, err = blob.Open(filepath.Join(g.dir, "blobs"))
	must(t, err)

	rulesFile := filepath.Join(g.dir, "rules.yaml")
	must(t, os.WriteFile(rulesFile, []byte(rules), 0o600))
	officesFile := filepath.Join(g.dir, "offices.yaml")
	must(t, os.WriteFile(officesFile, officesYAML(t), 0o600))
	// The office side as serve wires it (engineer A's officeapi.Wire).
	office, err := officeapi.Wire(officeapi.WiringConfig{OfficesFile: officesFile, RulesFile: rulesFile, DataDir: g.dir,
		API: officeapi.Config{Listen: "127.0.0.1:0"}}, officeapi.WiringDeps{Log: g.log, DB: g.state, Blobs: g.blobs, Logger: g.logger})
	must(t, err)
	g.api = "http://" + office.Server.Addr().String()
	dir := office.Directory

	g.sink = startSink(t)
	host, port, _ := net.SplitHostPort(g.sink.addr)
	p, _ := strconv.Atoi(port)
	out, err := smtpout.New(smtpout.Config{From: authorityFrom, Hostname: "gateway.test",
		Relay: smtpout.RelayConfig{Host: host, Port: p, TLS: smtpout.TLSNone}}, smtpout.Deps{Blobs: g.blobs, Logger: g.logger})
	must(t, err)
	reg := gateway.NewRegistry()
	sender, err := replies.New(replies.Config{FirstBackoff: time.Second, PollInterval: 500 * time.Millisecond},
		replies.Deps{Log: g.log, Registry: reg, State: g.state, Logger: g.logger,
			Outbound: map[gateway.Channel]replies.Outbound{gateway.ChannelSMTP: out}})
	must(t, err)
	offsets, err := pubsub.NewSQLOffsets(ctx, g.state)
	must(t, err)
	pipe, err := pipeline.New(pipeline.Config{Log: g.log, Offsets: offsets, Registry: reg, Logger: g.logger},
		append(office.Handlers, sender.Handler())...)
	must(t, err)
	g.runner = &projection.Runner{Log: g.log, DB: g.state, Registry: reg, Logger: g.logger}
	notifier := office.Notifier

	intake := &gateway.Intake{Log: g.log}
	imapsHost, imapsPort, _ := net.SplitHostPort(env(t, envIMAPS))
	ip, _ := strconv.Atoi(imapsPort)
	pwFile := filepath.Join(g.dir, "intake-password")
	must(t, os.WriteFile(pwFile, []byte("secret-user1\n"), 0o600))
	watcher, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{{Name: "poststelle", Host: imapsHost, Port: ip,
		TLS: imap.TLSImplicit, CAFile: env(t, envCA), Username: authorityMailbox, PasswordFile: pwFile, PollInterval: time.Second}}},
		gateway.IntakeDeps{Intake: intake, Blobs: g.blobs, Logger: g.logger})
	must(t, err)

	g.imapServer, err = officeimap.New(officeimap.Config{Listen: "127.0.0.1:0", PollInterval: 200 * time.Millisecond},
		officeimap.Deps{Directory: dir, State: g.state, Log: g.log, Blobs: g.blobs, DataDir: g.dir, Logger: g.logger, Changed: notifier.Changed})
	must(t, err)
	g.submission, err = smtpout.NewSubmission(smtpout.SubmissionConfig{Listen: "127.0.0.1:0"},
		smtpout.SubmissionDeps{Directory: dir, Log: g.log, State: g.state, Blobs: g.blobs, Logger: g.logger})
	must(t, err)

	var wg sync.WaitGroup
	for _, task := range []func(context.Context) error{
		pipe.Run,
		func(ctx context.Context) error { return g.runner.Run(ctx, office.Inbox) },
		office.Run,
		sender.Run,
		watcher.Run,
		g.imapServer.Run,
		g.submission.Run,
	} {
		wg.Go(func() { task(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		g.state.Close()
		g.log.Close()
	})
	return g
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

// events returns the log's events of one type.
func (g *gatewayUnderTest) events(t *testing.T, typ string) []gateway.Payload {
	t.Helper()
	evs, err := g.log.Read(context.Background(), 0, 0, 100000)
	must(t, err)
	var out []gateway.Payload
	reg := gateway.NewRegistry()
	for i := range evs {
		if evs[i].Type == typ {
			p, err := reg.Decode(&evs[i])
			must(t, err)
			out = append(out, p)
		}
	}
	return out
}

func (g *gatewayUnderTest) waitEvents(t *testing.T, typ string, n int) []gateway.Payload {
	t.Helper()
	var got []gateway.Payload
	waitFor(t, fmt.Sprintf("%d %s events", n, typ), func() bool {
		got = g.events(t, typ)
		return len(got) >= n
	})
	return got
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ eventstore.Log = (*sqlitelog.Log)(nil)
