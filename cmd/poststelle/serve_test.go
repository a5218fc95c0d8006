package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/assembly"
)

// syncBuffer is a bytes.Buffer the server's goroutines may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demoServer is one start of `serve` with the demo configuration (no file),
// its listeners moved to free ports.
type demoServer struct {
	log, notice *syncBuffer
	smtp, api   string
	stop        func() error
}

// startDemo runs serve in the current directory as `poststelle serve` with
// no configuration file would.
func startDemo(t *testing.T) *demoServer { t.Helper(); return startDemoWith(t, nil) }

// startDemoWith is startDemo with the configuration changed by tweak first.
func startDemoWith(t *testing.T, tweak func(*assembly.Config)) *demoServer {
	t.Helper()
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(cfg)
	}
	// Only the fixed demo ports change: the test must not collide with a
	// gateway running on this machine.
	assembly.ChannelSection[smtp.Config](cfg, channels.SMTPSection).Listen, cfg.OfficeAPI.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.OfficeIMAP.Listen, cfg.Submission.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TSAServer.Listen = "127.0.0.1:0"
	d := &demoServer{log: &syncBuffer{}, notice: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, newLogger(d.log, "info"), d.notice) }()
	d.stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { d.stop() })
	d.smtp = d.waitAddr(t, "smtp: receiving")
	d.api = d.waitAddr(t, "office API listening")
	return d
}

var addrAttr = regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)

// waitAddr returns the address the log line starting with msg names.
func (d *demoServer) waitAddr(t *testing.T, msg string) string {
	t.Helper()
	var addr string
	eventually(t, "log line "+msg, func() bool {
		for _, line := range strings.Split(d.log.String(), "\n") {
			if m := addrAttr.FindStringSubmatch(line); m != nil && strings.Contains(line, `msg="`+msg) {
				addr = m[1]
				return true
			}
		}
		return false
	})
	return addr
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func sendMail(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send mail: %v", err)
	}
}

func (d *demoServer) call(t *testing.T, creds offices.Credentials, method, path, body string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+d.api+path, strings.NewReader(body))
	req.SetBasicAuth(creds.User, creds.Password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// TestDemoAnswerEndsInReplySent walks the README's demo: a mail arrives by
// SMTP, the demo office answers it through the API, the answer lands in the
// outbox Maildir and the log records ReplySent. A second start must not show
// the demo password again, and no start may log it.
func TestDemoAnswerEndsInReplySent(t *testing.T) {
	t.Chdir(t.TempDir())
	d := startDemo(t)
	creds, err := readDemoCredentials(t)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.notice.String(), "password: "+creds.Password) {
		t.Fatalf("first start did not show the new password:\n%s", d.notice.String())
	}
	sendMail(t, d.smtp, "buerger@example.org", "poststelle@kreis.example",
		"From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Antrag Az. 63-2026-117\r\nMessage-ID: <antrag@example.org>\r\n\r\nGuten Tag\r\n")

	var list struct {
		Messages []struct {
			Stream string `json:"stream"`
		} `json:"messages"`
	}
	eventually(t, "the message in the demo queue", func() bool {
		return d.call(t, creds, "GET", "/offices/demo/messages", "", &list) == http.StatusOK && len(list.Messages) == 1
	})
	stream := list.Messages[0].Stream
	if code := d.call(t, creds, "POST", "/offices/demo/messages/"+stream+"/replies", `{"body":"Ihr Antrag ist eingegangen."}`, nil); code != http.StatusAccepted {
		t.Fatalf("reply: %d", code)
	}
	var msg struct {
		Replies []struct {
			State string `json:"state"`
			Error string `json:"error"`
		} `json:"replies"`
	}
	eventually(t, "the reply sent", func() bool {
		d.call(t, creds, "GET", "/offices/demo/messages/"+stream, "", &msg)
		return len(msg.Replies) == 1 && msg.Replies[0].State == "sent"
	})
	outbox, _ := filepath.Glob(filepath.Join("data", "outbox", "new", "*"))
	if len(outbox) != 1 {
		t.Fatalf("outbox holds %v, want the one answer", outbox)
	}
	answer, _ := os.ReadFile(outbox[0])
	if !bytes.Contains(answer, []byte("\r\nTo: <buerger@example.org>\r\n")) || !bytes.Contains(answer, []byte("In-Reply-To: <antrag@example.org>")) || !bytes.Contains(answer, []byte("Ihr Antrag ist eingegangen.")) {
		t.Fatalf("answer in the outbox:\n%s", answer)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	first := d.log.String()

	again := startDemo(t)
	if err := again.stop(); err != nil {
		t.Fatalf("second serve: %v", err)
	}
	if again.notice.String() != "" {
		t.Fatalf("second start printed:\n%s", again.notice.String())
	}
	for _, log := range []string{first, again.log.String()} {
		if strings.Contains(log, creds.Password) {
			t.Fatalf("the demo password is in the log:\n%s", log)
		}
		if !strings.Contains(log, filepath.Join("data", offices.DemoCredentialsFile)) {
			t.Fatalf("the log does not say where the login is:\n%s", log)
		}
	}

	code, out, errs := cli(t, "data", "log", "replay", "--type", "ReplySent")
	if code != exitOK || strings.Count(out, `"type":"ReplySent"`) != 1 {
		t.Fatalf("log replay: exit %d\n%s%s", code, out, errs)
	}
}

func readDemoCredentials(t *testing.T) (offices.Credentials, error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("data", offices.DemoCredentialsFile))
	if err != nil {
		return offices.Credentials{}, err
	}
	var c offices.Credentials
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "user="); ok {
			c.User = v
		}
		if v, ok := strings.CutPrefix(line, "password="); ok {
			c.Password = v
		}
	}
	if c.User == "" || c.Password == "" {
		return c, fmt.Errorf("credentials file:\n%s", raw)
	}
	return c, nil
}

// TestServeSurvivesSIGHUP: `systemctl reload` sends SIGHUP; a gateway
// without a rules file must log it and keep running, not die of it.
func TestServeSurvivesSIGHUP(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "poststelle.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\noffice_api: {listen: 127.0.0.1:0}\n"+
		"office_imap: {listen: 127.0.0.1:0}\nsmtp_submission: {listen: 127.0.0.1:0}\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, io.Discard, stderr) }()
	eventually(t, "the gateway running", func() bool { return strings.Contains(stderr.String(), "poststelle is running") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SIGHUP logged", func() bool { return strings.Contains(stderr.String(), "SIGHUP") })
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve: exit %d\n%s", code, stderr.String())
	}
}
