package imap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// imapDriver delivers by appending to a mailbox of go-imap's in-memory
// server, the way a provider's MX does, and reads the channel's answer
// from what the watcher did: recorded and moved ("done"), left for the next
// round after a failed record ("retry"), or left in the mailbox for a
// person ("left: too large", "left: refused").
type imapDriver struct {
	peer *memPeer
	run  func()

	mu      sync.Mutex
	cond    *sync.Cond
	last    []byte
	answers map[string][]channeltest.Answer // by SHA-256 of the raw bytes; "" for a skip
}

func (d *imapDriver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	d.cond = sync.NewCond(&d.mu)
	d.answers = map[string][]channeltest.Answer{}
	// The peer sends BODY[] as appended, as Dovecot does (see startMemPeer).
	d.peer = startMemPeer(t.(*testing.T), true)
	if err := d.peer.Create("Eingang", nil); err != nil {
		t.Fatal(err)
	}
	next := deps.Intake
	deps.Intake = recordFunc(func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
		r, err := next.Record(ctx, tenant, key, m)
		switch {
		case err == nil:
			d.note(m.Raw.SHA256, channeltest.Answer{Accepted: true, Code: "done"})
		case !errors.Is(err, eventstore.ErrInvalidEvent): // a refusal is logged as a skip
			d.note(m.Raw.SHA256, channeltest.Answer{Code: "retry"})
		}
		return r, err
	})
	deps.Logger = slog.New(skipHandler{d})
	os.Setenv("POSTSTELLE_TEST_MEM_PW", "secret")
	w, err := New(Config{MaxMessageBytes: max, Mailboxes: []MailboxConfig{{Name: "amt", Host: "127.0.0.1", Port: d.peer.port, TLS: TLSNone,
		Folder: "Eingang", Username: "poststelle", PasswordEnv: "POSTSTELLE_TEST_MEM_PW", PollInterval: 50 * time.Millisecond}}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	// The watcher starts with the first delivery, so that Stage can fill
	// the folder before it looks.
	d.run = sync.OnceFunc(func() { go func() { w.Run(ctx); close(stopped) }() })
	t.Cleanup(func() {
		cancel()
		d.run()
		<-stopped
	})
}

func (d *imapDriver) note(sum string, a channeltest.Answer) {
	d.mu.Lock()
	d.answers[sum] = append(d.answers[sum], a)
	d.mu.Unlock()
	d.cond.Broadcast()
}

// await returns the next answer for raw (or a skip) after the n seen before.
func (d *imapDriver) await(t testing.TB, raw []byte, n int) channeltest.Answer {
	h := sha256.Sum256(raw)
	sum := hex.EncodeToString(h[:])
	timer := time.AfterFunc(20*time.Second, func() { d.note("timeout", channeltest.Answer{}) })
	defer timer.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if a := d.answers[sum]; len(a) > n {
			return a[n]
		}
		if a := d.answers[""]; len(a) > 0 {
			d.answers[""] = a[1:]
			return a[0]
		}
		if len(d.answers["timeout"]) > 0 {
			t.Fatal("imap: the watcher gave no answer in time")
		}
		d.cond.Wait()
	}
}

// Stage appends raws before the watcher runs; release starts it.
func (d *imapDriver) Stage(t testing.TB, raws [][]byte) func(testing.TB) []channeltest.Answer {
	for _, raw := range raws {
		if err := d.peer.Append("Eingang", raw); err != nil {
			t.Fatal(err)
		}
	}
	return func(t testing.TB) []channeltest.Answer {
		d.run()
		var out []channeltest.Answer
		for _, raw := range raws {
			out = append(out, d.await(t, raw, 0))
		}
		return out
	}
}

func (d *imapDriver) Send(t testing.TB, raw []byte) channeltest.Answer {
	h := sha256.Sum256(raw)
	d.mu.Lock()
	d.last = raw
	n := len(d.answers[hex.EncodeToString(h[:])])
	d.mu.Unlock()
	d.run()
	if err := d.peer.Append("Eingang", raw); err != nil {
		t.Fatal(err)
	}
	return d.await(t, raw, n)
}

// Retry waits for the watcher's next round, which fetches the message
// again: a collecting channel's peer does not resend, the mailbox keeps it.
func (d *imapDriver) Retry(t testing.TB) channeltest.Answer {
	d.mu.Lock()
	raw := d.last
	h := sha256.Sum256(raw)
	n := len(d.answers[hex.EncodeToString(h[:])])
	d.mu.Unlock()
	d.run()
	return d.await(t, raw, n)
}

type recordFunc func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error)

func (f recordFunc) Record(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
	return f(ctx, tenant, key, m)
}

// skipHandler turns the watcher's "left in the mailbox" log lines into
// answers; it is how the channel tells a person, so it is its answer here.
type skipHandler struct{ d *imapDriver }

func (h skipHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h skipHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h skipHandler) WithGroup(string) slog.Handler            { return h }
func (h skipHandler) Handle(_ context.Context, r slog.Record) error {
	switch {
	case strings.Contains(r.Message, "over the size limit"):
		h.d.note("", channeltest.Answer{Code: "left: too large"})
	case strings.Contains(r.Message, "log refused the receipt"):
		h.d.note("", channeltest.Answer{Code: "left: refused"})
	case r.Level >= slog.LevelError && strings.Contains(r.Message, "left in the mailbox"):
		// Any other skip (no body, an empty body, a refusal by the server)
		// is an answer too, so that the suite names it instead of timing out.
		h.d.note("", channeltest.Answer{Code: "left: " + r.Message})
	case r.Level >= slog.LevelWarn && testing.Verbose():
		var attrs []string
		r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.String()); return true })
		fmt.Fprintln(os.Stderr, "imap channel test:", r.Message, attrs)
	}
	return nil
}

func TestChannelConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(testing.TB) channeltest.Driver { return &imapDriver{} },
		Codes: channeltest.Codes{Accepted: "done", Temporary: "retry", TooLarge: "left: too large", Refused: "left: refused"},
	})
}
