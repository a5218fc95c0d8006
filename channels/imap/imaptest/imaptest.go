// Package imaptest holds test doubles for channels that take in IMAP
// mailboxes: an in-memory IMAP server that serves messages exactly as
// appended, and a channeltest.Driver on top of it.
package imaptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// Folder is the folder the Driver delivers into.
const Folder = "Eingang"

// PasswordEnv is the environment variable the Driver sets to the peer's
// password, for a channel configured with password_env.
const PasswordEnv = "POSTSTELLE_TEST_MEM_PW"

// MemPeer is go-imap's in-memory server on a loopback port, user
// "poststelle" with password "secret", and, when it serves whole bodies,
// the bytes appended through it.
type MemPeer struct {
	*imapmemserver.User
	// Port is the server's loopback port.
	Port int

	mu   sync.Mutex
	raws map[string]map[goimap.UID]storedMessage // by folder and UID
}

type storedMessage struct {
	raw []byte
	at  time.Time
}

// StartMemPeer starts the in-memory server. With wholeBodies set it
// answers a FETCH of BODY[] (or BODY.PEEK[]) from the bytes appended
// through Append, as Dovecot does: go-imap's own server parses the header
// first and sends an empty literal for a header it cannot parse (a line
// without a colon, a message without the blank line), which is a fault of
// that test server, not of a mailbox a channel takes in.
func StartMemPeer(t testing.TB, wholeBodies bool) *MemPeer {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("poststelle", "secret")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	p := &MemPeer{User: u, raws: map[string]map[goimap.UID]storedMessage{}}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if wholeBodies {
				return &wholeBodySession{Session: mem.NewSession(), peer: p}, nil, nil
			}
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
	p.Port = ln.Addr().(*net.TCPAddr).Port
	return p
}

// Append adds raw to folder and keeps its bytes for whole-body fetches.
func (p *MemPeer) Append(folder string, raw []byte) error {
	at := time.Now()
	d, err := p.User.Append(folder, literal{bytes.NewReader(raw)}, &goimap.AppendOptions{Time: at})
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.raws[folder] == nil {
		p.raws[folder] = map[goimap.UID]storedMessage{}
	}
	p.raws[folder][d.UID] = storedMessage{raw: bytes.Clone(raw), at: at}
	return nil
}

func (p *MemPeer) stored(folder string, uid goimap.UID) (storedMessage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.raws[folder][uid]
	return m, ok
}

// wholeBodySession is an in-memory session whose UID FETCH of a whole body
// sends the stored bytes; everything else is the in-memory server's.
type wholeBodySession struct {
	imapserver.Session
	peer     *MemPeer
	selected string
}

func (s *wholeBodySession) Select(name string, options *goimap.SelectOptions) (*goimap.SelectData, error) {
	d, err := s.Session.Select(name, options)
	if err == nil {
		s.selected = name
	}
	return d, err
}

func (s *wholeBodySession) Fetch(w *imapserver.FetchWriter, numSet goimap.NumSet, options *goimap.FetchOptions) error {
	uids, ok := numSet.(goimap.UIDSet)
	if !ok || !wholeBodyOnly(options) {
		return s.Session.Fetch(w, numSet, options)
	}
	crit := &goimap.SearchCriteria{UID: []goimap.UIDSet{uids}}
	byUID, err := s.Session.Search(imapserver.NumKindUID, crit, &goimap.SearchOptions{ReturnAll: true})
	if err != nil {
		return err
	}
	bySeq, err := s.Session.Search(imapserver.NumKindSeq, crit, &goimap.SearchOptions{ReturnAll: true})
	if err != nil {
		return err
	}
	all, seqs := byUID.AllUIDs(), bySeq.AllSeqNums()
	for i, uid := range all {
		m, ok := s.peer.stored(s.selected, uid)
		if !ok || i >= len(seqs) {
			return s.Session.Fetch(w, goimap.UIDSetNum(uid), options)
		}
		rw := w.CreateMessage(seqs[i])
		rw.WriteUID(uid)
		if options.InternalDate {
			rw.WriteInternalDate(m.at)
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(int64(len(m.raw)))
		}
		wc := rw.WriteBodySection(options.BodySection[0], int64(len(m.raw)))
		if _, err := wc.Write(m.raw); err != nil {
			return err
		}
		if err := wc.Close(); err != nil {
			return err
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// wholeBodyOnly reports a FETCH of UID, dates, size and BODY[] alone, the
// one the intake sends.
func wholeBodyOnly(o *goimap.FetchOptions) bool {
	if o.Flags || o.Envelope || o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 ||
		len(o.BodySection) != 1 {
		return false
	}
	bs := o.BodySection[0]
	return len(bs.Part) == 0 && bs.Specifier == goimap.PartSpecifierNone && len(bs.HeaderFields) == 0 &&
		len(bs.HeaderFieldsNot) == 0 && bs.Partial == nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// literal is an IMAP literal of bytes in memory.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// Driver is a channeltest.Driver for a channel that takes in an IMAP
// mailbox. It delivers by appending to a mailbox of go-imap's in-memory
// server, the way a provider's MX does, and reads the channel's answer
// from what the watcher did: recorded and moved ("done"), left for the next
// round after a failed record ("retry"), or left in the mailbox for a
// person ("left: too large", "left: refused").
type Driver struct {
	// Build makes the channel under test: an inbound that takes in folder
	// Folder of user "poststelle" (password "secret") at 127.0.0.1:port
	// without TLS, polling often, with deps and the size limit max.
	Build func(port int, max int64, deps gateway.IntakeDeps) (gateway.Inbound, error)

	peer *MemPeer
	run  func()

	mu      sync.Mutex
	cond    *sync.Cond
	last    []byte
	answers map[string][]channeltest.Answer // by SHA-256 of the raw bytes; "" for a skip
}

func (d *Driver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	d.cond = sync.NewCond(&d.mu)
	d.answers = map[string][]channeltest.Answer{}
	// The peer sends BODY[] as appended, as Dovecot does (see StartMemPeer).
	d.peer = StartMemPeer(t, true)
	if err := d.peer.Create(Folder, nil); err != nil {
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
	os.Setenv(PasswordEnv, "secret")
	in, err := d.Build(d.peer.Port, max, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	// The watcher starts with the first delivery, so that Stage can fill
	// the folder before it looks.
	d.run = sync.OnceFunc(func() { go func() { in.Run(ctx); close(stopped) }() })
	t.Cleanup(func() {
		cancel()
		d.run()
		<-stopped
	})
}

func (d *Driver) note(sum string, a channeltest.Answer) {
	d.mu.Lock()
	d.answers[sum] = append(d.answers[sum], a)
	d.mu.Unlock()
	d.cond.Broadcast()
}

// await returns the next answer for raw (or a skip) after the n seen before.
func (d *Driver) await(t testing.TB, raw []byte, n int) channeltest.Answer {
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
func (d *Driver) Stage(t testing.TB, raws [][]byte) func(testing.TB) []channeltest.Answer {
	for _, raw := range raws {
		if err := d.peer.Append(Folder, raw); err != nil {
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

func (d *Driver) Send(t testing.TB, raw []byte) channeltest.Answer {
	h := sha256.Sum256(raw)
	d.mu.Lock()
	d.last = raw
	n := len(d.answers[hex.EncodeToString(h[:])])
	d.mu.Unlock()
	d.run()
	if err := d.peer.Append(Folder, raw); err != nil {
		t.Fatal(err)
	}
	return d.await(t, raw, n)
}

// Retry waits for the watcher's next round, which fetches the message
// again: a collecting channel's peer does not resend, the mailbox keeps it.
func (d *Driver) Retry(t testing.TB) channeltest.Answer {
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
type skipHandler struct{ d *Driver }

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
