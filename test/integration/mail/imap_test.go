//go:build integration

package mail

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// TestIMAPKilledBetweenRecordAndMove kills the intake process (SIGKILL)
// after it recorded the third message and before it moved it, then starts
// it again: every message is recorded exactly once and ends up moved.
func TestIMAPKilledBetweenRecordAndMove(t *testing.T) {
	u := user(1)
	subjects := appendMessages(t, u, "kill-move", 8)
	dir := t.TempDir()
	cc := childConfig{Dir: dir, IMAP: imap.Config{Mailboxes: []imap.MailboxConfig{mailboxConfig(t, u, imap.TLSStartTLS)}}, KillAfter: 3}

	startChild(t, "imap", cc).waitKilled(t, 60*time.Second)
	if n := len(received(t, dir)); n != 3 {
		t.Fatalf("%d messages recorded before the kill, want 3", n)
	}
	if inbox, _ := count(t, u, "INBOX", ""); inbox != 6 {
		t.Fatalf("INBOX holds %d messages after the kill, want 6 (the third recorded but not moved)", inbox)
	}

	cc.KillAfter = 0
	c := startChild(t, "imap", cc)
	eventually(t, 60*time.Second, "the INBOX is empty", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	c.stop(t)

	msgs := received(t, dir)
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
// implicit TLS.
func TestIMAPKilledBetweenRecordAndFlag(t *testing.T) {
	u := user(2)
	subjects := appendMessages(t, u, "kill-flag", 5)
	dir := t.TempDir()
	mc := mailboxConfig(t, u, imap.TLSImplicit)
	mc.Done = imap.DoneFlag
	cc := childConfig{Dir: dir, IMAP: imap.Config{Mailboxes: []imap.MailboxConfig{mc}}, KillAfter: 2}

	startChild(t, "imap", cc).waitKilled(t, 60*time.Second)
	if _, flagged := count(t, u, "INBOX", "$PoststelleReceived"); flagged != 1 {
		t.Fatalf("%d messages flagged after the kill, want 1", flagged)
	}
	cc.KillAfter = 0
	c := startChild(t, "imap", cc)
	eventually(t, 60*time.Second, "every message is flagged", func() bool {
		_, f := count(t, u, "INBOX", "$PoststelleReceived")
		return f == len(subjects)
	})
	c.stop(t)
	subjectsOnce(t, received(t, dir), subjects)
}

// TestIMAPSurvivesDovecotRestart restarts Dovecot in the middle of a run
// (between record and move of the fifth message) and then delivers more
// mail while the intake waits in IDLE: every message is recorded once.
func TestIMAPSurvivesDovecotRestart(t *testing.T) {
	u := user(3)
	subjects := appendMessages(t, u, "restart", 12)
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ctl := strings.Fields(env(t, envCtl))
	var once sync.Once
	var records int
	w, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{mailboxConfig(t, u, imap.TLSNone)}},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
			AfterRecord: func(gateway.Receipt) {
				records++
				if records == 5 {
					once.Do(func() {
						out, err := exec.Command(ctl[0], append(ctl[1:], "restart")...).CombinedOutput()
						if err != nil {
							t.Errorf("restart dovecot: %v\n%s", err, out)
						}
					})
				}
			}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, 90*time.Second, "the first batch is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	more := appendMessages(t, u, "after-restart", 4)
	eventually(t, 30*time.Second, "the second batch is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	cancel()
	<-done
	subjectsOnce(t, received(t, dir), append(subjects, more...))
}

// TestIMAPOneFailingMailbox shows that a mailbox with a wrong password does
// not keep another from being taken in.
func TestIMAPOneFailingMailbox(t *testing.T) {
	good, bad := user(4), user(5)
	subjects := appendMessages(t, good, "isolated", 3)
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blobs, _ := blob.Open(filepath.Join(dir, "blobs"))
	badCfg := mailboxConfig(t, bad, imap.TLSNone)
	badCfg.PasswordEnv = "POSTSTELLE_IT_WRONG_PW"
	os.Setenv(badCfg.PasswordEnv, "wrong")
	w, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{badCfg, mailboxConfig(t, good, imap.TLSNone)}},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	eventually(t, 30*time.Second, "the good mailbox is taken in", func() bool { n, _ := count(t, good, "INBOX", ""); return n == 0 })
	cancel()
	<-done
	l.Close()
	subjectsOnce(t, received(t, dir), subjects)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestIMAPDeliveredByLDAWithIDLE delivers through Dovecot's own delivery
// agent while the intake waits in IDLE with a long poll interval, so the
// messages can only arrive through IDLE's notification; a multipart message
// with an attachment shows its parts in the receipt.
func TestIMAPDeliveredByLDAWithIDLE(t *testing.T) {
	u := user(6)
	conf := env(t, "POSTSTELLE_IT_DOVECOT_CONF")
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blobs, _ := blob.Open(filepath.Join(dir, "blobs"))
	mc := mailboxConfig(t, u, imap.TLSNone)
	mc.PollInterval = 10 * time.Minute
	w, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{mc}},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(time.Second) // let the intake reach IDLE on the empty INBOX

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
	cancel()
	<-done
	msgs := received(t, dir)
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
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blobs, _ := blob.Open(filepath.Join(dir, "blobs"))
	inbox := mailboxConfig(t, u, imap.TLSNone)
	inbox.Name = "inbox"
	other := inbox
	other.Name, other.Folder, other.DoneFolder = "other", "Weitergeleitet", "Poststelle-Eingegangen"
	c := dialDovecot(t, u)
	if err := c.Create("Weitergeleitet", nil).Wait(); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	c.Close()
	w, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{inbox, other}, MaxMessageBytes: 4096},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

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
	cancel()
	<-done
	subjectsOnce(t, received(t, dir), append(first, later...))
	if n, _ := count(t, u, "INBOX", ""); n != 1 {
		t.Errorf("INBOX holds %d messages, want the oversized one", n)
	}
}

// appendRaw delivers one message as given.
func appendRaw(t testing.TB, u imapUser, folder, raw string) {
	t.Helper()
	c := dialDovecot(t, u)
	defer c.Close()
	cmd := c.Append(folder, int64(len(raw)), nil)
	cmd.Write([]byte(raw))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPHostileHeaders: messages whose header go-imap's in-memory server
// cannot parse (and sends as an empty literal) are delivered by Dovecot
// as stored, and the intake records each with its bytes and, where the
// header is damaged, its problems. Dovecot sends a NUL as 0x80 and a bare LF
// as CRLF; the bytes kept are those it sent.
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
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := blob.Open(filepath.Join(dir, "blobs"))
	w, err := imap.New(imap.Config{Mailboxes: []imap.MailboxConfig{mailboxConfig(t, u, imap.TLSNone)}},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	eventually(t, 30*time.Second, "every hostile message is taken in", func() bool { n, _ := count(t, u, "INBOX", ""); return n == 0 })
	cancel()
	<-done
	l.Close()
	got := received(t, dir)
	if len(got) != len(msgs) {
		t.Fatalf("%d messages recorded, want %d", len(got), len(msgs))
	}
	for i, m := range msgs {
		want := m.raw
		if m.sent != "" {
			want = m.sent
		}
		rc, err := blobs.Open(context.Background(), got[i].Raw)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != want {
			t.Errorf("message %d: stored %q, want %q", i, raw, want)
		}
		if m.broken && len(got[i].Problems) == 0 {
			t.Errorf("message %d: recorded without a problem for triage", i)
		}
	}
}
