package offices

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// retentionOf returns what an office sees of a message's erasure and hold,
// in the queue's listing and in the single message.
func retentionOf(t *testing.T, e *env, office, stream string) (*Erasure, *Hold) {
	t.Helper()
	ctx := context.Background()
	m, err := GetMessage(ctx, e.db, office, stream)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ListInbox(ctx, e.db, office, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.Stream != stream {
			continue
		}
		lj, _ := json.Marshal([]any{l.Erased, l.Hold})
		mj, _ := json.Marshal([]any{m.Erased, m.Hold})
		if string(lj) != string(mj) {
			t.Errorf("%s/%s: listing says %s, message says %s", office, stream, lj, mj)
		}
		return m.Erased, m.Hold
	}
	t.Fatalf("%s does not list %s", office, stream)
	return nil, nil
}

// retentionEvents appends the log of TestInboxErasureAndHold: m1 routed,
// held, released and erased; m2 held before it was routed to two offices;
// m3 erased in triage and routed by hand afterwards; m4 left alone.
func retentionEvents(t *testing.T, e *env) (m1, m2, m3, m4 *eventstore.Event) {
	t.Helper()
	m1, m2, m3, m4 = e.receive(t, "r1", "Bauantrag"), e.receive(t, "r2", "Widerspruch"), e.receive(t, "r3", "Irrläufer"), e.receive(t, "r4", "Anfrage")
	e.follow(t, "routing", m1, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	e.follow(t, "routing", m4, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	return m1, m2, m3, m4
}

var (
	holdAt  = time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	eraseAt = time.Date(2028, 1, 1, 0, 0, 3, 0, time.UTC)
)

func TestInboxErasureAndHold(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Inbox{}
	m1, m2, m3, m4 := retentionEvents(t, e)
	hold := func(m *eventstore.Event, n int, c string) {
		ev, err := gateway.Follow("retention", m, n, &gateway.LegalHoldSet{Reason: "Klage", Actor: "admin", Case: c, SetAt: holdAt})
		if err != nil {
			t.Fatal(err)
		}
		e.append(t, ev)
	}
	hold(m1, 0, "1 K 5/27")
	hold(m2, 0, "")
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if er, h := retentionOf(t, e, "bauamt", m1.Stream); er != nil || h == nil || !h.Since.Equal(holdAt) || h.Case != "1 K 5/27" {
		t.Fatalf("m1 held: %+v %+v", er, h)
	}

	// m1's hold ends and its contents are erased; m2, held, is routed; m3
	// is erased before anyone routed it.
	rel, err := gateway.Follow("retention", m1, 1, &gateway.LegalHoldReleased{Reason: "Verfahren beendet", Actor: "admin", ReleasedAt: holdAt.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.append(t, rel)
	erased := &gateway.ContentErased{ErasedAt: eraseAt, Rule: "office bauamt: 1y from the end of the year of receipt", Reason: "retention-expired", Office: "bauamt"}
	e.follow(t, "retention-erase", m1, erased)
	e.follow(t, "retention-erase", m3, &gateway.ContentErased{ErasedAt: eraseAt, Rule: "manual", Reason: "Irrläufer, Antrag auf Löschung", Actor: "admin"})
	e.follow(t, "routing", m2, &gateway.MessageRouted{Offices: []string{"bauamt", "kaemmerei"}, DecidedBy: "rules"})
	e.follow(t, "routing", m3, &gateway.MessageRouted{Offices: []string{"kaemmerei"}, DecidedBy: "mailroom"})
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, office, stream string
		erased               *Erasure
		hold                 *Hold
	}{
		{"m1 released and erased", "bauamt", m1.Stream, &Erasure{At: eraseAt, Rule: erased.Rule, Reason: "retention-expired"}, nil},
		{"m2 held before routing (bauamt)", "bauamt", m2.Stream, nil, &Hold{Since: holdAt}},
		{"m2 held before routing (kaemmerei)", "kaemmerei", m2.Stream, nil, &Hold{Since: holdAt}},
		{"m3 erased before routing", "kaemmerei", m3.Stream, &Erasure{At: eraseAt, Rule: "manual", Reason: "Irrläufer, Antrag auf Löschung"}, nil},
		{"m4 untouched", "bauamt", m4.Stream, nil, nil},
	} {
		er, h := retentionOf(t, e, tc.office, tc.stream)
		got, _ := json.Marshal([]any{er, h})
		want, _ := json.Marshal([]any{tc.erased, tc.hold})
		if string(got) != string(want) {
			t.Errorf("%s: got %s, want %s", tc.name, got, want)
		}
	}

	// The office API and webhooks marshal Message as it is: the names
	// are part of the documented API.
	m, err := GetMessage(ctx, e.db, "bauamt", m1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(m)
	if !strings.Contains(string(j), `"erased":{"at":"2028-01-01T00:00:03Z","rule":"office bauamt: 1y from the end of the year of receipt","reason":"retention-expired"}`) ||
		strings.Contains(string(j), `"legalHold"`) {
		t.Errorf("m1 as JSON: %s", j)
	}
	m, _ = GetMessage(ctx, e.db, "bauamt", m2.Stream)
	if j, _ := json.Marshal(m); !strings.Contains(string(j), `"legalHold":{"since":"2027-03-01T09:00:00Z"}`) || strings.Contains(string(j), `"erased"`) {
		t.Errorf("m2 as JSON: %s", j)
	}

	// A rebuild gives the same read model: erasures and holds come from the log.
	before, err := Dump(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(before, "retention-expired") || !strings.Contains(before, "2027-03-01T09:00:00Z") {
		t.Fatalf("the dump lacks the erasure or the hold:\n%s", before)
	}
	if err := e.run.Rebuild(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	if after, _ := Dump(ctx, e.db); after != before {
		t.Fatalf("rebuilt read model differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestRetentionColumnsUpgrade: a state database from before the erasure
// columns, which folded a ContentErased and a LegalHoldSet without keeping
// them, gets the columns and folds the log again, so that both show.
func TestRetentionColumnsUpgrade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m1, m2, _, _ := retentionEvents(t, e)
	e.follow(t, "retention-erase", m1, &gateway.ContentErased{ErasedAt: eraseAt, Rule: "r", Reason: "retention-expired"})
	e.follow(t, "routing", m2, &gateway.MessageRouted{Offices: []string{"bauamt"}, DecidedBy: "rules"})
	e.follow(t, "retention", m2, &gateway.LegalHoldSet{Reason: "Klage", Actor: "admin", Case: "2 K 1/27", SetAt: holdAt})
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"inbox_received", "office_messages"} {
		for _, c := range retentionColumnNames {
			if _, err := e.db.ExecContext(ctx, `ALTER TABLE `+table+` DROP COLUMN `+c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if er, _ := retentionOf(t, e, "bauamt", m1.Stream); er == nil || er.Reason != "retention-expired" || !er.At.Equal(eraseAt) {
		t.Errorf("m1 after the upgrade: %+v", er)
	}
	if _, h := retentionOf(t, e, "bauamt", m2.Stream); h == nil || h.Case != "2 K 1/27" {
		t.Errorf("m2 after the upgrade: %+v", h)
	}
	// Every message is back, in its place.
	list, err := ListInbox(ctx, e.db, "bauamt", 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("bauamt after the upgrade: %d messages, %v", len(list), err)
	}
	for i, m := range list {
		if m.Seq != int64(i+1) {
			t.Errorf("message %d has seq %d", i, m.Seq)
		}
	}
	// The next start finds the columns and keeps the read model.
	if err := e.run.CatchUp(ctx, Inbox{}); err != nil {
		t.Fatal(err)
	}
	if _, h := retentionOf(t, e, "bauamt", m2.Stream); h == nil {
		t.Error("the hold is gone after a second start")
	}
}
