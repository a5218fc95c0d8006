package offices

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// receiveEGVP appends an EGVP message received at at, asking for an eEB of
// docs when there are any.
func (e *env) receiveEGVP(t *testing.T, id string, at time.Time, docs ...string) *eventstore.Event {
	t.Helper()
	ev, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelEGVP, id), &gateway.MessageReceived{
		Channel: gateway.ChannelEGVP, SenderMessageID: id, Subject: "Zustellung " + id, From: gateway.Address{Address: "osci:c0ffee"},
		ReceivedAt: at, EGVP: &gateway.EGVPFields{SenderSafeID: "DE.Justiz.vg", SenderFileNumber: "1 K " + id,
			EEBRequested: len(docs) > 0, EEBDocuments: docs, Origin: "vhn"}})
	if err != nil {
		t.Fatal(err)
	}
	return e.append(t, ev)
}

func eebOf(t *testing.T, db *sql.DB, office, stream string) *EEBTask {
	t.Helper()
	m, err := GetMessage(context.Background(), db, office, stream)
	if err != nil {
		t.Fatal(err)
	}
	return m.EEB
}

func TestEEBTaskLifecycleAndRebuild(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Inbox{EEBDueAfter: 48 * time.Hour}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

	// Three requests received in another order than they fall due, one
	// EGVP message without a request, one e-mail.
	late := e.receiveEGVP(t, "late", t0.Add(2*time.Hour), "doc-1", "doc-2")
	early := e.receiveEGVP(t, "early", t0, "doc-9")
	mid := e.receiveEGVP(t, "mid", t0.Add(time.Hour), "doc-5")
	plain := e.receiveEGVP(t, "plain", t0)
	mail := e.receive(t, "m1", "Antrag")
	var routed = map[string]*eventstore.Event{}
	for _, r := range []*eventstore.Event{late, early, mid, plain, mail} {
		routed[r.Stream] = e.follow(t, "routing", r, &gateway.MessageRouted{Offices: []string{"rechtsamt", "bauamt"}, DecidedBy: "rules"})
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	task := eebOf(t, e.db, "rechtsamt", late.Stream)
	if task == nil || !task.Requested || task.Status != EEBOpen || !task.Due.Equal(t0.Add(50*time.Hour)) ||
		!slices.Equal(task.Documents, []string{"doc-1", "doc-2"}) || task.ReplyID != "" || task.AnsweredAt != nil {
		t.Fatalf("open task: %+v", task)
	}
	// The office sees the EGVP facts and the trust level beside the task.
	if m, err := GetMessage(ctx, e.db, "rechtsamt", late.Stream); err != nil || m.EGVP == nil || m.EGVP.Origin != "vhn" ||
		m.EGVP.SenderFileNumber != "1 K late" {
		t.Fatalf("egvp section of the office's view: %+v, %v", m.EGVP, err)
	}
	if m, err := GetMessage(ctx, e.db, "rechtsamt", mail.Stream); err != nil || m.EGVP != nil {
		t.Fatalf("an e-mail has an egvp section: %+v, %v", m.EGVP, err)
	}
	if eebOf(t, e.db, "rechtsamt", plain.Stream) != nil || eebOf(t, e.db, "rechtsamt", mail.Stream) != nil {
		t.Fatal("a message without a request has an eEB task")
	}
	// Both offices see the same one task.
	if b := eebOf(t, e.db, "bauamt", late.Stream); b == nil || b.Status != EEBOpen {
		t.Fatalf("the other office's view: %+v", b)
	}
	if got := streams(t, e.db, Query{Office: "rechtsamt", EEB: EEBFilterOpen}); !slices.Equal(got, []string{early.Stream, mid.Stream, late.Stream}) {
		t.Fatalf("open tasks by due: %v", got)
	}

	// mid is answered and sent; late is answered, retried, then fails for
	// good; early stays open.
	at := func(s string) *gateway.ReplyRequested {
		return &gateway.ReplyRequested{ReplyID: "rpl-" + s, Office: "rechtsamt", Author: "alice", Channel: gateway.ChannelEGVP,
			To: gateway.Address{Address: "osci:c0ffee"}, Subject: "EB zu", EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}}
	}
	rqMid := e.follow(t, "reply/mid", routed[mid.Stream], at("mid"))
	e.follow(t, "sender", rqMid, &gateway.ReplySent{ReplyID: "rpl-mid", Channel: gateway.ChannelEGVP, Attempt: 1})
	rqLate := e.follow(t, "reply/late", routed[late.Stream], at("late"))
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Status != EEBAnswering || task.ReplyID != "rpl-late" ||
		task.AnsweredBy != "alice" || task.AnsweredOffice != "rechtsamt" || task.Decision != gateway.EEBAcknowledged || task.AnsweredAt == nil {
		t.Fatalf("answering: %+v", task)
	}
	if task := eebOf(t, e.db, "bauamt", mid.Stream); task.Status != EEBSent || task.SentAt == nil || task.AnsweredAt == nil || task.SentAt.Before(*task.AnsweredAt) {
		t.Fatalf("sent: %+v", task)
	}
	e.follow(t, "sender/1", rqLate, &gateway.ReplyFailed{ReplyID: "rpl-late", Attempt: 1, Error: "intermediary busy"})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Status != EEBAnswering || task.Error != "intermediary busy" {
		t.Fatalf("retrying: %+v", task)
	}
	if got := streams(t, e.db, Query{Office: "rechtsamt", EEB: EEBFilterOpen}); !slices.Equal(got, []string{early.Stream}) {
		t.Fatalf("open tasks while two are answered: %v", got)
	}
	e.follow(t, "sender/2", rqLate, &gateway.ReplyFailed{ReplyID: "rpl-late", Attempt: 2, Error: "recipient certificate unknown", Permanent: true})
	// A ReplyFailed for an ordinary answer changes no task.
	e.follow(t, "sender/3", routed[early.Stream], &gateway.ReplyFailed{ReplyID: "rpl-other", Attempt: 1, Error: "x", Permanent: true})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Status != EEBFailed || task.Error != "recipient certificate unknown" {
		t.Fatalf("failed: %+v", task)
	}
	if task := eebOf(t, e.db, "rechtsamt", early.Stream); task.Status != EEBOpen {
		t.Fatalf("untouched task: %+v", task)
	}
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{EEBFilterOpen, []string{early.Stream, late.Stream}},
		{EEBFilterRequested, []string{early.Stream, mid.Stream, late.Stream}},
		{EEBSent, []string{mid.Stream}},
		{EEBFailed, []string{late.Stream}},
		{EEBAnswering, nil},
	} {
		if got := streams(t, e.db, Query{Office: "bauamt", EEB: tt.filter}); !slices.Equal(got, tt.want) {
			t.Errorf("eeb=%s: %v, want %v", tt.filter, got, tt.want)
		}
	}
	if _, err := ListInboxPage(ctx, e.db, Query{Office: "bauamt", EEB: "late"}); err == nil || ValidEEBFilter("late") {
		t.Fatal("an unknown filter was accepted")
	}
	// The failed answer's triage item shows the task.
	if it, err := GetTriage(ctx, e.db, late.Stream); err != nil || it.Kind != "reply" || it.EEB == nil || it.EEB.Status != EEBFailed {
		t.Fatalf("triage item of the failed eEB: %+v %v", it, err)
	}
	// A second answer after the failure takes the task over.
	rq2 := e.follow(t, "reply/late2", routed[late.Stream], &gateway.ReplyRequested{ReplyID: "rpl-late2", Office: "bauamt", Author: "bob",
		Channel: gateway.ChannelEGVP, EEB: &gateway.EEBAnswer{Decision: gateway.EEBRefused, RefusalCode: "2"}})
	// A stray answer while that one is pending does not.
	e.follow(t, "reply/late3", routed[late.Stream], &gateway.ReplyRequested{ReplyID: "rpl-late3", Office: "bauamt", Author: "eve",
		Channel: gateway.ChannelEGVP, EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}})
	e.follow(t, "sender", rq2, &gateway.ReplySent{ReplyID: "rpl-late2", Channel: gateway.ChannelEGVP, Attempt: 1})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Status != EEBSent || task.ReplyID != "rpl-late2" || task.AnsweredBy != "bob" ||
		task.Decision != gateway.EEBRefused || task.Error != "" {
		t.Fatalf("second answer: %+v", task)
	}

	before, err := Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(before, "eeb\tdefault\t"+early.Stream) {
		t.Fatalf("the dump leaves the tasks out:\n%s", before)
	}
	if err := e.run.Rebuild(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if after, _ := Dump(ctx, e.db); after != before {
		t.Fatalf("rebuilt eEB tasks differ:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestEEBDefaultDue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 123, time.UTC)
	r := e.receiveEGVP(t, "x", t0, "d")
	e.follow(t, "routing", r, &gateway.MessageRouted{Offices: []string{"rechtsamt"}, DecidedBy: "rules"})
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", r.Stream); task == nil || !task.Due.Equal(t0.Add(DefaultEEBDueAfter)) {
		t.Fatalf("default due: %+v", task)
	}
}

// TestEEBSchemaUpgrade: a state database from before the eEB tasks is
// rebuilt, so that requests received then get their task.
func TestEEBSchemaUpgrade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiveEGVP(t, "old", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), "d")
	e.follow(t, "routing", r, &gateway.MessageRouted{Offices: []string{"rechtsamt"}, DecidedBy: "rules"})
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	// The old schema: no office_eeb.
	if _, err := e.db.ExecContext(ctx, `DROP TABLE office_eeb`); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", r.Stream); task == nil || task.Status != EEBOpen {
		t.Fatalf("after the upgrade: %+v", task)
	}
}

func streams(t *testing.T, db *sql.DB, q Query) []string {
	t.Helper()
	msgs, err := ListInboxPage(context.Background(), db, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Stream)
	}
	return out
}
