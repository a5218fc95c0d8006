package officeimap_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/office/officeimap"
)

// deliverEEB records a court's EGVP message asking for an eEB and routes it
// to office.
func (e *env) deliverEEB(t *testing.T, office string) *eventstore.Event {
	t.Helper()
	ctx := context.Background()
	raw := []byte("Subject: Zustellung\r\n\r\nUrteil\r\n")
	ref, err := e.blobs.PutBytes(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelEGVP, "osci-1"), &gateway.MessageReceived{Channel: gateway.ChannelEGVP,
		SenderMessageID: "osci-1", From: gateway.Address{Address: "osci:c0ffee", Name: "VG Koblenz"}, Subject: "Zustellung",
		ReceivedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Raw: ref,
		EGVP: &gateway.EGVPFields{SenderFileNumber: "1 K 1/26", EEBRequested: true, EEBDocuments: []string{"urteil-1"}, Origin: "vhn"}})
	if err != nil {
		t.Fatal(err)
	}
	routed, _ := gateway.Follow("test-routing", &ev, 0, &gateway.MessageRouted{Offices: []string{office}, DecidedBy: "rules"})
	if _, err := e.log.Append(ctx, ev, routed); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	return &routed
}

func TestEEBKeyword(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, "Bauantrag", "bauamt")
	routed := e.deliverEEB(t, "bauamt")
	c := e.login(t, "alice")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || !slices.Contains(sel.Flags, officeimap.FlagEEB) || slices.Contains(sel.PermanentFlags, officeimap.FlagEEB) {
		t.Fatalf("select: %+v %v", sel, err)
	}
	fetch := func() []imap.Flag {
		t.Helper()
		msgs, err := c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v", err)
		}
		return msgs[0].Flags
	}
	if f := fetch(); !slices.Equal(f, []imap.Flag{officeimap.FlagEEB}) {
		t.Fatalf("flags of the request: %v", f)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{officeimap.FlagEEB}}, nil).Wait()
	if err != nil || !slices.Equal(found.AllUIDs(), []imap.UID{2}) {
		t.Fatalf("search $EEB: %v %v", found, err)
	}
	// The header says what was asked and by when.
	msgs, err := c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Peek: true, Specifier: imap.PartSpecifierHeader}}}).Collect()
	if err != nil || !strings.Contains(string(msgs[0].BodySection[0].Bytes), "X-Poststelle-EEB: requested; due=2026-03-05T09:00:00Z;") {
		t.Fatalf("header: %q %v", msgs[0].BodySection[0].Bytes, err)
	}
	// The client can neither clear the keyword nor set it elsewhere;
	// naming it with \Seen acknowledges and leaves it.
	c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{officeimap.FlagEEB}}, nil).Close()
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{officeimap.FlagEEB}}, nil).Close(); err != nil {
		t.Fatalf("storing $EEB: %v", err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{imap.FlagSeen, officeimap.FlagEEB}}, nil).Close(); err != nil {
		t.Fatalf("storing the flags shown: %v", err)
	}
	if f := fetch(); !slices.Equal(f, []imap.Flag{imap.FlagSeen, officeimap.FlagEEB}) {
		t.Fatalf("flags after STOREs: %v", f)
	}
	msgs, _ = c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if slices.Contains(msgs[0].Flags, officeimap.FlagEEB) {
		t.Fatal("an e-mail got $EEB")
	}

	// The office answers the eEB elsewhere: the keyword goes, on NOOP.
	updates := make(chan []imap.Flag, 4)
	c2 := e.loginWithUpdates(t, "alice", updates)
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	rq, _ := gateway.Follow("reply", routed, 0, &gateway.ReplyRequested{ReplyID: "rpl-1", Office: "bauamt", Author: "alice",
		Channel: gateway.ChannelEGVP, EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-03-02"}})
	if _, err := e.log.Append(context.Background(), rq); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	if err := c2.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-updates:
		if !slices.Equal(f, []imap.Flag{imap.FlagSeen}) {
			t.Fatalf("unsolicited flags %v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no flag update after the answer")
	}
	c.Noop().Wait()
	if f := fetch(); !slices.Equal(f, []imap.Flag{imap.FlagSeen}) {
		t.Fatalf("flags after the answer: %v", f)
	}
	// It comes back when the answer fails for good.
	failed, _ := gateway.Follow("sender", &rq, 0, &gateway.ReplyFailed{ReplyID: "rpl-1", Attempt: 1, Error: "refused", Permanent: true})
	if _, err := e.log.Append(context.Background(), failed); err != nil {
		t.Fatal(err)
	}
	e.catchUp(t)
	c.Noop().Wait()
	if f := fetch(); !slices.Equal(f, []imap.Flag{imap.FlagSeen, officeimap.FlagEEB}) {
		t.Fatalf("flags after the failure: %v", f)
	}
}

// loginWithUpdates logs in with a client that passes the flags of every
// unsolicited FETCH to updates.
func (e *env) loginWithUpdates(t *testing.T, user string, updates chan<- []imap.Flag) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.srv.Addr().String(), &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(m *imapclient.FetchMessageData) {
			if b, err := m.Collect(); err == nil {
				select {
				case updates <- b.Flags:
				default:
				}
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, passwords[user]).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}
