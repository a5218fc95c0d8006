package imap

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// memServer runs go-imap's in-memory server with plain IMAP4rev1: no IDLE
// and no MOVE, so the intake must poll and fall back to COPY, STORE and
// EXPUNGE. (Dovecot, with both, is exercised in test/integration/mail.)
func memServer(t *testing.T) (*imapmemserver.User, int) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("poststelle", "secret")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         goimap.CapSet{goimap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u, ln.Addr().(*net.TCPAddr).Port
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

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
