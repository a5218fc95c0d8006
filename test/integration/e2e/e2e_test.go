//go:build integration

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/servetest"
)

const citizenMail = "From: Erika Muster <user2@test>\r\n" +
	"To: Stadt Musterstadt <user1@test>\r\n" +
	"Subject: Bauantrag Gartenhaus =?utf-8?q?Flurst=C3=BCck?= 12\r\n" +
	"Message-ID: <bauantrag-1@test>\r\n" +
	"References: <vorgespraech-1@test>\r\n" +
	"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Sehr geehrte Damen und Herren, anbei mein Bauantrag.\r\n"

// listing is one message as the office's mail client listed it.
type listing struct {
	UID               int      `json:"uid"`
	Flags             []string `json:"flags"`
	Size              int      `json:"size"`
	BodyLen           int      `json:"bodyLen"`
	SHA256            string   `json:"sha256"`
	MessageID         string   `json:"messageId"`
	Subject           string   `json:"subject"`
	From              string   `json:"from"`
	Parts             []string `json:"parts"`
	OriginalMessageID string   `json:"originalMessageId"`
	Report            string   `json:"report"`
}

func (g *gatewayUnderTest) client(t *testing.T, args ...string) []byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(g.imapAddr)
	if args[0] == "submit" {
		host, port, _ = net.SplitHostPort(g.submission)
	}
	full := append([]string{"office_client.py", args[0], host, port}, args[1:]...)
	cmd := exec.Command("python3", full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("office_client.py %s: %v\n%s", args[0], err, stderr.String())
	}
	return out
}

func (g *gatewayUnderTest) listInbox(t *testing.T, user, password string) []listing {
	t.Helper()
	var got []listing
	must(t, json.Unmarshal(g.client(t, "list", user, password, g.certFile()), &got))
	return got
}

// certFile is the office IMAP server's certificate, self-signed on the
// first start in the data directory.
func (g *gatewayUnderTest) certFile() string {
	return filepath.Join(g.dir, "data", "officeimap", "cert.pem")
}

// inbox is an office's queue as its member lists it over the API.
func (g *gatewayUnderTest) inbox(t *testing.T, office, user, password string) []offices.Message {
	t.Helper()
	code, out := g.curl(t, user, password, "GET", "/offices/"+office+"/messages", "")
	if code != 200 {
		t.Fatalf("API list %s: %d %s", office, code, out)
	}
	var list struct {
		Messages []offices.Message `json:"messages"`
	}
	must(t, json.Unmarshal(out, &list))
	return list.Messages
}

func TestMailroomEndToEnd(t *testing.T) {
	g := startGateway(t)

	// 1. The citizen's mail arrives in the authority's Dovecot mailbox.
	deliver(t, authorityMailbox, citizen, []byte(citizenMail))

	// 2. The gateway's IMAP intake takes it in and the rules route it.
	g.waitEvents(t, "MessageReceived", 1)
	routed := g.waitEvents(t, "MessageRouted", 1)[0].(*gateway.MessageRouted)
	if !reflect.DeepEqual(routed.Offices, []string{"bauamt"}) || routed.Rule != "bauantraege" {
		t.Fatalf("routed %+v", routed)
	}
	var inbox []offices.Message
	waitFor(t, "the message in the Bauamt's queue", func() bool {
		inbox = g.inbox(t, "bauamt", officeUser, officePassword)
		return len(inbox) == 1
	})
	stream := inbox[0].Stream

	// The gateway verifies its signatures (it has none); the Prüfprotokoll
	// the office reads says so.
	verified := g.waitEvents(t, "SignaturesVerified", 1)[0].(*gateway.SignaturesVerified)
	if len(verified.Signatures) != 0 || verified.WrittenFormSatisfied {
		t.Fatalf("verified %+v", verified)
	}

	// 3. The office reads it with a real IMAP client (imaplib, STARTTLS
	// verified against the gateway's self-signed certificate).
	list := g.listInbox(t, officeUser, officePassword)
	if len(list) != 1 {
		t.Fatalf("office IMAP lists %d messages", len(list))
	}
	m := list[0]
	if m.UID != 1 || len(m.Flags) != 0 || m.Size != m.BodyLen || m.OriginalMessageID != "<bauantrag-1@test>" ||
		m.MessageID != replies.OfficeCopyID("bauamt", stream) || !strings.Contains(m.Report, "Prüfprotokoll") ||
		!strings.Contains(m.Report, reportNoSignatures) {
		t.Fatalf("office sees %+v", m)
	}
	if got := strings.Join(m.Parts, ","); got != "multipart/mixed,text/plain,text/html,message/rfc822,text/plain" {
		t.Fatalf("copy structure %s", got)
	}
	// The other office does not see it.
	if other := g.listInbox(t, otherUser, otherPassword); len(other) != 0 {
		t.Fatalf("the Ordnungsamt sees %d messages", len(other))
	}
	// Reading it acknowledges it.
	var read struct{ Flags []string }
	must(t, json.Unmarshal(g.client(t, "read", officeUser, officePassword, g.certFile(), "1"), &read))
	if !reflect.DeepEqual(read.Flags, []string{`\Seen`}) {
		t.Fatalf("flags after reading %v", read.Flags)
	}
	ack := g.waitEvents(t, "MessageAcknowledged", 1)[0].(*gateway.MessageAcknowledged)
	if ack.Office != "bauamt" || ack.By != officeUser || ack.Via != "imap" {
		t.Fatalf("acknowledgement %+v", ack)
	}

	// 4. The office reads it over the API too (curl), and only its members may.
	var list1 struct {
		Messages []offices.Message `json:"messages"`
	}
	waitFor(t, "the acknowledgement in the API listing", func() bool {
		code, out := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages", "")
		if code != 200 {
			t.Fatalf("API list: %d %s", code, out)
		}
		must(t, json.Unmarshal(out, &list1))
		return len(list1.Messages) == 1 && list1.Messages[0].State == offices.StateAcknowledged
	})
	if got := list1.Messages[0]; got.Stream != stream || got.From.Address != citizen || got.AcknowledgedBy != officeUser {
		t.Fatalf("API lists %+v", got)
	}
	if code, out := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages/"+stream+"/raw", ""); code != 200 || string(out) != citizenMail {
		t.Fatalf("API raw download: %d, %d bytes", code, len(out))
	}
	if code, _ := g.curl(t, otherUser, otherPassword, "GET", "/offices/bauamt/messages", ""); code != 403 && code != 404 {
		t.Fatalf("the Ordnungsamt reads the Bauamt's queue: %d", code)
	}

	// 5. The office answers through the API (the relay refuses the first
	// attempt with 451, so the reply is retried) ...
	g.sink.refuseNext(1)
	code, out := g.curl(t, officeUser, officePassword, "POST", "/offices/bauamt/messages/"+stream+"/replies",
		`{"subject": "Re: Ihr Bauantrag (API)", "body": "Sehr geehrte Frau Muster,\nwir haben Ihren Antrag erhalten.\n"}`, "Idempotency-Key: e2e-1")
	if code != 202 {
		t.Fatalf("API reply: %d %s", code, out)
	}
	var accepted struct {
		ReplyID string          `json:"replyId"`
		To      gateway.Address `json:"to"`
	}
	must(t, json.Unmarshal(out, &accepted))
	if accepted.To.Address != citizen {
		t.Fatalf("planned recipient %+v", accepted.To)
	}
	if code, _ := g.curl(t, officeUser, officePassword, "POST", "/offices/bauamt/messages/"+stream+"/replies",
		`{"subject": "Re: Ihr Bauantrag (API)", "body": "Sehr geehrte Frau Muster,\nwir haben Ihren Antrag erhalten.\n"}`, "Idempotency-Key: e2e-1"); code != 200 {
		t.Fatalf("repeated API reply: %d", code)
	}
	// ... and from its mail client through the submission endpoint,
	// replying to the copy it read.
	g.client(t, "submit", officeUser, officePassword, m.MessageID, "Re: Bauantrag Gartenhaus (Mail)", "Sehr geehrte Frau Muster,\nanbei die Eingangsbestaetigung.\n")
	sentEvents := g.waitEvents(t, "ReplySent", 2)
	failed := g.events(t, "ReplyFailed")
	if len(failed) != 1 || failed[0].(*gateway.ReplyFailed).Permanent || failed[0].(*gateway.ReplyFailed).ReplyID != accepted.ReplyID {
		t.Fatalf("failed attempts %+v", failed)
	}
	if len(g.events(t, "ReplyRequested")) != 2 {
		t.Fatal("the repeated API request recorded a second reply")
	}

	// The answers arrive in the citizen's Dovecot mailbox, threaded.
	for _, subject := range []string{"Re: Ihr Bauantrag (API)", "Re: Bauantrag Gartenhaus (Mail)"} {
		reply := fetchCitizenMail(t, subject)
		h := reply.Header
		if h.Get("In-Reply-To") != "<bauantrag-1@test>" || h.Get("References") != "<vorgespraech-1@test> <bauantrag-1@test>" {
			t.Fatalf("%s: In-Reply-To %q References %q", subject, h.Get("In-Reply-To"), h.Get("References"))
		}
		found := false
		for _, p := range sentEvents {
			sent := p.(*gateway.ReplySent)
			wantAttempt := 1
			if sent.ReplyID == accepted.ReplyID {
				wantAttempt = 2
			}
			found = found || (sent.ChannelMessageID == h.Get("Message-Id") && sent.Attempt == wantAttempt && sent.Channel == gateway.ChannelSMTP)
		}
		if !found {
			t.Fatalf("%s: Message-ID %q not recorded as sent", subject, h.Get("Message-Id"))
		}
		if from, _ := h.AddressList("From"); len(from) != 1 || from[0].Address != "user1@test" {
			t.Fatalf("%s: from %v", subject, from)
		}
		if to, _ := h.AddressList("To"); len(to) != 1 || to[0].Address != citizen {
			t.Fatalf("%s: to %v (the policy answers the sender, whatever the office's To said)", subject, to)
		}
	}

	// 6. Replay: the read models rebuilt from the log list the same. The
	// administrator's way: stop the gateway (SIGTERM, exit 0), delete the
	// state database, which holds only what the log determines, and start
	// it again.
	before := g.listInbox(t, officeUser, officePassword)
	g.proc.Stop(t)
	for _, f := range []string{"state.db", "state.db-wal", "state.db-shm"} {
		if err := os.Remove(filepath.Join(g.dir, "data", f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	g.start(t)
	var after []listing
	waitFor(t, "the rebuilt office mailbox", func() bool {
		after = g.listInbox(t, officeUser, officePassword)
		return len(after) == 1 && reflect.DeepEqual(after[0].Flags, []string{`\Seen`})
	})
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("office mailbox differs after replay:\nbefore %+v\nafter  %+v", before, after)
	}
	// Rebuilding redoes no legal act: no answer is sent twice.
	if sent := g.events(t, "ReplySent"); len(sent) != 2 {
		t.Fatalf("%d ReplySent events after the rebuild, want 2", len(sent))
	}

	// 7. The log, its checkpoints and the stored bytes verify offline.
	g.proc.Stop(t)
	if code, out, errs := servetest.CLI(t, bin, g.config, "log", "verify", "--blobs"); code != 0 {
		t.Fatalf("log verify --blobs: exit %d\n%s%s", code, out, errs)
	}
}

// reportNoSignatures is the Prüfprotokoll's verdict on a message without
// signatures.
const reportNoSignatures = "Keine Signaturen gefunden"

// curl calls the office API with HTTP Basic authentication and returns the
// status code and body.
func (g *gatewayUnderTest) curl(t *testing.T, user, password, method, path, body string, headers ...string) (int, []byte) {
	t.Helper()
	args := []string{"-sS", "-u", user + ":" + password, "-X", method, "-w", "\n%{http_code}"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", body)
	}
	out, err := exec.Command("curl", append(args, g.api+path)...).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", method, path, err)
	}
	i := bytes.LastIndexByte(out, '\n')
	code, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl %s %s: no status in %q", method, path, out)
	}
	return code, out[:i]
}

// fetchCitizenMail waits for a mail with the subject in the citizen's
// Dovecot INBOX and returns it parsed.
func fetchCitizenMail(t *testing.T, subject string) *mail.Message {
	t.Helper()
	pem, err := os.ReadFile(env(t, envCA))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(env(t, envIMAPS), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	must(t, err)
	defer c.Close()
	must(t, c.Login(citizen, "secret-user2").Wait())
	var raw []byte
	waitFor(t, "the reply in the citizen's mailbox", func() bool {
		if _, err := c.Select("INBOX", &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		res, err := c.UIDSearch(&goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
		if err != nil || len(res.AllUIDs()) == 0 {
			return false
		}
		msgs, err := c.Fetch(goimap.UIDSetNum(res.AllUIDs()...), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch reply: %d messages, %v", len(msgs), err)
		}
		raw = msgs[0].BodySection[0].Bytes
		return true
	})
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	must(t, err)
	return m
}
