//go:build integration

package mail

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// killRounds is how often the crash tests SIGKILL serve mid-stream.
const killRounds = 6

// imapCrashRounds SIGKILLs serve while it takes in a user's INBOX, round
// after round, each time once the log has grown since the last kill, and
// starts it again. After each kill the mailbox must never show a message
// as done (moved or flagged) that the log does not hold: the
// acknowledgement to the mailbox follows the durable append. It returns how
// many kills fell between a record and its acknowledgement (more recorded
// than done), a window the next start must close without a second record.
func imapCrashRounds(t *testing.T, g *gw, total int, done func() int) (window int) {
	t.Helper()
	recorded := len(g.received(t))
	for round := 0; round < killRounds && recorded < total; round++ {
		p := g.start(t)
		eventually(t, 60*time.Second, "the log grows", func() bool { return len(g.received(t)) > recorded })
		p.Kill(t)
		recorded = len(g.received(t))
		d := done()
		t.Logf("round %d: killed with %d of %d recorded, %d done in the mailbox", round, recorded, total, d)
		if d > recorded {
			t.Fatalf("after the kill the mailbox shows %d messages done but the log holds %d: acknowledged before recorded", d, recorded)
		}
		if d < recorded {
			window++
		}
	}
	return window
}

// crashAt starts serve with its crash point armed (the binary is built
// with -tags crashpoints): it SIGKILLs itself after the n-th record, before
// the acknowledgement. The log then holds exactly n messages.
func crashAt(t *testing.T, g *gw, n int) {
	t.Helper()
	servetest.StartCrashing(t, bin, g.config, n).WaitKilled(t, 60*time.Second)
	if got := len(g.received(t)); got != n {
		t.Fatalf("%d messages recorded before the crash point, want %d", got, n)
	}
}

// TestIMAPKilledBetweenRecordAndMove kills serve after it recorded the
// third message and before it moved it (the crash point), then SIGKILLs it
// again and again while it takes in a mailbox over STARTTLS (done = move),
// then lets it finish: every message is recorded exactly once and ends up
// moved, including those recorded but not yet moved when serve died.
func TestIMAPKilledBetweenRecordAndMove(t *testing.T) {
	u := user(1)
	subjects := appendMessages(t, u, "kill-move", 120)
	g := newGateway(t)
	g.write(t, "imap:\n  mailboxes:\n"+g.mailbox(t, u, "starttls", ""))
	moved := func() int { n, _ := count(t, u, "Poststelle-Eingegangen", ""); return n }
	crashAt(t, g, 3)
	if inbox, _ := count(t, u, "INBOX", ""); inbox != len(subjects)-2 || moved() != 2 {
		t.Fatalf("after the crash point INBOX holds %d and the done folder %d, want %d and 2 (the third recorded but not moved)",
			inbox, moved(), len(subjects)-2)
	}
	window := imapCrashRounds(t, g, len(subjects), moved)

	p := g.start(t)
	eventually(t, 60*time.Second, "the INBOX is empty", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	p.Stop(t)
	t.Logf("%d of %d kills fell between record and move", window, killRounds)

	msgs := g.received(t)
	subjectsOnce(t, msgs, subjects)
	if done, _ := count(t, u, "Poststelle-Eingegangen", ""); done != len(subjects) {
		t.Errorf("done folder holds %d messages, want %d", done, len(subjects))
	}
	m := msgs[0]
	if m.Channel != gateway.ChannelIMAP || m.Transport.Envelope["uid"] == "" || m.Transport.Envelope["uidValidity"] == "" ||
		!strings.HasPrefix(m.Transport.TLS, "TLS 1.") || m.From.Address != "b0@example.org" {
		t.Errorf("evidence %+v", m)
	}
}

// TestIMAPKilledBetweenRecordAndFlag is the same with done = flag over
// implicit TLS, the crash point after the second record.
func TestIMAPKilledBetweenRecordAndFlag(t *testing.T) {
	u := user(2)
	subjects := appendMessages(t, u, "kill-flag", 120)
	g := newGateway(t)
	g.write(t, "imap:\n  mailboxes:\n"+g.mailbox(t, u, "implicit", ", done: flag"))
	flagged := func() int { _, f := count(t, u, "INBOX", "$PoststelleReceived"); return f }
	crashAt(t, g, 2)
	if f := flagged(); f != 1 {
		t.Fatalf("%d messages flagged after the crash point, want 1 (the second recorded but not flagged)", f)
	}
	window := imapCrashRounds(t, g, len(subjects), flagged)

	p := g.start(t)
	eventually(t, 60*time.Second, "every message is flagged", func() bool { return flagged() == len(subjects) })
	p.Stop(t)
	t.Logf("%d of %d kills fell between record and flag", window, killRounds)
	subjectsOnce(t, g.received(t), subjects)
}

// TestIMAPSurvivesDovecotRestart restarts Dovecot (every process, so open
// connections drop) while serve is in the middle of a batch, then delivers
// more mail while the intake waits in IDLE: every message is recorded once.
func TestIMAPSurvivesDovecotRestart(t *testing.T) {
	u := user(3)
	subjects := appendMessages(t, u, "restart", 60)
	g := newGateway(t)
	g.write(t, "imap:\n  mailboxes:\n"+g.mailbox(t, u, "none", ""))
	p := g.start(t)
	var atRestart int
	eventually(t, 60*time.Second, "the intake is under way", func() bool { atRestart = len(g.received(t)); return atRestart >= 5 })
	ctl := strings.Fields(env(t, envCtl))
	if out, err := exec.Command(ctl[0], append(ctl[1:], "restart")...).CombinedOutput(); err != nil {
		t.Fatalf("restart dovecot: %v\n%s", err, out)
	}
	if atRestart >= len(subjects) {
		t.Fatalf("all %d messages were taken in before Dovecot restarted: the restart did not fall mid-stream", atRestart)
	}
	t.Logf("Dovecot restarted with %d of %d messages recorded", atRestart, len(subjects))
	eventually(t, 90*time.Second, "the first batch is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	more := appendMessages(t, u, "after-restart", 4)
	eventually(t, 30*time.Second, "the second batch is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	p.Stop(t)
	subjectsOnce(t, g.received(t), append(subjects, more...))
}

// TestIMAPOneFailingMailbox shows that a mailbox with a wrong password does
// not keep another from being taken in.
func TestIMAPOneFailingMailbox(t *testing.T) {
	good, bad := user(4), user(5)
	subjects := appendMessages(t, good, "isolated", 3)
	g := newGateway(t)
	// The failing mailbox's password file holds a wrong password.
	g.write(t, "imap:\n  mailboxes:\n"+g.mailbox(t, imapUser{name: bad.name, password: "wrong"}, "none", ", name: bad")+
		g.mailbox(t, good, "none", ", name: good"))
	p := g.start(t)
	eventually(t, 30*time.Second, "the good mailbox is taken in", func() bool { n, _ := count(t, good, "INBOX", ""); return n == 0 })
	p.Stop(t)
	subjectsOnce(t, g.received(t), subjects)
}

// TestIMAPDeliveredByLDAWithIDLE delivers through Dovecot's own delivery
// agent while the intake waits in IDLE with a long poll interval, so the
// messages can only arrive through IDLE's notification; a multipart message
// with an attachment shows its parts in the receipt.
func TestIMAPDeliveredByLDAWithIDLE(t *testing.T) {
	u := user(6)
	conf := env(t, envConf)
	g := newGateway(t)
	g.write(t, "imap:\n  mailboxes:\n"+strings.Replace(g.mailbox(t, u, "none", ""), "poll_interval: 2s", "poll_interval: 10m", 1))
	p := g.start(t)
	time.Sleep(2 * time.Second) // let the intake reach IDLE on the empty INBOX

	messages := []string{
		"From: a@example.org\nTo: user6@test\nSubject: lda plain\n\nHallo.\n",
		"From: b@example.org\nTo: user6@test\nSubject: lda attachment\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n" +
			"--x\nContent-Type: text/plain\n\nsiehe Anhang\n--x\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=antrag.pdf\n" +
			"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--x--\n",
	}
	for _, m := range messages {
		lda := exec.Command("/usr/lib/dovecot/dovecot-lda", "-c", conf, "-d", u.name, "-f", "sender@example.org")
		lda.Stdin = strings.NewReader(m)
		out, err := lda.CombinedOutput()
		if err != nil {
			t.Fatalf("dovecot-lda: %v\n%s", err, out)
		}
	}
	eventually(t, 30*time.Second, "the delivered messages are taken in", func() bool {
		n, _ := count(t, u, "INBOX", "")
		d, _ := count(t, u, "Poststelle-Eingegangen", "")
		return n == 0 && d == len(messages)
	})
	p.Stop(t)
	msgs := g.received(t)
	subjectsOnce(t, msgs, []string{"lda plain", "lda attachment"})
	for _, m := range msgs {
		if m.Subject == "lda attachment" && (len(m.Parts) != 2 || m.Parts[1].Filename != "antrag.pdf" || m.Parts[1].Kind != "attachment") {
			t.Errorf("parts %+v", m.Parts)
		}
	}
}

// TestIMAPCopiesAndOversize: a message that was taken in and then copied
// back into a watched folder (a new UID, perhaps another folder) is
// recognised by its content and not recorded again; a message over the
// size limit stays in the mailbox without holding up the others.
func TestIMAPCopiesAndOversize(t *testing.T) {
	u := user(7)
	c := dialDovecot(t, u)
	if err := c.Create("Weitergeleitet", nil).Wait(); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	c.Close()
	g := newGateway(t)
	g.write(t, "imap:\n  max_message_bytes: 4096\n  mailboxes:\n"+g.mailbox(t, u, "none", ", name: inbox")+
		g.mailbox(t, u, "none", ", name: other, folder: Weitergeleitet, done_folder: Poststelle-Eingegangen"))
	p := g.start(t)

	first := appendMessages(t, u, "copied", 2)
	appendRaw(t, u, "INBOX", "Subject: too big\r\n\r\n"+strings.Repeat("x", 8000)+"\r\n")
	later := appendMessages(t, u, "after the big one", 1)
	eventually(t, 30*time.Second, "all but the big message are taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 1 })

	// Copy what was taken in back into a watched folder: new UIDs, same bytes.
	c = dialDovecot(t, u)
	if _, err := c.Select("Poststelle-Eingegangen", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(goimap.SeqSetNum(1, 2), "Weitergeleitet").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, 30*time.Second, "the copies are handled", func() bool { n, _ := count(t, u, "Weitergeleitet", ""); return n == 0 })
	p.Stop(t)
	subjectsOnce(t, g.received(t), append(first, later...))
	if n, _ := count(t, u, "INBOX", ""); n != 1 {
		t.Errorf("INBOX holds %d messages, want the oversized one", n)
	}
}

// TestIMAPHostileHeaders hands the intake messages whose header section is
// malformed. Dovecot delivers every one of them in full; each is recorded
// with the bytes Dovecot sent (it turns a NUL into 0x80 and a bare LF into
// CRLF), and the malformed ones carry problems for triage.
func TestIMAPHostileHeaders(t *testing.T) {
	u := user(8)
	msgs := []struct {
		raw, sent string // sent: what Dovecot transmits, when it differs
		broken    bool
	}{
		{raw: "Subject: h1\r\nNoColonHere\r\n: empty name\r\nFrom: a@example.org\r\n\r\nbody\r\n", broken: true},
		{raw: "Subject: h2\r\nX-Na\x00me: x\r\n\r\nbody\r\n", sent: "Subject: h2\r\nX-Na\x80me: x\r\n\r\nbody\r\n", broken: true},
		{raw: "Subject: h3\r\nX-N\xe4me: x\r\n\r\nbody\r\n", broken: true},
		{raw: "Subject: h4\r\nX-Long: " + strings.Repeat("a", 1200) + "\r\n\r\nbody\r\n"},
		{raw: "Subject: h5\nFrom: a@example.org\n\nbody\n", sent: "Subject: h5\r\nFrom: a@example.org\r\n\r\nbody\r\n"},
		{raw: "Subject: h6\r\nFrom: a@example.org\r\n"},
	}
	for _, m := range msgs {
		appendRaw(t, u, "INBOX", m.raw)
	}
	g := newGateway(t)
	g.write(t, "imap:\n  mailboxes:\n"+g.mailbox(t, u, "none", ""))
	p := g.start(t)
	eventually(t, 30*time.Second, "every hostile message is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	recs := servetest.Replay(t, bin, g.config, "MessageReceived")
	if len(recs) != len(msgs) {
		p.Stop(t)
		t.Fatalf("%d messages recorded, want %d", len(recs), len(msgs))
	}
	for i, m := range msgs {
		want := m.raw
		if m.sent != "" {
			want = m.sent
		}
		if raw := g.rawMessage(t, recs[i].Stream); string(raw) != want {
			t.Errorf("message %d: stored %q, want %q", i, raw, want)
		}
		if got := recs[i].Payload.(*gateway.MessageReceived); m.broken && len(got.Problems) == 0 {
			t.Errorf("message %d: recorded without a problem for triage", i)
		}
	}
	p.Stop(t)
}
