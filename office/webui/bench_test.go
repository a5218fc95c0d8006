package webui

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
)

// openTestDB opens a state database like serve's, with the inbox and the
// index tables.
func openTestDB(tb testing.TB, dir string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := (offices.Inbox{}).Setup(ctx, tx); err != nil {
		tb.Fatal(err)
	}
	if err := (Index{}).Setup(ctx, tx); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return db
}

var benchChannels = []gateway.Channel{gateway.ChannelSMTP, gateway.ChannelIMAP, gateway.ChannelDeMail, "egvp", "portal"}

var benchSubjects = []string{"Antrag auf Baugenehmigung", "Widerspruch gegen Bescheid", "Anfrage Wohngeld", "Klage", "Rechnung",
	"Beschwerde Lärm", "Gewerbeanmeldung", "Akteneinsicht"}

// seedMessage is the i-th synthetic message of the benchmark: one of 20
// offices, five channels, 50,000 senders, a file number in every subject,
// one in ten in triage, a seventh each passed, failed and indeterminate.
func seedMessage(i int) (rec *gateway.MessageReceived, office, status, verification string) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec = &gateway.MessageReceived{Channel: benchChannels[i%len(benchChannels)],
		From:       gateway.Address{Address: fmt.Sprintf("person%d@domain%d.example", i%50000, i%300)},
		Subject:    fmt.Sprintf("%s Az. %d-%d-%d", benchSubjects[i%len(benchSubjects)], 10+i%90, 2026, i),
		ReceivedAt: start.Add(time.Duration(i) * 30 * time.Second)}
	office, status = fmt.Sprintf("office%02d", i%20), StatusDelivered
	if i%10 == 9 {
		office, status = "", StatusTriage
	}
	verification = []string{VerifyPassed, VerifyFailed, VerifyIndeterminate, VerifyUnsigned, VerifyUnsigned, VerifyUnsigned, VerifyUnsigned}[i%7]
	return rec, office, status, verification
}

// seedIndex writes n synthetic messages into the index tables with
// prepared statements, row for row what Index.Apply writes for them
// (TestSeedMatchesApply holds the two together); folding a million
// messages through Apply would take the benchmark many minutes.
func seedIndex(tb testing.TB, db *sql.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	const batch = 50000
	for lo := 0; lo < n; lo += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		msg, _ := tx.PrepareContext(ctx, `INSERT INTO ui_messages (id, tenant, stream, received_at, channel, sender, subject, file_numbers, offices, status, verification)
			VALUES (?, 'default', ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		off, _ := tx.PrepareContext(ctx, `INSERT INTO ui_message_offices (office, id, received_at) VALUES (?, ?, ?)`)
		txt, _ := tx.PrepareContext(ctx, `INSERT INTO ui_text (rowid, sender, subject, file_numbers) VALUES (?, ?, ?, ?)`)
		tri, _ := tx.PrepareContext(ctx, `INSERT INTO triage_items (tenant, stream, seq, kind, reason, since, state) VALUES ('default', ?, ?, 'routing', 'no rule', ?, 'open')`)
		for i := lo; i < min(lo+batch, n); i++ {
			rec, office, status, verification := seedMessage(i)
			id, stream, at := int64(i+1), benchStream(i), rec.ReceivedAt.UTC().Format(time.RFC3339Nano)
			files := strings.Join(FileNumbers(rec), " ")
			sender := strings.ToLower(rec.From.Address)
			if _, err := msg.ExecContext(ctx, id, stream, at, string(rec.Channel), sender, rec.Subject, files, office, status, verification); err != nil {
				tb.Fatal(err)
			}
			if _, err := txt.ExecContext(ctx, id, sender+" "+rec.From.Name, rec.Subject, files); err != nil {
				tb.Fatal(err)
			}
			if office != "" {
				_, err = off.ExecContext(ctx, office, id, at)
			} else {
				_, err = tri.ExecContext(ctx, stream, id, at)
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchStream(i int) string { return fmt.Sprintf("msg-%08d", i) }

// applySeed folds the same synthetic messages through Index.Apply and the
// inbox projection, as serve's projection runner would.
func applySeed(tb testing.TB, db *sql.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		rec, office, _, verification := seedMessage(i)
		e := &eventstore.Event{ID: fmt.Sprintf("rcv-%d", i), Tenant: "default", Stream: benchStream(i), RecordedAt: rec.ReceivedAt}
		var sigs []gateway.SignatureSummary
		switch verification {
		case VerifyPassed:
			sigs = []gateway.SignatureSummary{{Indication: "TOTAL_PASSED"}}
		case VerifyFailed:
			sigs = []gateway.SignatureSummary{{Indication: "TOTAL_PASSED"}, {Indication: "TOTAL_FAILED"}}
		case VerifyIndeterminate:
			sigs = []gateway.SignatureSummary{{Indication: "INDETERMINATE"}}
		}
		payloads := []gateway.Payload{rec, &gateway.SignaturesVerified{Signatures: sigs}}
		if office == "" {
			payloads = append(payloads, &gateway.RoutingFailed{Reason: "no rule"})
		} else {
			payloads = append(payloads, &gateway.MessageRouted{Offices: []string{office}, DecidedBy: "rules"},
				&gateway.MessageDelivered{Office: office, Via: "queue"})
		}
		for _, p := range payloads {
			for _, proj := range []interface {
				Apply(context.Context, projection.Tx, *eventstore.Event, gateway.Payload) error
			}{Index{}, offices.Inbox{}} {
				if err := proj.Apply(ctx, tx, e, p); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

var benchRows = flag.Int("bench-rows", 1_000_000, "messages BenchmarkSearch seeds")

var (
	benchOnce sync.Once
	benchDB   *sql.DB
	benchDir  string
)

// BenchmarkSearch measures search latency on an index of a million
// messages (seeded once per run; the seeding is not measured). Each sub-
// benchmark is one kind of query the search page sends.
func BenchmarkSearch(b *testing.B) {
	benchOnce.Do(func() {
		benchDir = b.TempDir()
		benchDB = openTestDB(b, benchDir)
		t0 := time.Now()
		seedIndex(b, benchDB, *benchRows)
		b.Logf("seeded %d messages in %s", *benchRows, time.Since(t0).Round(time.Second))
	})
	ctx := context.Background()
	// The queries ask for what the middle message has.
	mid := *benchRows / 2
	rec, office, _, _ := seedMessage(mid)
	day := rec.ReceivedAt.Truncate(24 * time.Hour)
	fileNumber := FileNumbers(rec)[0]
	sender := strings.SplitN(rec.From.Address, "@", 2)[0] + "@"
	cases := []struct {
		name string
		sc   Scope
		q    Query
	}{
		{"newest", Scope{All: true}, Query{}},
		{"sender", Scope{All: true}, Query{Sender: sender}},
		{"file-number", Scope{All: true}, Query{FileNumber: fileNumber}},
		{"subject-word", Scope{All: true}, Query{Subject: "widerspruch"}},
		{"text-and-channel", Scope{All: true}, Query{Text: "wohngeld", Channel: "demail"}},
		{"channel-day", Scope{All: true}, Query{Channel: "smtp", From: day, To: day.Add(24 * time.Hour)}},
		{"office-status", Scope{All: true}, Query{Office: office, Status: StatusDelivered}},
		{"verification-failed", Scope{All: true}, Query{Verification: VerifyFailed}},
		{"member-scope", Scope{Offices: []string{"office03", "office04"}}, Query{Text: "antrag"}},
		{"mailroom-triage", Scope{Mailroom: true}, Query{Status: StatusTriage}},
		{"rare-combination", Scope{All: true}, Query{Channel: "portal", Verification: VerifyFailed, Status: StatusTriage, From: day, To: day.Add(7 * 24 * time.Hour)}},
	}
	// The baseline is what the index saves: the same word and sender
	// searches as a LIKE over every row, as a table without the word index
	// would answer them.
	for _, c := range []struct{ name, where, arg string }{
		{"baseline-scan-subject-word", "subject LIKE ?", "%widerspruch%"},
		{"baseline-scan-sender", "sender LIKE ?", sender + "%"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := benchDB.QueryContext(ctx, "SELECT "+hitColumns+" FROM ui_messages m WHERE "+c.where+
					" ORDER BY received_at DESC, id DESC LIMIT 50", c.arg)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if n == 0 {
					b.Fatal("no hits")
				}
			}
		})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				hits, err := Search(ctx, benchDB, c.sc, c.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(hits) == 0 {
					b.Fatalf("no hits for %+v", c.q)
				}
			}
		})
	}
}
