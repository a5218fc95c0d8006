package submission

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
)

type subEnv struct {
	log    *sqlitelog.Log
	state  *sql.DB
	blobs  *blob.Store
	sub    *Server
	stream string
}

func newSubEnv(t *testing.T) *subEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &subEnv{}
	var err error
	if e.log, err = sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: ed25519.NewKeyFromSeed(make([]byte, 32))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close() })
	if e.state, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=busy_timeout(10000)"); err != nil {
		t.Fatal(err)
	}
	e.state.SetMaxOpenConns(1)
	t.Cleanup(func() { e.state.Close() })
	e.blobs, _ = blob.Open(filepath.Join(dir, "blobs"))
	ha, _ := offices.HashPassword("alice-pw")
	hb, _ := offices.HashPassword("bob-pw")
	d, err := offices.NewDirectory(offices.Config{Offices: []offices.Office{
		{ID: "bauamt", Members: []offices.Member{{User: "alice", PasswordHash: ha}}},
		{ID: "ordnungsamt", Members: []offices.Member{{User: "bob", PasswordHash: hb}}}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.blobs.PutBytes(ctx, []byte(answeredMail))
	ev, _ := gateway.NewReceived("", "smtp:1", &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<antrag-1@example.org>",
		From: gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}, Subject: "Antrag", Raw: raw, ReceivedAt: time.Now()})
	routed, _ := gateway.Follow("test", &ev, 0, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	if _, err := e.log.Append(ctx, ev, routed); err != nil {
		t.Fatal(err)
	}
	e.stream = ev.Stream
	r := &projection.Runner{Log: e.log, DB: e.state, Registry: gateway.NewRegistry()}
	if err := r.CatchUp(ctx, offices.Inbox{}); err != nil {
		t.Fatal(err)
	}
	e.sub, err = New(Config{Listen: "127.0.0.1:0"}, Deps{Directory: d, Log: e.log, State: e.state, Blobs: e.blobs, Plan: emailPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.sub.Run(sctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *subEnv) send(t *testing.T, user, pass, msg string) error {
	t.Helper()
	c, err := gosmtp.Dial(e.sub.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	if err := c.Mail("alice@stadt.example", nil); err != nil {
		return err
	}
	if err := c.Rcpt("someone@else.example", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n")))
	return w.Close()
}

func (e *subEnv) requests(t *testing.T) []*gateway.ReplyRequested {
	t.Helper()
	evs, err := e.log.ReadStream(context.Background(), gateway.DefaultTenant, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.ReplyRequested
	for i := range evs {
		if evs[i].Type == "ReplyRequested" {
			p, err := gateway.NewRegistry().Decode(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.(*gateway.ReplyRequested))
		}
	}
	return out
}

func code(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSubmissionRecordsAnswer(t *testing.T) {
	e := newSubEnv(t)
	msg := "From: alice@stadt.example\nTo: evil@example.net\nSubject: Re: Antrag\n" +
		"In-Reply-To: " + replies.OfficeCopyID("bauamt", e.stream) + "\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b1\n\n" +
		"--b1\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nSehr geehrte Frau Muster, Gr=FC=DFe\n" +
		"--b1\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"bescheid.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjcK\n" +
		"--b1--\n"
	if err := e.send(t, "alice", "alice-pw", msg); err != nil {
		t.Fatal(err)
	}
	// A resend of the same bytes records nothing new.
	if err := e.send(t, "alice", "alice-pw", msg); err != nil {
		t.Fatal(err)
	}
	reqs := e.requests(t)
	if len(reqs) != 1 {
		t.Fatalf("%d ReplyRequested", len(reqs))
	}
	r := reqs[0]
	if r.Office != "bauamt" || r.Author != "alice" || r.Channel != gateway.ChannelSMTP || r.To.Address != "buerger@example.org" ||
		r.Subject != "Re: Antrag" || r.InReplyTo != "<antrag-1@example.org>" {
		t.Fatalf("request %+v", r)
	}
	body, _ := e.blobs.ReadAll(context.Background(), r.Body, 0)
	if string(body) != "Sehr geehrte Frau Muster, Grüße" {
		t.Fatalf("body %q", body)
	}
	if len(r.Attachments) != 1 || r.Attachments[0].Filename != "bescheid.pdf" || r.Attachments[0].MediaType != "application/pdf" {
		t.Fatalf("attachments %+v", r.Attachments)
	}
	pdf, _ := e.blobs.ReadAll(context.Background(), r.Attachments[0].Blob, 0)
	if string(pdf) != "%PDF-1.7\n" {
		t.Fatalf("attachment %q", pdf)
	}
	// The original's Message-ID works too.
	if err := e.send(t, "alice", "alice-pw", "Subject: zweite Antwort\nIn-Reply-To: <antrag-1@example.org>\n\nNoch etwas.\n"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.requests(t)); n != 2 {
		t.Fatalf("%d ReplyRequested", n)
	}
}

func TestSubmissionRefusals(t *testing.T) {
	e := newSubEnv(t)
	answer := "Subject: Re\nIn-Reply-To: " + replies.OfficeCopyID("bauamt", e.stream) + "\n\ntext\n"
	for _, tt := range []struct {
		name, user, pass, msg string
		code                  int
	}{
		{"no auth", "", "", answer, 530},
		{"wrong password", "alice", "nope", answer, 535},
		{"not an answer", "alice", "alice-pw", "Subject: Hallo\n\nneue Mail\n", 550},
		{"unknown message", "alice", "alice-pw", "Subject: Re\nIn-Reply-To: <nothing@example.org>\n\ntext\n", 550},
		{"other office", "bob", "bob-pw", answer, 550},
		{"forged copy id", "bob", "bob-pw", "Subject: Re\nIn-Reply-To: " + replies.OfficeCopyID("ordnungsamt", e.stream) + "\n\ntext\n", 550},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.send(t, tt.user, tt.pass, tt.msg); code(err) != tt.code {
				t.Fatalf("err = %v, want %d", err, tt.code)
			}
		})
	}
	if n := len(e.requests(t)); n != 0 {
		t.Fatalf("%d ReplyRequested recorded from refused mail", n)
	}
}

func TestSubmissionNeedsTLSOffLoopback(t *testing.T) {
	_, err := New(Config{Listen: "0.0.0.0:0"}, Deps{Directory: &offices.Directory{}, Log: &sqlitelog.Log{}, State: &sql.DB{}, Blobs: &blob.Store{}, Plan: emailPolicy(t)})
	if err == nil {
		t.Fatal("plain-text submission on all interfaces accepted")
	}
}

func FuzzSubmissionContent(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\ntext\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n--b\r\nContent-Type: application/pdf; name=\"a\r\n.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n--a--\r\n"))
	bs, _ := blob.Open(f.TempDir())
	s := &Server{cfg: Config{MaxMessageBytes: 1 << 20}, deps: Deps{Blobs: bs}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := s.content(context.Background(), raw)
		if err != nil {
			return
		}
		if !utf8.Valid(a.Text) {
			t.Fatalf("text is not UTF-8: %q", a.Text)
		}
		if len(a.Attachments) > maxSubmissionParts {
			t.Fatalf("%d attachments", len(a.Attachments))
		}
		for _, p := range a.Attachments {
			if strings.ContainsAny(p.Filename, "\r\n/\\") || p.Blob.SHA256 == "" {
				t.Fatalf("attachment %+v", p)
			}
		}
		if replies.CheckSubject(a.Subject) != nil {
			t.Fatalf("subject %q", a.Subject)
		}
	})
}

// TestSubmissionStopsWhenCancelledAtOnce: a stop right after the start must
// end Run, even before go-smtp registered the listener.
func TestSubmissionStopsWhenCancelledAtOnce(t *testing.T) {
	e := newSubEnv(t)
	d, _ := offices.NewDirectory(offices.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		sub, err := New(Config{Listen: "127.0.0.1:0"}, Deps{Directory: d, Log: e.log, State: e.state, Blobs: e.blobs, Plan: emailPolicy(t)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sub.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// answeredMail is the original an office answers in these tests.
const answeredMail = "From: Erika Muster <buerger@example.org>\r\n" +
	"To: poststelle@stadt.example\r\n" +
	"Subject: =?utf-8?q?Antrag_auf_Anh=C3=B6rung?=\r\n" +
	"Message-ID: <antrag-1@example.org>\r\n" +
	"References: <root@example.org>\r\n  <mid@example.org>\r\n" +
	"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n" +
	"\r\n" +
	"Sehr geehrte Damen und Herren,\r\n"

// emailPolicy answers e-mail (SMTP, IMAP) by e-mail and EGVP on EGVP,
// which has no outbound: the routes the channel registry gives them.
func emailPolicy(t *testing.T) replies.PlanFunc {
	t.Helper()
	p, err := replies.NewPolicy(map[gateway.Channel]replies.Route{
		gateway.ChannelSMTP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelIMAP: {Channel: gateway.ChannelSMTP, Address: replies.EmailAddress},
		gateway.ChannelEGVP: {Channel: gateway.ChannelEGVP, Address: replies.SenderAddress},
	}, []gateway.Channel{gateway.ChannelSMTP})
	if err != nil {
		t.Fatal(err)
	}
	return p.Plan
}
