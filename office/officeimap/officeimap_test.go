package officeimap_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/gatewaytest"
	"github.com/poststelle/poststelle/office/officeimap"
)

type env struct {
	dir    string
	log    *sqlitelog.Log
	state  *sql.DB
	blobs  *blob.Store
	dir2   *offices.Directory
	runner *projection.Runner
	srv    *officeimap.Server
	n      int
	// erased are the blobs the server's store reads as erased.
	erased *erasingBlobs
}

var passwords = map[string]string{"alice": "alice-pw-1", "bob": "bob-pw-1", "root": "root-pw-1", "audit": "audit-pw-1", "mail": "mail-pw-1"}

func hash(t *testing.T, user string) string {
	h, err := offices.HashPassword(passwords[user])
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newEnv(t *testing.T, mod func(*officeimap.Config)) *env {
	t.Helper()
	ctx := context.Background()
	g := gatewaytest.New(t)
	e := &env{dir: g.Dir, log: g.Log, state: g.State, blobs: g.Blobs}
	var err error
	cfg := offices.Config{
		Offices: []offices.Office{
			{ID: "bauamt", Name: "Bauamt", Members: []offices.Member{{User: "alice", PasswordHash: hash(t, "alice")}}},
			{ID: "ordnungsamt", Name: "Ordnungsamt", Members: []offices.Member{{User: "bob", PasswordHash: hash(t, "bob")}}},
		},
		Admins:   []offices.Member{{User: "root", PasswordHash: hash(t, "root")}},
		Auditors: []offices.Member{{User: "audit", PasswordHash: hash(t, "audit")}},
		Mailroom: []offices.Member{{User: "mail", PasswordHash: hash(t, "mail")}},
	}
	if e.dir2, err = offices.NewDirectory(cfg); err != nil {
		t.Fatal(err)
	}
	e.runner = &projection.Runner{Log: e.log, DB: e.state, Registry: gateway.NewRegistry()}
	e.catchUp(t)
	icfg := officeimap.Config{Listen: "127.0.0.1:0", TLS: officeimap.TLSNone, PollInterval: 50 * time.Millisecond}
	if mod != nil {
		mod(&icfg)
	}
	e.erased = &erasingBlobs{Backend: e.blobs, refs: map[string]bool{}}
	e.srv, err = officeimap.New(icfg, officeimap.Deps{Directory: e.dir2, State: e.state, Log: e.log, Blobs: e.erased, DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.srv.Run(sctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *env) catchUp(t *testing.T) {
	t.Helper()
	if err := e.runner.CatchUp(context.Background(), offices.Inbox{}); err != nil {
		t.Fatal(err)
	}
}

// deliver records a received e-mail and routes it to the offices.
func (e *env) deliver(t *testing.T, subject string, to ...string) (raw []byte, stream string) {
	t.Helper()
	ctx := context.Background()
	e.n++
	raw = []byte(fmt.Sprintf("From: Erika Muster <buerger%d@example.org>\r\nTo: poststelle@stadt.example\r\nSubject: %s\r\n"+
		"Message-ID: <m%d@example.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nText %d mit Umlaut \xc3\xa4\r\n", e.n, subject, e.n, e.n))
	ref, err := e.blobs.PutBytes(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	key := gateway.MessageKey(gateway.ChannelSMTP, ref.SHA256)
	ev, err := gateway.NewReceived("", key, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: fmt.Sprintf("<m%d@example.org>", e.n),
		From: gateway.Address{Address: fmt.Sprintf("buerger%d@example.org", e.n), Name: "Erika Muster"}, Subject: subject,
		ReceivedAt: time.Date(2026, 3, 2, 9, 0, e.n, 0, time.UTC), Raw: ref, Metadata: map[string]string{"date": "Mon, 2 Mar 2026 10:00:00 +0100"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	routed, err := gateway.Follow("test-routing", &ev, 0, &gateway.MessageRouted{Offices: to, DecidedBy: "rules", Rule: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Append(ctx, routed); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	return raw, ev.Stream
}

func (e *env) login(t *testing.T, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, passwords[user]).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func (e *env) acks(t *testing.T) []gateway.MessageAcknowledged {
	t.Helper()
	evs, err := e.log.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []gateway.MessageAcknowledged
	reg := gateway.NewRegistry()
	for i := range evs {
		if evs[i].Type == "MessageAcknowledged" {
			p, _ := reg.Decode(&evs[i])
			out = append(out, *p.(*gateway.MessageAcknowledged))
		}
	}
	return out
}

// listing is what a client sees of a mailbox, for before/after comparisons.
type listing struct {
	UID   imap.UID
	Flags []imap.Flag
	Size  int64
	Body  string
}

func list(t *testing.T, c *imapclient.Client) []listing {
	t.Helper()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []listing
	for _, m := range msgs {
		out = append(out, listing{UID: m.UID, Flags: m.Flags, Size: m.RFC822Size, Body: string(m.BodySection[0].Bytes)})
	}
	return out
}

func TestOfficeSeesItsMessagesWithReport(t *testing.T) {
	e := newEnv(t, nil)
	raw1, s1 := e.deliver(t, "Bauantrag Gartenhaus", "bauamt")
	e.deliver(t, "Lärmbeschwerde", "ordnungsamt")
	raw3, _ := e.deliver(t, "Bauantrag und Lärm", "bauamt", "ordnungsamt")

	c := e.login(t, "alice")
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil || len(boxes) != 1 || boxes[0].Mailbox != "INBOX" {
		t.Fatalf("alice's mailboxes: %+v %v", boxes, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 || sel.UIDValidity != officeimap.UIDValidity("bauamt") || sel.UIDNext != 3 {
		t.Fatalf("select: %+v", sel)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}, {Peek: true, Part: []int{3}}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 {
		t.Fatalf("fetched %d messages", len(msgs))
	}
	for i, raw := range [][]byte{raw1, raw3} {
		m := msgs[i]
		whole := m.BodySection[0].Bytes
		if int64(len(whole)) != m.RFC822Size {
			t.Errorf("message %d: RFC822.SIZE %d, body %d bytes", i+1, m.RFC822Size, len(whole))
		}
		if !bytes.Equal(m.BodySection[1].Bytes, raw) {
			t.Errorf("message %d: part 3 is not the original:\n%q", i+1, m.BodySection[1].Bytes)
		}
		if !strings.Contains(string(whole), "pruefprotokoll.html") || !strings.Contains(string(whole), "no signatures verified yet") {
			t.Errorf("message %d has no Prüfprotokoll", i+1)
		}
		if len(m.Flags) != 0 {
			t.Errorf("message %d flags %v after PEEK", i+1, m.Flags)
		}
		mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
		if !ok || len(mp.Children) != 3 || mp.Children[2].MediaType() != "message/rfc822" {
			t.Errorf("message %d structure %+v", i+1, m.BodyStructure)
		}
	}
	if env := msgs[0].Envelope; env.Subject != "Bauantrag Gartenhaus" || env.MessageID != strings.Trim(replies.OfficeCopyID("bauamt", s1), "<>") ||
		len(env.From) != 1 || env.From[0].Addr() != "buerger1@example.org" {
		t.Errorf("envelope %+v", env)
	}
	if len(e.acks(t)) != 0 {
		t.Fatal("PEEK acknowledged")
	}
	// Another office is not there for alice.
	if _, err := c.Select("ordnungsamt", nil).Wait(); err == nil {
		t.Fatal("alice selected the Ordnungsamt")
	}
}

func TestFlagsAreAcknowledgements(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, "eins", "bauamt")
	e.deliver(t, "zwei", "bauamt")
	e.deliver(t, "drei", "bauamt")
	c := e.login(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// STORE \Seen acknowledges.
	res, err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil || len(res) != 1 || !reflect.DeepEqual(res[0].Flags, []imap.Flag{imap.FlagSeen}) {
		t.Fatalf("store: %+v %v", res, err)
	}
	// Reading (non-PEEK) acknowledges too.
	got, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{1}}}}).Collect()
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Flags, []imap.Flag{imap.FlagSeen}) {
		t.Fatalf("fetch: %+v %v", got, err)
	}
	acks := e.acks(t)
	if len(acks) != 2 || acks[0].By != "alice" || acks[0].Via != "imap" || acks[0].Office != "bauamt" {
		t.Fatalf("acknowledgements %+v", acks)
	}
	// A second \Seen, and removing it, change nothing.
	c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	if n := len(e.acks(t)); n != 2 {
		t.Fatalf("%d acknowledgements", n)
	}
	// Evidence stays.
	for name, err := range map[string]error{
		"delete": c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(),
		"flag":   c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(),
		"copy":   func() error { _, err := c.Copy(imap.UIDSetNum(3), "INBOX").Wait(); return err }(),
		"create": c.Create("Privat", nil).Wait(),
	} {
		if err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 3 || *st.NumUnseen != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	// An acknowledgement made elsewhere reaches the session, and so does a new message.
	offices.Acknowledge(context.Background(), e.log, gateway.DefaultTenant, e.inboxStream(t, "bauamt", 3), "bauamt", "carol", "api")
	e.deliver(t, "vier", "bauamt")
	flags := map[uint32][]imap.Flag{}
	c2, err := imapclient.DialInsecure(e.srv.Addr().String(), &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(m *imapclient.FetchMessageData) {
			if b, err := m.Collect(); err == nil {
				flags[b.SeqNum] = b.Flags
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Login("alice", passwords["alice"]).Wait()
	c2.Select("INBOX", nil).Wait()
	if n := c2.Mailbox().NumMessages; n != 4 {
		t.Fatalf("second session sees %d messages", n)
	}
	seen, err := c2.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || !reflect.DeepEqual(seen.AllSeqNums(), []uint32{1, 2, 3}) {
		t.Fatalf("seen: %v %v", seen.AllSeqNums(), err)
	}
	// The first session learns of message 4 on NOOP.
	c.Noop().Wait()
	if n := c.Mailbox().NumMessages; n != 4 {
		t.Fatalf("first session sees %d messages after NOOP", n)
	}
}

func (e *env) inboxStream(t *testing.T, office string, seq int64) string {
	msgs, err := offices.ListInbox(context.Background(), e.state, office, seq-1)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("inbox %s: %v", office, err)
	}
	return msgs[0].Stream
}

func TestAuthorisation(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, "Bau", "bauamt")
	e.deliver(t, "Ordnung", "ordnungsamt")

	c, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Login("nobody", "x").Wait(); err == nil {
		t.Fatal("unknown user accepted")
	}

	bob := e.login(t, "bob")
	got := list(t, bob)
	if len(got) != 1 || !strings.Contains(got[0].Body, "Subject: Ordnung") {
		t.Fatalf("bob sees %d messages", len(got))
	}
	// Admins and auditors read every office, read-only.
	for _, user := range []string{"root", "audit"} {
		c := e.login(t, user)
		boxes, _ := c.List("", "*", nil).Collect()
		if len(boxes) != 2 {
			t.Fatalf("%s sees %d mailboxes", user, len(boxes))
		}
		if _, err := c.Select("ordnungsamt", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err == nil {
			t.Fatalf("%s acknowledged for an office", user)
		}
		c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	}
	// The mailroom works in triage, not in office mailboxes.
	mr := e.login(t, "mail")
	if got := list(t, mr); len(got) != 0 {
		t.Fatalf("the mailroom sees %d office messages", len(got))
	}
	for _, box := range []string{"bauamt", "ordnungsamt"} {
		if _, err := mr.Select(box, nil).Wait(); err == nil {
			t.Fatalf("the mailroom selected %s", box)
		}
	}
	if n := len(e.acks(t)); n != 0 {
		t.Fatalf("%d acknowledgements by non-members", n)
	}
}

func TestReplayKeepsUIDsFlagsAndBodies(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		e.deliver(t, fmt.Sprint("Nachricht ", i), "bauamt")
	}
	c := e.login(t, "alice")
	c.Select("INBOX", nil).Wait()
	c.Store(imap.SeqSet{{Start: 2, Stop: 3}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	c.Unselect().Wait()
	e.catchUp(t)
	before := list(t, c)

	ctx := context.Background()
	if err := e.runner.Rebuild(ctx, offices.Inbox{}); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	after := list(t, e.login(t, "alice"))
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("listing differs after replay:\nbefore %+v\nafter  %+v", before, after)
	}
	if len(after) != 5 || after[4].UID != 5 || len(after[1].Flags) != 1 || len(after[0].Flags) != 0 {
		t.Fatalf("listing %+v", after)
	}
}

func TestStartTLSWithSelfSignedCertificate(t *testing.T) {
	e := newEnv(t, func(c *officeimap.Config) { c.TLS = officeimap.TLSStartTLS })
	e.deliver(t, "Bau", "bauamt")
	// Without TLS the server does not take a password.
	plain, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Login("alice", passwords["alice"]).Wait(); err == nil {
		t.Fatal("login accepted without TLS")
	}
	c, err := imapclient.DialStartTLS(e.srv.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", passwords["alice"]).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := list(t, c); len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if _, err := filepath.Glob(filepath.Join(e.dir, "officeimap", "cert.pem")); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	deps := officeimap.Deps{Directory: &offices.Directory{}, State: &sql.DB{}, Log: eventstore.Log(nil), Blobs: &blob.Store{}}
	if _, err := officeimap.New(officeimap.Config{}, deps); err == nil {
		t.Fatal("accepted without a log")
	}
	e := newEnv(t, nil)
	deps = officeimap.Deps{Directory: e.dir2, State: e.state, Log: e.log, Blobs: e.blobs}
	for name, cfg := range map[string]officeimap.Config{
		"plain on all interfaces": {Listen: "0.0.0.0:0", TLS: officeimap.TLSNone},
		"unknown tls":             {Listen: "127.0.0.1:0", TLS: "sometimes"},
		"tls without cert or dir": {Listen: "127.0.0.1:0"},
	} {
		if _, err := officeimap.New(cfg, deps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, func(c *officeimap.Config) { c.MaxConnections = 2 })
	var held []*imapclient.Client
	for range 2 {
		c, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	third, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
	if err == nil {
		defer third.Close()
		if err := third.Login("alice", passwords["alice"]).Wait(); err == nil {
			t.Fatal("a third connection was served")
		}
	}
	// A freed slot serves again (once the server noticed the close).
	held[0].Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := imapclient.DialInsecure(e.srv.Addr().String(), nil)
		if err == nil {
			err = c.Login("alice", passwords["alice"]).Wait()
			c.Close()
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection after a slot was freed: %v", err)
		}
	}
}
