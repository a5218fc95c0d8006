package imap

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/poststelle/poststelle/channels/imap/imaptest"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// memServer runs go-imap's in-memory server with plain IMAP4rev1: no IDLE
// and no MOVE, so the intake must poll and fall back to COPY, STORE and
// EXPUNGE. (Dovecot, with both, is exercised in test/integration/mail.)
func memServer(t *testing.T) (*imapmemserver.User, int) {
	t.Helper()
	p := imaptest.StartMemPeer(t, false)
	return p.User, p.Port
}

// literal is an IMAP literal of bytes in memory.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

func deliver(t *testing.T, u *imapmemserver.User, folder string, i int) {
	t.Helper()
	raw := fmt.Sprintf("From: b%d@example.org\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i, i)
	if _, err := u.Append(folder, literal{bytes.NewReader([]byte(raw))}, &goimap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

func messages(t *testing.T, u *imapmemserver.User, folder string) int {
	t.Helper()
	st, err := u.Status(folder, &goimap.StatusOptions{NumMessages: true})
	if err != nil {
		return -1
	}
	return int(*st.NumMessages)
}

func TestPollingWithoutIdleOrMove(t *testing.T) {
	for _, done := range []string{DoneMove, DoneFlag} {
		t.Run(done, func(t *testing.T) {
			u, port := memServer(t)
			for i := range 3 {
				deliver(t, u, "INBOX", i)
			}
			dir := t.TempDir()
			l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
				Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			blobs, err := blob.Open(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			os.Setenv("POSTSTELLE_TEST_MEM_PW", "secret")
			w, err := New(Config{Mailboxes: []MailboxConfig{{Host: "127.0.0.1", Port: port, TLS: TLSNone, Username: "poststelle",
				PasswordEnv: "POSTSTELLE_TEST_MEM_PW", Done: done, PollInterval: 100 * time.Millisecond}}},
				gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() { w.Run(ctx); close(stopped) }()
			defer func() { cancel(); <-stopped }()

			recorded := func() int {
				evs, err := l.Read(context.Background(), 0, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				return len(evs)
			}
			waitFor(t, func() bool { return recorded() == 3 })
			deliver(t, u, "INBOX", 3) // found by the next poll
			waitFor(t, func() bool { return recorded() == 4 })
			if done == DoneMove {
				waitFor(t, func() bool { return messages(t, u, "INBOX") == 0 && messages(t, u, "Poststelle-Eingegangen") == 4 })
			}
			time.Sleep(300 * time.Millisecond) // a few more polls must not record anything again
			if n := recorded(); n != 4 {
				t.Errorf("%d events after more polls, want 4", n)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordingHandler keeps the messages of log records at Error.
type recordingHandler struct {
	mu     *sync.Mutex
	errors *[]string
}

func (h recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h recordingHandler) WithGroup(string) slog.Handler                { return h }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.errors = append(*h.errors, r.Message)
	h.mu.Unlock()
	return nil
}

// TestServerDeliversNoBytes: go-imap's in-memory server answers BODY[] of a
// message whose header it cannot parse with an empty literal while its
// RFC822.SIZE is the real size. The watcher must not record the empty body
// and mark the message done (the message would be gone from the intake with
// nothing of it in the log); it leaves the message in the mailbox, says so
// at Error, and goes on with the next message.
func TestServerDeliversNoBytes(t *testing.T) {
	p := imaptest.StartMemPeer(t, false)
	if err := p.Append("INBOX", []byte("Subject: a\r\nNoColonHere\r\nFrom: a@example.org\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	deliver(t, p.User, "INBOX", 1)
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		logged []string
	)
	os.Setenv("POSTSTELLE_TEST_MEM_PW", "secret")
	w, err := New(Config{Mailboxes: []MailboxConfig{{Host: "127.0.0.1", Port: p.Port, TLS: TLSNone, Username: "poststelle",
		PasswordEnv: "POSTSTELLE_TEST_MEM_PW", PollInterval: 50 * time.Millisecond}}},
		gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(recordingHandler{&mu, &logged})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	waitFor(t, func() bool { return messages(t, p.User, "Poststelle-Eingegangen") == 1 })
	time.Sleep(200 * time.Millisecond) // more polls must neither record it nor log it again
	evs, err := l.Read(context.Background(), 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Errorf("%d events, want 1: the message after the undeliverable one", len(evs))
	}
	if n := messages(t, p.User, "INBOX"); n != 1 {
		t.Errorf("%d messages left in INBOX, want the undeliverable one", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !strings.Contains(logged[0], "none of the message's bytes") {
		t.Errorf("errors logged: %q, want one saying the server delivered none of the bytes", logged)
	}
}
