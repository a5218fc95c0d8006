package webui

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
)

// dumpIndex renders the index tables as text in key order.
func dumpIndex(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT json_array(id, tenant, stream, received_at, channel, sender, subject, file_numbers, offices, status, verification) FROM ui_messages ORDER BY id`,
		`SELECT json_array(office, id, received_at) FROM ui_message_offices ORDER BY office, id`,
		`SELECT json_array(rowid, sender, subject, file_numbers) FROM ui_text ORDER BY rowid`,
		`SELECT json_array(stream, kind, state) FROM triage_items ORDER BY stream`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// The benchmark's bulk seed must be what the projection writes, or the
// benchmark measures another index.
func TestSeedMatchesApply(t *testing.T) {
	const n = 300
	seeded, applied := openTestDB(t, t.TempDir()), openTestDB(t, t.TempDir())
	seedIndex(t, seeded, n)
	applySeed(t, applied, n)
	if a, b := dumpIndex(t, seeded), dumpIndex(t, applied); a != b {
		t.Fatalf("seed and Apply differ:\nseed:\n%.2000s\napply:\n%.2000s", a, b)
	}
}

func TestSearch(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	applySeed(t, db, 400)
	ctx := context.Background()
	rec, office, _, _ := seedMessage(123)
	cases := []struct {
		name string
		sc   Scope
		q    Query
		want func(Hit) bool
		min  int
	}{
		{"file number finds its message", Scope{All: true}, Query{FileNumber: FileNumbers(rec)[0]},
			func(h Hit) bool { return h.Stream == benchStream(123) }, 1},
		{"sender prefix", Scope{All: true}, Query{Sender: "person123@"}, func(h Hit) bool { return strings.HasPrefix(h.Sender, "person123@") }, 1},
		{"subject word, any case and umlaut", Scope{All: true}, Query{Subject: "LARM"}, func(h Hit) bool { return strings.Contains(h.Subject, "Lärm") }, 10},
		{"a trailing star asks for a prefix", Scope{All: true}, Query{Text: "widersp*"}, func(h Hit) bool { return strings.HasPrefix(h.Subject, "Widerspruch") }, 10},
		{"without it a word is whole", Scope{All: true}, Query{Text: "widersp"}, func(Hit) bool { return false }, 0},
		{"channel", Scope{All: true}, Query{Channel: "demail"}, func(h Hit) bool { return h.Channel == "demail" }, 50},
		{"office and status", Scope{All: true}, Query{Office: office, Status: StatusDelivered},
			func(h Hit) bool { return slices.Equal(h.Offices, []string{office}) && h.Status == StatusDelivered }, 10},
		{"verification", Scope{All: true}, Query{Verification: VerifyFailed}, func(h Hit) bool { return h.Verification == VerifyFailed }, 20},
		{"date range", Scope{All: true}, Query{From: rec.ReceivedAt, To: rec.ReceivedAt.Add(time.Minute)},
			func(h Hit) bool { return h.Stream == benchStream(123) || h.Stream == benchStream(124) }, 2},
		{"member sees only their office", Scope{Offices: []string{"office03"}}, Query{Text: "klage"},
			func(h Hit) bool { return slices.Equal(h.Offices, []string{"office03"}) }, 1},
		{"mailroom sees only triage", Scope{Mailroom: true}, Query{}, func(h Hit) bool { return h.Status == StatusTriage }, 20},
		{"FTS syntax is taken as words", Scope{All: true}, Query{Text: `" OR * NEAR( ) subject:`}, func(Hit) bool { return true }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hits, err := Search(ctx, db, c.sc, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) < c.min {
				t.Fatalf("%d hits, want at least %d", len(hits), c.min)
			}
			for i, h := range hits {
				if !c.want(h) {
					t.Fatalf("hit %+v should not match", h)
				}
				if i > 0 && h.ReceivedAt.After(hits[i-1].ReceivedAt) {
					t.Fatalf("hits not newest first at %d", i)
				}
			}
		})
	}
	if hits, err := Search(ctx, db, Scope{}, Query{}); err != nil || len(hits) != 0 {
		t.Fatalf("an empty scope found %d (%v)", len(hits), err)
	}
}

func TestVerificationOf(t *testing.T) {
	for _, c := range []struct {
		ind  []string
		want string
	}{
		{nil, VerifyUnsigned},
		{[]string{"TOTAL_PASSED"}, VerifyPassed},
		{[]string{"TOTAL_PASSED", "INDETERMINATE"}, VerifyIndeterminate},
		{[]string{"INDETERMINATE", "TOTAL_FAILED"}, VerifyFailed},
	} {
		var m gateway.SignaturesVerified
		for _, i := range c.ind {
			m.Signatures = append(m.Signatures, gateway.SignatureSummary{Indication: i})
		}
		if got := VerificationOf(&m); got != c.want {
			t.Errorf("%v: %s, want %s", c.ind, got, c.want)
		}
	}
}
