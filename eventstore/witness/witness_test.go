package witness_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/eventstore/witness"
)

// mailSink is an SMTP server on 127.0.0.1 that keeps what it receives.
type mailSink struct {
	mu    sync.Mutex
	addr  string
	mails map[string][]byte // recipient → message
}

type sinkSession struct {
	s  *mailSink
	to []string
}

func (ss *sinkSession) Reset()                                 { ss.to = nil }
func (ss *sinkSession) Logout() error                          { return nil }
func (ss *sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	for _, to := range ss.to {
		ss.s.mails[to] = b
	}
	return err
}

func startMailSink(t *testing.T) *mailSink {
	s := &mailSink{mails: map[string][]byte{}}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *mailSink) get(rcpt string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails[rcpt]
}

// httpSink is an HTTP witness endpoint on 127.0.0.1.
type httpSink struct {
	mu     sync.Mutex
	status int
	notes  [][]byte
	tokens [][]byte
}

func (h *httpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status != 0 {
		http.Error(w, "witness down", h.status)
		return
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	read := func(name string) []byte {
		f, _, err := r.FormFile(name)
		if err != nil {
			return nil
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		return b
	}
	h.notes = append(h.notes, read("note"))
	h.tokens = append(h.tokens, read("timestamp"))
}

type fixture struct {
	key   ed25519.PrivateKey
	log   *sqlitelog.Log
	dir   string
	mail  *mailSink
	web   *httpSink
	pub   *witness.Publisher
	mu    sync.Mutex
	round []*witness.Outcome
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{dir: t.TempDir(), mail: startMailSink(t), web: &httpSink{}}
	_, f.key, _ = ed25519.GenerateKey(rand.Reader)
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(t.TempDir(), "log.db"), Signer: f.key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.log = l
	f.append(t, 5)

	web := httptest.NewServer(f.web)
	t.Cleanup(web.Close)
	hw, err := witness.NewHTTP(web.URL+"/heads", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(f.mail.addr)
	var portN int
	fmt.Sscan(port, &portN)
	blobs, err := blob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	relay, err := smtpout.New(smtpout.Config{From: "Poststelle <poststelle@kreis.example>",
		Relay: smtpout.RelayConfig{Host: host, Port: portN, TLS: smtpout.TLSNone, Timeout: 5 * time.Second}},
		smtpout.Deps{Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	_, tsaURL := tsptest.Start(t, tsptest.Normal)
	f.pub = &witness.Publisher{
		Heads: func(ctx context.Context) ([]integrity.Head, error) {
			return integrity.CurrentHeads(ctx, l, f.key.Public())
		},
		Signer: f.key,
		TSA:    &tsp.Client{TSAs: []tsp.TSA{{Name: "test TSA", URL: tsaURL}}, Attempts: 1},
		Witnesses: []witness.Witness{&witness.Dir{Path: f.dir}, hw,
			&witness.Mail{Relay: relay, From: "poststelle@kreis.example", To: []string{"pruefung@kreis.example", "rpa@land.example"}}},
		Record: func(_ context.Context, o *witness.Outcome) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.round = append(f.round, o)
			return nil
		},
	}
	return f
}

func (f *fixture) append(t *testing.T, n int) {
	for range n {
		id := make([]byte, 8)
		rand.Read(id)
		if _, err := f.log.Append(context.Background(), eventstore.Event{ID: fmt.Sprintf("%x", id), Tenant: "t", Stream: "s", Type: "T", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkHead asserts that a head file verifies with the key, that its token
// covers it, and that the log extends it.
func (f *fixture) checkHead(t *testing.T, from string, note, tsr []byte) {
	t.Helper()
	heads, err := integrity.ParseHeads(note, f.key.Public())
	if err != nil {
		t.Fatalf("%s: %v", from, err)
	}
	tok, err := witness.ParseStamp(tsr)
	if err != nil {
		t.Fatalf("%s: token: %v", from, err)
	}
	if res := tok.Verify(tsp.VerifyOptions{Data: note}); !res.Valid {
		t.Fatalf("%s: token does not cover the note: %+v", from, res.Checks)
	}
	check, err := integrity.NewHeadCheck(f.log.LogID(), heads)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := f.log.Read(context.Background(), 0, 0, 1000)
	for i := range evs {
		if err := check.Add(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if probs := check.Finish(1); len(probs) != 0 {
		t.Fatalf("%s: %v", from, probs[0])
	}
}

func TestPublishToEveryWitness(t *testing.T) {
	f := newFixture(t)
	o, err := f.pub.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Failed) != 0 || len(o.Accepted) != 3 || o.Publication.Size != 5 || o.Publication.Response == nil {
		t.Fatalf("outcome %+v", o)
	}
	f.append(t, 3) // the log goes on; the saved heads must still hold

	// The directory: head-5-<time>.note with its .tsr.
	notes, _ := filepath.Glob(filepath.Join(f.dir, "head-5-*.note"))
	if len(notes) != 1 {
		t.Fatalf("directory holds %v", notes)
	}
	note, _ := os.ReadFile(notes[0])
	tsr, err := os.ReadFile(strings.TrimSuffix(notes[0], ".note") + ".tsr")
	if err != nil || !bytes.Equal(note, o.Publication.Note) {
		t.Fatalf("directory note differs or token missing: %v", err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(f.dir, ".tmp-*")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	f.checkHead(t, "directory", note, tsr)

	// HTTP: the multipart parts, byte for byte.
	if len(f.web.notes) != 1 || !bytes.Equal(f.web.notes[0], note) {
		t.Fatalf("HTTP witness got %q", f.web.notes)
	}
	f.checkHead(t, "http", f.web.notes[0], f.web.tokens[0])

	// E-mail: every auditor; the body shows the note, the attachments carry it.
	for _, rcpt := range []string{"pruefung@kreis.example", "rpa@land.example"} {
		body, att := readMail(t, f.mail.get(rcpt))
		if !strings.Contains(strings.ReplaceAll(string(body), "\r\n", "\n"), string(note)) {
			t.Fatalf("mail to %s: body lacks the note:\n%s", rcpt, body)
		}
		f.checkHead(t, "mail to "+rcpt, att["head.note"], att["head.tsr"])
	}
	if len(f.round) != 1 {
		t.Fatalf("%d rounds recorded", len(f.round))
	}
}

// readMail returns the text body and the attachments by file name.
func readMail(t *testing.T, raw []byte) ([]byte, map[string][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail: %v\n%s", err, raw)
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); !strings.Contains(subj, "5 events") {
		t.Fatalf("subject %q", subj)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	var body []byte
	att := map[string][]byte{}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch p.Header.Get("Content-Transfer-Encoding") {
		case "quoted-printable":
			body, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		case "base64":
			dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b), "\r\n", ""))
			if err != nil {
				t.Fatal(err)
			}
			att[p.FileName()] = dec
		}
	}
	return body, att
}

// TestRunKeepsGoing: a failing witness is retried each tick, the others
// receive every head, and the last head is published on shutdown.
func TestRunKeepsGoing(t *testing.T) {
	f := newFixture(t)
	f.web.status = http.StatusServiceUnavailable
	f.pub.Interval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.pub.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.round)
		f.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.append(t, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.round[len(f.round)-1]
	if last.Publication.Size != 7 || len(last.Accepted) != 2 || last.Failed["http:"+f.pub.Witnesses[1].(*witness.HTTP).URL] == nil {
		t.Fatalf("last round: size %d accepted %v failed %v", last.Publication.Size, last.Accepted, last.Failed)
	}
	if !strings.Contains(last.Failed["http:"+f.pub.Witnesses[1].(*witness.HTTP).URL].Error(), "503") {
		t.Fatalf("failure does not name the status: %v", last.Failed)
	}
}

func TestNewHTTPRefusesPlainText(t *testing.T) {
	for _, u := range []string{"http://witness.example/heads", "ftp://127.0.0.1/", "/relative"} {
		if _, err := witness.NewHTTP(u, "", 0); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	for _, u := range []string{"https://witness.example/heads", "http://127.0.0.1:8080/", "http://localhost/h"} {
		if _, err := witness.NewHTTP(u, "", 0); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  witness.Config
		want string
	}{
		{witness.Config{}, "witnesses: name at least one"},
		{witness.Config{Dir: []string{"/x"}, Interval: time.Millisecond}, "witnesses.interval"},
		{witness.Config{Email: &witness.EmailConfig{}}, "witnesses.email.to"},
		{witness.Config{Email: &witness.EmailConfig{To: []string{"Name <a@b.example>"}}}, "witnesses.email.to[0]"},
		{witness.Config{HTTP: []witness.HTTPConfig{{URL: "http://witness.example/"}}}, "witnesses.http[0].url"},
		{witness.Config{Dir: []string{""}}, "witnesses.dir[0]"},
		{witness.Config{Dir: []string{"/mnt/audit"}, Email: &witness.EmailConfig{To: []string{"a@b.example"}}}, ""},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
