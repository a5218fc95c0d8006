package smtpout

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/mail/mailcompose"
)

// files lists the names in one Maildir subdirectory.
func files(t *testing.T, dir, sub string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestMaildirStepOrder(t *testing.T) {
	m, err := openMaildir(filepath.Join(t.TempDir(), "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	m.step = func(name string) error {
		steps = append(steps, name)
		// The message must not be visible in new/ before the rename, and
		// must sit complete in tmp/ once flushed.
		switch name {
		case stepRename:
			if n := files(t, m.dir, "new"); len(n) != 0 {
				t.Errorf("new/ holds %v before the rename", n)
			}
			tmp := files(t, m.dir, "tmp")
			if len(tmp) != 1 {
				t.Fatalf("tmp/ holds %v before the rename, want one file", tmp)
			}
			if b, _ := os.ReadFile(filepath.Join(m.dir, "tmp", tmp[0])); string(b) != "message" {
				t.Errorf("tmp file holds %q before the rename", b)
			}
		case stepSyncDir:
			if n := files(t, m.dir, "tmp"); len(n) != 0 {
				t.Errorf("tmp/ still holds %v after the rename", n)
			}
		}
		return nil
	}
	rel, err := m.deliver("<a@example.org>", []byte("message"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{stepCreate, stepWrite, stepSync, stepClose, stepRename, stepSyncDir}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if rel != filepath.Join("new", fileName("<a@example.org>")) {
		t.Fatalf("delivered to %s", rel)
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, rel)); err != nil || string(b) != "message" {
		t.Fatalf("new file: %q %v", b, err)
	}
}

// TestMaildirCrash stops a delivery at each step, as a crash would, and
// checks that new/ then holds either nothing or the whole message, and that
// the next attempt delivers exactly one copy.
func TestMaildirCrash(t *testing.T) {
	raw := bytes.Repeat([]byte("Zeile der Antwort\r\n"), 5000)
	for _, crashAt := range []string{stepCreate, stepWrite, stepSync, stepClose, stepRename, stepSyncDir} {
		t.Run(crashAt, func(t *testing.T) {
			m, err := openMaildir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			crash := errors.New("crash")
			m.step = func(name string) error {
				if name == crashAt {
					return crash
				}
				return nil
			}
			if _, err := m.deliver("<b@example.org>", raw); !errors.Is(err, crash) {
				t.Fatalf("deliver: %v, want the crash", err)
			}
			visible := files(t, m.dir, "new")
			if crashAt == stepSyncDir {
				if len(visible) != 1 {
					t.Fatalf("renamed before the crash, but new/ holds %v", visible)
				}
				if b, _ := os.ReadFile(filepath.Join(m.dir, "new", visible[0])); !bytes.Equal(b, raw) {
					t.Fatalf("new/ holds %d bytes, want %d", len(b), len(raw))
				}
			} else if len(visible) != 0 {
				t.Fatalf("crash at %q, but new/ holds %v", crashAt, visible)
			}
			m.step = nil
			if _, err := m.deliver("<b@example.org>", raw); err != nil {
				t.Fatal(err)
			}
			if n := files(t, m.dir, "new"); len(n) != 1 {
				t.Fatalf("after the retry new/ holds %v, want one message", n)
			}
		})
	}
}

func TestMaildirRecognisesResend(t *testing.T) {
	m, err := openMaildir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.deliver("<c@example.org>", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	// A mail client reads it: new/NAME becomes cur/NAME:2,S.
	read := filepath.Join("cur", filepath.Base(first)+":2,S")
	if err := os.Rename(filepath.Join(m.dir, first), filepath.Join(m.dir, read)); err != nil {
		t.Fatal(err)
	}
	again, err := m.deliver("<c@example.org>", []byte("one"))
	if err != nil || again != read {
		t.Fatalf("resend delivered to %q (%v), want the read copy %q", again, err, read)
	}
	if n := files(t, m.dir, "new"); len(n) != 0 {
		t.Fatalf("resend made a second copy: %v", n)
	}
	other, err := m.deliver("<d@example.org>", []byte("two"))
	if err != nil || other == first {
		t.Fatalf("another message went to %q (%v)", other, err)
	}
}

func TestOutboundMaildir(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "outbox")
	o, err := New(Config{From: "Poststelle <poststelle@stadt.example>", Maildir: dir},
		Deps{Blobs: f.blobs, Now: func() time.Time { return time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	info, err := o.Send(context.Background(), f.req, f.orig)
	if err != nil {
		t.Fatal(err)
	}
	name := fileName(info.ChannelMessageID)
	if info.ChannelMessageID != mailcompose.ReplyMessageID("r-1", "stadt.example") || info.Response != "maildir "+filepath.Join(dir, "new", name) {
		t.Fatalf("sent info %+v", info)
	}
	b, err := os.ReadFile(filepath.Join(dir, "new", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Header.Get("To"), "<buerger@example.org>") || m.Header.Get("In-Reply-To") != "<antrag-1@example.org>" || m.Header.Get("Message-Id") != info.ChannelMessageID {
		t.Fatalf("headers %v", m.Header)
	}
}

func TestMaildirConfig(t *testing.T) {
	f := newFixture(t)
	_, err := New(Config{From: "p@stadt.example", Maildir: t.TempDir(), Relay: RelayConfig{Host: "smtp.stadt.example"}}, Deps{Blobs: f.blobs})
	if err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Fatalf("maildir with relay: %v", err)
	}
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := New(Config{From: "p@stadt.example", Maildir: filepath.Join(blocker, "outbox")}, Deps{Blobs: f.blobs}); err == nil {
		t.Fatal("a maildir below a file was accepted")
	}
}
