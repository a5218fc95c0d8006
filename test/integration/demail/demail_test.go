//go:build integration

// Package demail runs the De-Mail channel of the real `poststelle serve`
// binary against a stand-in provider (run.sh): the gateway's mailbox is a
// Dovecot that admits only clients with a certificate of the provider's
// openssl CA, the provider's stamping and confirmations are
// channels/demail/demailtest with the openssl-made signature certificate,
// and answers go to an SMTP submission sink that requires our client
// certificate. Each test writes a configuration as an administrator would
// and asserts what `poststelle log replay` and the office API show.
package demail

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
	"github.com/poststelle/poststelle/crypto/trustedlist/tltest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

// The peers come from run.sh.
const (
	envDir   = "POSTSTELLE_IT_DEMAIL_DIR"
	envIMAPS = "POSTSTELLE_IT_DEMAIL_IMAPS"
)

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run test/integration/demail/run.sh", name)
	}
	return v
}

func imapsAddr() string { return os.Getenv(envIMAPS) }

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

// mailbox is one of Dovecot's test users (peer.sh): an authority's
// De-Mail mailbox at the provider gateway.
type mailbox struct{ user, password string }

func postfach(n int) mailbox {
	return mailbox{user: fmt.Sprintf("postfach%d@kreis.de-mail.example", n), password: fmt.Sprintf("secret-%d", n)}
}

// Office logins of the configuration.
const (
	officeUser, officePassword     = "mueller", "sachbearbeitung-2026"
	mailroomUser, mailroomPassword = "post", "poststelle-2026"
)

// gw is one gateway installation.
type gw struct {
	dir, config, api string
	p                *servetest.Process
}

// channels is what a test adds to the configuration.
type channels struct {
	mailbox    mailbox // the demail: mailbox taken in
	outbound   string  // the sink's address; "" is no demail.outbound
	smtp       string  // a plain smtp: receiver's address; "" is none
	demailSMTP string  // demail.smtp's address, for the gateway's deliveries by SMTP; "" is none
	imap       *mailbox
}

// start writes a configuration (the provider as demail.providers, the
// gateway mailbox with our client certificate, the office bauamt that
// every message without problems is routed to, triage for the others, a
// mailroom login) and starts serve.
func start(t *testing.T, pv *provider, ch channels) *gw {
	t.Helper()
	g := &gw{dir: t.TempDir(), api: servetest.FreeAddr(t)}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	pwHash, err := offices.HashPassword(officePassword)
	if err != nil {
		t.Fatal(err)
	}
	mrHash, err := offices.HashPassword(mailroomPassword)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(g.dir, "offices.yaml"), fmt.Sprintf("offices:\n  - id: bauamt\n    members: [{user: %s, password_hash: %q}]\nmailroom: [{user: %s, password_hash: %q}]\n",
		officeUser, pwHash, mailroomUser, mrHash))
	// As in deploy/rules.yaml: what the channel found doubtful goes to
	// the mailroom first, the rest to bauamt.
	write(t, filepath.Join(g.dir, "rules.yaml"), "rules:\n  - {id: zweifelhaft, match: {problems: true}, triage: true}\n  - {id: alles, offices: [bauamt]}\n")
	tlsClient := fmt.Sprintf("ca_file: %s, cert_file: %s, key_file: %s", pv.file("provider-ca.pem"), pv.file("client.pem"), pv.file("client.key"))
	_, port, _ := net.SplitHostPort(env(t, envIMAPS))
	box := func(u mailbox) string {
		pw := filepath.Join(g.dir, strings.SplitN(u.user, "@", 2)[0]+".password")
		write(t, pw, u.password+"\n")
		return fmt.Sprintf("    - {host: 127.0.0.1, port: %s, tls: implicit, %s, username: %q, password_file: %s, poll_interval: 1s}\n",
			port, tlsClient, u.user, pw)
	}
	conf := fmt.Sprintf("data_dir: %s/data\nlog_level: debug\noffices: %s/offices.yaml\nrouting: {rules: %s/rules.yaml}\n"+
		"office_api: {listen: %q}\noffice_imap: {listen: %q}\nsmtp_submission: {listen: %q}\n",
		g.dir, g.dir, g.dir, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t))
	tl, tlSigner := trustedList(t, pv, g.dir)
	conf += fmt.Sprintf("demail:\n  providers:\n    - {name: %s, ca_file: %s, crl_files: [%s]}\n"+
		"  qualification: {trusted_lists: [%s], tl_signers: [%s]}\n  mailboxes:\n%s",
		"provider.de-mail.example", pv.file("provider-ca.pem"), pv.file("provider-ca.crl"), tl, tlSigner, box(ch.mailbox))
	if ch.demailSMTP != "" {
		conf += fmt.Sprintf("  smtp: {listen: %q, hostname: poststelle.kreis.example, cert_file: %s, key_file: %s}\n",
			ch.demailSMTP, pv.file("poststelle-server.pem"), pv.file("poststelle-server.key"))
	}
	if ch.outbound != "" {
		host, sport, _ := net.SplitHostPort(ch.outbound)
		conf += fmt.Sprintf("  outbound:\n    from: \"Kreis Musterland <%s>\"\n    hostname: poststelle.kreis.example\n"+
			"    gateway: {host: %s, port: %s, tls: starttls, %s, timeout: 20s}\n", ch.mailbox.user, host, sport, tlsClient)
	}
	if ch.smtp != "" {
		conf += fmt.Sprintf("smtp: {listen: %q, accept_all: true}\n", ch.smtp)
	}
	if ch.imap != nil {
		conf += "imap:\n  mailboxes:\n" + box(*ch.imap)
	}
	write(t, g.config, conf)
	g.p = servetest.Start(t, bin, g.config, g.api)
	return g
}

// trustedList writes, into dir, a trusted list (ETSI TS 119 612) that
// names the provider's CA as a granted CA/QC service, signed by a scheme
// operator made here, and returns the list and the operator's certificate,
// as demail.qualification takes them. The provider's seal certificate is
// qualified by its qcStatements (peer.sh), the list makes it a QESeal.
func trustedList(t testing.TB, pv *provider, dir string) (list, signer string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test TL Scheme Operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	op, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tltest.Sign(tltest.List{Territory: "DE", Services: []tltest.Service{{CA: pv.ca}}}, key, op)
	if err != nil {
		t.Fatal(err)
	}
	list, signer = filepath.Join(dir, "tl-de.xml"), filepath.Join(dir, "tl-signer.pem")
	write(t, list, string(data))
	write(t, signer, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return list, signer
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// received waits for n MessageReceived events and returns them with their
// streams.
func (g *gw) received(t *testing.T, n int) []servetest.Recorded {
	t.Helper()
	var got []servetest.Recorded
	servetest.WaitFor(t, fmt.Sprintf("%d receipts", n), func() bool {
		got = servetest.Replay(t, bin, g.config, "MessageReceived")
		return len(got) >= n
	})
	return got
}

// receipt is the MessageReceived of the message with the subject.
func receipt(t *testing.T, rs []servetest.Recorded, subject string) (string, *gateway.MessageReceived) {
	t.Helper()
	for _, r := range rs {
		if m := r.Payload.(*gateway.MessageReceived); m.Subject == subject {
			return r.Stream, m
		}
	}
	t.Fatalf("no receipt with subject %q", subject)
	return "", nil
}

// curl runs curl against the office API as user and returns the status
// and body.
func (g *gw) curl(t *testing.T, user, password, method, path, body string) (int, []byte) {
	t.Helper()
	args := []string{"-sS", "--max-time", "20", "-u", user + ":" + password, "-X", method, "-w", "\n%{http_code}"}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", body)
	}
	out, err := exec.Command("curl", append(args, "http://"+g.api+path)...).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", method, path, err)
	}
	i := strings.LastIndexByte(string(out), '\n')
	code, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl %s %s: no status in %q", method, path, out)
	}
	return code, out[:i]
}

// message is the office API's view of a message in bauamt, waited for
// until cond holds.
func (g *gw) message(t *testing.T, stream string, cond func(offices.Message) bool) offices.Message {
	t.Helper()
	var m offices.Message
	servetest.WaitFor(t, "the office API shows "+stream, func() bool {
		code, body := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages/"+stream, "")
		if code != 200 {
			return false
		}
		m = offices.Message{}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("message %s: %v", body, err)
		}
		return cond(m)
	})
	return m
}

// hasProblem says whether one of problems contains s.
func hasProblem(problems []string, s string) bool {
	for _, p := range problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// untrusted lists the names of the untrusted header fields of a receipt.
func untrusted(m *gateway.MessageReceived) string {
	var names []string
	for _, h := range m.Transport.Untrusted {
		names = append(names, strings.ToLower(h.Name))
	}
	return strings.Join(names, ",")
}

// deMailFields is a normal De-Mail to box with its own ids (tag) and
// subject; authoritative is "yes" or "no".
func deMailFields(box mailbox, tag, subject, authoritative string) [][2]string {
	f := demailtest.NormalFields(authoritative)
	for _, kv := range [][2]string{{"To", box.user}, {"X-de-mail-chosen-recipient", "to=" + box.user},
		{"X-de-mail-actual-recipient", "to=" + box.user}, {"Subject", subject},
		{"Message-ID", "<" + tag + "@provider.de-mail.example>"}, {"X-de-mail-message-id", tag + "@provider.de-mail.example"},
		{"X-de-mail-private-id", "Az-" + tag}, {"Date", time.Now().Format(time.RFC1123Z)}} {
		f = demailtest.Set(f, kv[0], kv[1])
	}
	return f
}

const letter = "Sehr geehrte Damen und Herren,\r\n\r\nanbei mein Antrag.\r\n"
