package offices

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// TestEEBOverdue: a task past its due date is recorded overdue once, shows
// as overdue in the API's views and the count, opens a triage item, and the
// item is cleared when the office answers; a task answered in time, one not
// due yet and an unrouted message's are handled as the watch finds them.
func TestEEBOverdue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Inbox{EEBDueAfter: 24 * time.Hour}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	now := t0
	w := &OverdueWatch{Log: e.log, State: e.db, Now: func() time.Time { return now }}

	late := e.receiveEGVP(t, "late", t0, "doc-1")
	answered := e.receiveEGVP(t, "answered", t0, "doc-2")
	fresh := e.receiveEGVP(t, "fresh", t0.Add(20*time.Hour), "doc-3")
	unrouted := e.receiveEGVP(t, "unrouted", t0, "doc-4")
	routed := map[string]*eventstore.Event{}
	for _, r := range []*eventstore.Event{late, answered, fresh} {
		routed[r.Stream] = e.follow(t, "routing", r, &gateway.MessageRouted{Offices: []string{"rechtsamt", "bauamt"}, DecidedBy: "rules"})
	}
	e.follow(t, "routing", unrouted, &gateway.RoutingFailed{Reason: "no rule matched"})
	eeb := func(s string) *gateway.ReplyRequested {
		return &gateway.ReplyRequested{ReplyID: "rpl-" + s, Office: "rechtsamt", Author: "alice", Channel: gateway.ChannelEGVP,
			EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-12-01"}}
	}
	e.follow(t, "reply", routed[answered.Stream], eeb("answered"))
	check := func(want int) {
		t.Helper()
		if err := e.run.CatchUp(ctx, in); err != nil {
			t.Fatal(err)
		}
		n, err := w.Check(ctx)
		if err != nil || n != want {
			t.Fatalf("at %s: %d recorded, want %d (%v)", now, n, want, err)
		}
		if err := e.run.CatchUp(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	// Before the due date nothing is overdue.
	now = t0.Add(23 * time.Hour)
	check(0)
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Overdue || task.OverdueSince != nil {
		t.Fatalf("overdue before its due date: %+v", task)
	}
	// At the due date: late (routed) and unrouted, not the answered one nor
	// the fresh one.
	now = t0.Add(24 * time.Hour)
	check(2)
	check(0) // a second round records nothing again
	if task := eebOf(t, e.db, "bauamt", late.Stream); !task.Overdue || task.OverdueSince == nil {
		t.Fatalf("not overdue after its due date: %+v", task)
	}
	if task := eebOf(t, e.db, "rechtsamt", answered.Stream); task.Overdue {
		t.Fatalf("an answered task is overdue: %+v", task)
	}
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{EEBFilterOverdue, []string{late.Stream}},
		{EEBFilterOpen, []string{late.Stream, fresh.Stream}},
	} {
		if got := streams(t, e.db, Query{Office: "rechtsamt", EEB: tt.filter}); !slices.Equal(got, tt.want) {
			t.Errorf("eeb=%s: %v, want %v", tt.filter, got, tt.want)
		}
	}
	it, err := GetTriage(ctx, e.db, late.Stream)
	if err != nil || it.Kind != TriageEEBOverdue || it.State != "open" || !strings.Contains(it.Reason, "eEB overdue") ||
		!strings.Contains(it.Reason, "bauamt, rechtsamt") || it.EEB == nil || !it.EEB.Overdue {
		t.Fatalf("triage item of the overdue task: %+v %v", it, err)
	}
	// The unrouted message keeps its routing item, which now says the court waits.
	if it, err := GetTriage(ctx, e.db, unrouted.Stream); err != nil || it.Kind != "routing" || !strings.Contains(it.Reason, "no rule matched — eEB overdue") {
		t.Fatalf("triage item of the unrouted overdue message: %+v %v", it, err)
	}
	counts, err := CountEEB(ctx, e.db)
	if err != nil || !slices.Equal(counts, []EEBCount{{"bauamt", 2, 1}, {"rechtsamt", 2, 1}}) {
		t.Fatalf("counts: %+v %v", counts, err)
	}

	// The office answers: the item is cleared, the task no longer overdue,
	// and the time it became overdue stays.
	e.follow(t, "reply", routed[late.Stream], eeb("late"))
	now = t0.Add(48 * time.Hour)
	check(1) // fresh
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); task.Overdue || task.OverdueSince == nil || task.Status != EEBAnswering {
		t.Fatalf("answered overdue task: %+v", task)
	}
	if it, err := GetTriage(ctx, e.db, late.Stream); err != nil || it.State != "answered" {
		t.Fatalf("the overdue item after the answer: %+v %v", it, err)
	}
	if items, _ := ListTriage(ctx, e.db, 0, false, 0); slices.ContainsFunc(items, func(i TriageItem) bool { return i.Stream == late.Stream }) {
		t.Fatal("the answered overdue item is still listed as open")
	}
	// Failing for good makes it overdue again (the office must answer anew),
	// without another event.
	e.follow(t, "sender", routed[late.Stream], &gateway.ReplyFailed{ReplyID: "rpl-late", Attempt: 1, Error: "refused", Permanent: true})
	check(0)
	if task := eebOf(t, e.db, "rechtsamt", late.Stream); !task.Overdue || task.Status != EEBFailed {
		t.Fatalf("failed overdue task: %+v", task)
	}
	counts, _ = CountEEB(ctx, e.db)
	if !slices.Equal(counts, []EEBCount{{"bauamt", 2, 2}, {"rechtsamt", 2, 2}}) {
		t.Fatalf("counts after the failure: %+v", counts)
	}

	// A rebuild gives the same read model: overdue comes from the log.
	before, err := Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run.Rebuild(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if after, _ := Dump(ctx, e.db); after != before {
		t.Fatalf("rebuilt overdue tasks differ:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestEEBOverdueColumnUpgrade: a state database from before overdue_at gets
// the column and keeps its tasks.
func TestEEBOverdueColumnUpgrade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiveEGVP(t, "old", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), "d")
	e.follow(t, "routing", r, &gateway.MessageRouted{Offices: []string{"rechtsamt"}, DecidedBy: "rules"})
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, `DROP INDEX office_eeb_due`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, `ALTER TABLE office_eeb DROP COLUMN overdue_at`); err != nil {
		t.Fatal(err)
	}
	w := &OverdueWatch{Log: e.log, State: e.db, Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }}
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Check(ctx); err != nil || n != 1 {
		t.Fatalf("watch after the upgrade: %d %v", n, err)
	}
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if task := eebOf(t, e.db, "rechtsamt", r.Stream); task == nil || !task.Overdue {
		t.Fatalf("after the upgrade: %+v", task)
	}
}
