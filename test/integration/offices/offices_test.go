//go:build integration

// Package offices_test runs the office side against real sockets: the real
// `poststelle serve` binary with a configuration file (the embedded log,
// SMTP intake, routing, office API), mail sent with curl over SMTP, and the
// office API driven with curl.
package offices_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
	"github.com/poststelle/poststelle/office/officeapi"
)

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

// gatewayProc is a running `poststelle serve`.
type gatewayProc struct {
	*servetest.Process
	api  string // host:port of the office API
	smtp string // host:port of the receiving SMTP server
}

// startGateway writes a configuration as an administrator would (data in
// dir, the offices and rules files, SMTP accepting every recipient, every
// listener on a free loopback port) and starts poststelle serve with it.
// An empty officesFile runs the demo office.
func startGateway(t *testing.T, dir, officesFile, rulesFile string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{api: servetest.FreeAddr(t), smtp: servetest.FreeAddr(t)}
	cfg := fmt.Sprintf(`data_dir: %s
routing: {rules: %s}
smtp: {listen: "%s", accept_all: true}
office_api: {listen: "%s", webhook: {first_backoff: 100ms, poll_interval: 200ms}}
office_imap: {listen: "%s"}
smtp_submission: {listen: "%s"}
`, dir, rulesFile, g.smtp, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t))
	if officesFile != "" {
		cfg += "offices: " + officesFile + "\n"
	}
	config := filepath.Join(dir, "poststelle.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Process = servetest.Start(t, bin, config, g.api)
	return g
}

// curl runs curl and returns the HTTP status and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	full := append([]string{"-sS", "--max-time", "20", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command("curl", full...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:i]
}

func sendMail(t *testing.T, smtpAddr, rcpt, subject string) {
	t.Helper()
	eml := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(eml, []byte("From: Erika Mustermann <erika@example.org>\r\nTo: "+rcpt+"\r\nSubject: "+subject+
		"\r\nMessage-ID: <"+strings.ReplaceAll(subject, " ", "-")+"@example.org>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGuten Tag,\r\nanbei mein Antrag.\r\n"+
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../Antrag \\\"2024\\\".pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcKJcTl8uXr\r\n--b1--\r\n"), 0o600)
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "smtp://"+smtpAddr, "--mail-from", "erika@example.org",
		"--mail-rcpt", rcpt, "--upload-file", eml).CombinedOutput()
	if err != nil {
		t.Fatalf("curl smtp: %v\n%s", err, out)
	}
}

type list struct {
	Messages []offices.Message `json:"messages"`
	Next     int64             `json:"next"`
}

// waitList polls until the office lists a message with the subject.
func waitList(t *testing.T, auth []string, api, office, subject string) offices.Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code, body := curl(t, append(auth, "http://"+api+"/offices/"+office+"/messages?wait=5")...)
		if code != 200 {
			t.Fatalf("list: %d %s", code, body)
		}
		var l list
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		for _, m := range l.Messages {
			if m.Subject == subject {
				return m
			}
		}
	}
	t.Fatalf("%q never listed in %s", subject, office)
	return offices.Message{}
}

func TestOfficeAPIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	token, _ := offices.NewToken()
	pw := "sachbearbeitung-2024"
	pwHash, _ := offices.HashPassword(pw)
	mailroomPw := "poststelle-2024"
	mrHash, _ := offices.HashPassword(mailroomPw)
	secret := "webhook-secret-0123456789"
	secretFile := filepath.Join(dir, "hook.secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)

	// The case system's webhook receiver.
	type delivery struct {
		header http.Header
		body   []byte
	}
	hooks := make(chan delivery, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- delivery{r.Header.Clone(), b}
	}))
	defer hook.Close()

	officesFile := filepath.Join(dir, "offices.yaml")
	os.WriteFile(officesFile, []byte(fmt.Sprintf(`offices:
  - id: bauamt
    name: Bauordnungsamt
    webhooks: [{url: %q, secret_file: %q}]
    members:
      - {user: mueller, password_hash: %q}
      - {user: dms-bauamt, token_hash: %q}
  - id: ordnungsamt
    members: [{user: schmidt, password_hash: %q}]
mailroom: [{user: post, password_hash: %q}]
`, hook.URL, secretFile, pwHash, offices.HashToken(token), pwHash, mrHash)), 0o600)
	rulesFile := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesFile, []byte(`rules:
  - id: bauamt-postfach
    match: {recipient: bauamt@stadt.example}
    offices: [bauamt]
`), 0o600)

	g := startGateway(t, dir, officesFile, rulesFile)
	api := "http://" + g.api
	basic := []string{"-u", "mueller:" + pw}
	bearer := []string{"-H", "Authorization: Bearer " + token}

	// An event stream is open before the mail arrives.
	sse := exec.Command("curl", "-sN", "--max-time", "60", "-H", "Authorization: Bearer "+token, api+"/offices/bauamt/events")
	sseOut, _ := sse.StdoutPipe()
	if err := sse.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sse.Process.Kill(); sse.Wait() }()
	events := make(chan string, 16)
	var sseWG sync.WaitGroup
	sseWG.Go(func() {
		sc := bufio.NewScanner(sseOut)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
	})
	time.Sleep(300 * time.Millisecond) // let the stream take its starting cursor

	sendMail(t, g.smtp, "bauamt@stadt.example", "Bauantrag Flurstueck 17")

	select {
	case d := <-events:
		if !strings.Contains(d, "Bauantrag Flurstueck 17") {
			t.Fatalf("SSE event: %s", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no SSE event")
	}
	m := waitList(t, basic, g.api, "bauamt", "Bauantrag Flurstueck 17")
	if m.Routing.Rule != "bauamt-postfach" || len(m.Routing.RulesVersion) != 64 || m.Routing.DecidedBy != "rules" || len(m.Parts) < 2 {
		t.Fatalf("message: %+v", m)
	}

	// Download the attachment: type, safe file name, bytes.
	var pdf string
	for _, p := range m.Parts {
		if p.MediaType == "application/pdf" {
			pdf = p.Path
		}
	}
	hdrFile := filepath.Join(dir, "headers")
	code, body := curl(t, append(bearer, "-D", hdrFile, api+"/offices/bauamt/messages/"+m.Stream+"/parts/"+pdf)...)
	hdrs, _ := os.ReadFile(hdrFile)
	if code != 200 || !strings.HasPrefix(body, "%PDF-1.7") || !strings.Contains(string(hdrs), "Content-Type: application/pdf") ||
		!strings.Contains(string(hdrs), "Content-Disposition: attachment;") || strings.Contains(string(hdrs), "../") {
		t.Fatalf("download: %d %q\n%s", code, body, hdrs)
	}

	// The webhook got a correctly signed POST.
	select {
	case d := <-hooks:
		if err := officeapi.VerifySignature([]byte(secret), d.header.Get(officeapi.SignatureHeader), d.body, time.Now(), 0); err != nil {
			t.Fatalf("webhook signature: %v", err)
		}
		var p officeapi.WebhookPayload
		json.Unmarshal(d.body, &p)
		if p.Stream != m.Stream || p.Office != "bauamt" || d.header.Get(officeapi.DeliveryHeader) != p.DeliveryID {
			t.Fatalf("webhook payload: %s", d.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook delivery")
	}

	// Authorisation over real sockets.
	if code, _ := curl(t, api+"/offices/bauamt/messages"); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
	if code, _ := curl(t, "-u", "schmidt:"+pw, api+"/offices/bauamt/messages/"+m.Stream); code != 403 {
		t.Fatalf("other office's member: %d", code)
	}

	// Acknowledge.
	if code, body := curl(t, append(basic, "-X", "POST", api+"/offices/bauamt/messages/"+m.Stream+"/ack")...); code != 201 {
		t.Fatalf("ack: %d %s", code, body)
	}
	if code, _ := curl(t, append(bearer, "-X", "POST", api+"/offices/bauamt/messages/"+m.Stream+"/ack")...); code != 200 {
		t.Fatalf("second ack: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := curl(t, append(basic, api+"/offices/bauamt/messages/"+m.Stream)...)
		if strings.Contains(body, `"state":"acknowledged"`) && strings.Contains(body, `"acknowledgedBy":"mueller"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never acknowledged: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A mail no rule places goes to triage; the mailroom assigns it.
	sendMail(t, g.smtp, "unbekannt@stadt.example", "Irgendwas")
	var stream string
	for deadline := time.Now().Add(20 * time.Second); stream == ""; {
		_, body := curl(t, "-u", "post:"+mailroomPw, api+"/triage")
		var tl struct {
			Items []offices.TriageItem `json:"items"`
		}
		json.Unmarshal([]byte(body), &tl)
		for _, it := range tl.Items {
			if it.Received != nil && it.Received.Subject == "Irgendwas" {
				stream = it.Stream
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never in triage: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := curl(t, append(basic, api+"/triage")...); code != 403 {
		t.Fatalf("office member sees triage: %d", code)
	}
	code, body = curl(t, "-u", "post:"+mailroomPw, "-X", "POST", "-H", "Content-Type: application/json",
		"--data", `{"offices":["ordnungsamt"],"reason":"Zuständigkeit Ordnungsamt"}`, api+"/triage/"+stream+"/assign")
	if code != 201 {
		t.Fatalf("assign: %d %s", code, body)
	}
	om := waitList(t, []string{"-u", "schmidt:" + pw}, g.api, "ordnungsamt", "Irgendwas")
	if om.Routing.DecidedBy != "post" {
		t.Fatalf("assigned: %+v", om.Routing)
	}

	// New rules without restart (SIGHUP); the decision records the new version.
	os.WriteFile(rulesFile, []byte(`rules:
  - id: bauamt-postfach
    match: {recipient: bauamt@stadt.example}
    offices: [bauamt]
  - id: ordnung-postfach
    match: {recipient: ordnung@stadt.example}
    offices: [ordnungsamt]
`), 0o600)
	g.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	sendMail(t, g.smtp, "ordnung@stadt.example", "Laermbeschwerde")
	lm := waitList(t, []string{"-u", "schmidt:" + pw}, g.api, "ordnungsamt", "Laermbeschwerde")
	if lm.Routing.Rule != "ordnung-postfach" || lm.Routing.RulesVersion == m.Routing.RulesVersion {
		t.Fatalf("after reload: %+v", lm.Routing)
	}
	g.Stop(t)
}

// TestDemoSetUp runs without an offices file: the demo office and its login
// in demo-credentials.txt, which survives a restart.
func TestDemoSetUp(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules: [{id: demo-catch-all, offices: [demo]}]\n"), 0o600)
	g := startGateway(t, dir, "", rules)
	raw, err := os.ReadFile(filepath.Join(dir, "demo-credentials.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var user, pw string
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(l, "password="); ok {
			pw = v
		}
	}
	if user != "demo" || len(pw) < 16 {
		t.Fatalf("credentials file:\n%s", raw)
	}
	sendMail(t, g.smtp, "irgendwer@example.org", "Hallo Demo")
	waitList(t, []string{"-u", user + ":" + pw}, g.api, "demo", "Hallo Demo")
	g.Stop(t)
}
