//go:build integration

// Package postbox_test runs the direct postbox API through the real
// `poststelle serve` binary, with curl as the portal: submission (multipart,
// Idempotency-Key, retry), authentication, routing by the service
// identifier, an office's answer through the office API, the answer's
// pick-up with its delivery evidence, a restart, and a crash between the
// durable record and the 201.
package postbox_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/postbox"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

const (
	tokenA = "pst_portal-a-0123456789abcdefghijklmnopqrstuv"
	tokenB = "pst_portal-b-0123456789abcdefghijklmnopqrstuv"
)

// setup writes the configuration as an administrator would: the demo
// office, a rule routing the postbox's Wohngeld service to it, and the
// postbox API with two portals, every listener on a free loopback port.
func setup(t *testing.T, dir string) (config, api, box string) {
	t.Helper()
	api, box = servetest.FreeAddr(t), servetest.FreeAddr(t)
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - id: postbox-wohngeld
    match: {channel: postbox, metadata: {postbox.serviceIdentifier: "99050012104000"}}
    offices: [demo]
`), 0o600)
	cfg := fmt.Sprintf(`data_dir: %s
routing: {rules: %s}
office_api: {listen: "%s"}
office_imap: {listen: "%s"}
smtp_submission: {listen: "%s"}
postbox:
  listen: "%s"
  max_message_bytes: 1048576
  clients:
    - {id: portal-a, name: "Bürgerportal A", token_hash: "%s"}
    - {id: portal-b, token_hash: "%s"}
`, dir, rules, api, servetest.FreeAddr(t), servetest.FreeAddr(t), box, postbox.HashToken(tokenA), postbox.HashToken(tokenB))
	config = filepath.Join(dir, "poststelle.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, api, box
}

// curl runs curl and returns the HTTP status and body; status 0 when curl
// got no answer.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	full := append([]string{"-sS", "--max-time", "20", "-w", "\n%{http_code}"}, args...)
	out, _ := exec.Command("curl", full...).Output()
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return 0, s
	}
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:i]
}

const envelope = `{"subject":"Antrag auf Wohngeld","senderReference":"antrag-2026-17","postboxReference":"pb-4711","senderName":"Erika Mustermann","serviceIdentifier":"99050012104000"}`

// submit posts the envelope and the PDF as the portal with token, under key.
func submit(t *testing.T, box, token, key, pdf string) (int, string) {
	t.Helper()
	return curl(t, "-H", "Authorization: Bearer "+token, "-H", "Idempotency-Key: "+key,
		"-F", "message="+envelope+";type=application/json",
		"-F", "attachment=@"+pdf+";type=application/pdf;filename=antrag.pdf",
		"http://"+box+"/v1/messages")
}

type answers struct {
	Answers []postbox.Answer `json:"answers"`
}

func list(t *testing.T, box, token string) answers {
	t.Helper()
	code, body := curl(t, "-H", "Authorization: Bearer "+token, "http://"+box+"/v1/answers")
	if code != 200 {
		t.Fatalf("list answers: %d %s", code, body)
	}
	var a answers
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func postboxMessages(t *testing.T, config string) []*gateway.MessageReceived {
	t.Helper()
	var out []*gateway.MessageReceived
	for _, p := range servetest.Events(t, bin, config, "MessageReceived") {
		if m := p.(*gateway.MessageReceived); m.Channel == gateway.ChannelPostbox {
			out = append(out, m)
		}
	}
	return out
}

func TestPostboxEndToEnd(t *testing.T) {
	dir := t.TempDir()
	config, api, box := setup(t, dir)
	pdf := filepath.Join(dir, "antrag.pdf")
	os.WriteFile(pdf, []byte("%PDF-1.7\n% Antrag auf Wohngeld\n"), 0o600)
	g := servetest.Start(t, bin, config, api)

	// Bad credentials first: nothing is recorded.
	if code, body := submit(t, box, "pst_wrong", "k-1", pdf); code != 401 || !strings.Contains(body, "urn:poststelle:postbox:unauthenticated") {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	code, body := submit(t, box, tokenA, "k-1", pdf)
	if code != 201 {
		t.Fatalf("submit: %d %s", code, body)
	}
	var sub struct {
		MessageID string `json:"messageId"`
		Duplicate bool   `json:"duplicate"`
	}
	json.Unmarshal([]byte(body), &sub)
	// curl makes a new boundary for the retry; the key makes it the same message.
	code, body = submit(t, box, tokenA, "k-1", pdf)
	var again struct {
		MessageID string `json:"messageId"`
		Duplicate bool   `json:"duplicate"`
	}
	json.Unmarshal([]byte(body), &again)
	if code != 200 || !again.Duplicate || again.MessageID != sub.MessageID {
		t.Fatalf("retry: %d %s, want 200 for %s", code, body, sub.MessageID)
	}
	msgs := postboxMessages(t, config)
	if len(msgs) != 1 || msgs[0].Metadata[postbox.MetaClient] != "portal-a" || len(msgs[0].Parts) != 1 ||
		msgs[0].Parts[0].Filename != "antrag.pdf" || msgs[0].From.Address != "pb-4711" {
		t.Fatalf("recorded %+v", msgs)
	}

	// The office answers through the office API; the rule routed the
	// message to it by the service identifier.
	servetest.Reply(t, api, dir, sub.MessageID, "Ihr Antrag auf Wohngeld ist eingegangen.")
	var got answers
	servetest.WaitFor(t, "the answer in portal-a's queue", func() bool {
		got = list(t, box, tokenA)
		return len(got.Answers) == 1
	})
	a := got.Answers[0]
	if a.MessageID != sub.MessageID || a.SenderReference != "antrag-2026-17" || a.PostboxReference != "pb-4711" || a.Office != "demo" {
		t.Fatalf("answer %+v", a)
	}
	if l := list(t, box, tokenB); len(l.Answers) != 0 {
		t.Fatalf("portal-b lists %+v", l)
	}
	if code, _ := curl(t, "-H", "Authorization: Bearer "+tokenB, "http://"+box+"/v1/answers/"+a.AnswerID); code != 404 {
		t.Fatalf("portal-b fetches portal-a's answer: %d", code)
	}
	code, text := curl(t, "-H", "Authorization: Bearer "+tokenA, "http://"+box+a.Body.Href)
	if code != 200 || !strings.Contains(text, "Ihr Antrag auf Wohngeld ist eingegangen.") {
		t.Fatalf("answer body: %d %q", code, text)
	}
	if code, body := curl(t, "-X", "DELETE", "-H", "Authorization: Bearer "+tokenA, "http://"+box+"/v1/answers/"+a.AnswerID); code != 204 {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	if l := list(t, box, tokenA); len(l.Answers) != 0 {
		t.Fatalf("after the pick-up: %+v", l)
	}
	var ev []*gateway.DeliveryEvidenceRecorded
	for _, p := range servetest.Events(t, bin, config, "DeliveryEvidenceRecorded") {
		ev = append(ev, p.(*gateway.DeliveryEvidenceRecorded))
	}
	if len(ev) != 1 || ev[0].Kind != gateway.EvidenceRetrieved || ev[0].ReplyID != a.AnswerID || ev[0].Attester.ID != "portal-a" {
		t.Fatalf("evidence %+v", ev)
	}
	if sent := servetest.Events(t, bin, config, "ReplySent"); len(sent) != 1 || sent[0].(*gateway.ReplySent).Channel != gateway.ChannelPostbox {
		t.Fatalf("ReplySent %+v", sent)
	}

	// After a restart the queue is what the log says: picked up stays picked up.
	g.Stop(t)
	servetest.Start(t, bin, config, api)
	if l := list(t, box, tokenA); len(l.Answers) != 0 {
		t.Fatalf("after the restart: %+v", l)
	}
	code, body = curl(t, "-H", "Authorization: Bearer "+tokenA, "http://"+box+"/v1/answers/"+a.AnswerID)
	if code != 200 || !strings.Contains(body, `"pickedUpAt":"`) {
		t.Fatalf("after the restart: %d %s", code, body)
	}
	log, _ := os.ReadFile(config + ".log")
	for _, secret := range []string{tokenA, tokenB} {
		if strings.Contains(string(log), secret) {
			t.Fatal("the gateway's log holds a client's token")
		}
	}
}

// TestCrashAfterRecord: serve dies (SIGKILL at its crash point) after the
// submission is recorded and before the 201; the portal, without an
// answer, retries with the same Idempotency-Key and gets 200 for the one
// message.
func TestCrashAfterRecord(t *testing.T) {
	dir := t.TempDir()
	config, api, box := setup(t, dir)
	pdf := filepath.Join(dir, "antrag.pdf")
	os.WriteFile(pdf, []byte("%PDF-1.7\n% Antrag\n"), 0o600)
	p := servetest.StartCrashing(t, bin, config, 1)
	servetest.WaitFor(t, "the postbox API", func() bool {
		code, _ := curl(t, "http://"+box+"/healthz")
		return code == 200
	})
	if code, body := submit(t, box, tokenA, "k-crash", pdf); code != 0 {
		t.Fatalf("the crashed submission was answered: %d %s", code, body)
	}
	p.WaitKilled(t, 30*time.Second)
	if n := len(postboxMessages(t, config)); n != 1 {
		t.Fatalf("%d messages after the crash, want the 1 recorded", n)
	}
	servetest.Start(t, bin, config, api)
	code, body := submit(t, box, tokenA, "k-crash", pdf)
	if code != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Fatalf("retry after the crash: %d %s", code, body)
	}
	if n := len(postboxMessages(t, config)); n != 1 {
		t.Fatalf("%d messages after the retry, want 1", n)
	}
}
