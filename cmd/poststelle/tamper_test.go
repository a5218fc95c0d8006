package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

var updateMatrix = flag.Bool("update-matrix", false, "rewrite docs/tamper-matrix.md from TestTamperMatrix's table")

// The tamper fixture: three messages, each recorded through the gateway's
// own code as seven events, so every offset below is fixed:
//
//	7m+0 MessageReceived     raw message, MIME parts
//	7m+1 SignaturesVerified  report (JSON), Prüfprotokoll (HTML)
//	7m+2 TimestampApplied    timestamp token
//	7m+3 MessageRouted
//	7m+4 MessageDelivered
//	7m+5 ReplyRequested      answer body, answer attachment
//	7m+6 ReplySent
//
// Each event is its own commit, so the embedded log holds a checkpoint at
// every size 1…21. Blob rows alter the blobs of message 1 (offsets 7…13).
const (
	fixtureMessages = 3
	eventsPerMsg    = 7
	fixtureEvents   = fixtureMessages * eventsPerMsg
)

// Blob kinds, each with the offset of the event of message 1 that refers to it.
var blobKinds = []struct {
	kind   string
	offset int64
}{
	{"raw message", 7},
	{"MIME part", 7},
	{"verification report (JSON)", 8},
	{"Prüfprotokoll (HTML)", 8},
	{"timestamp token", 9},
	{"answer body", 12},
	{"answer attachment", 12},
}

type tamperFixture struct {
	dir     string              // the intact data directory, copied for every row
	refs    map[string]blob.Ref // blob kind → the blob of message 1
	pubCopy string              // the auditor's copy of the public key, outside the data directory
	fp      string              // the real key's fingerprint
	// otherToken is a valid token of the fixture's TSA over other data.
	otherToken *tsp.Stamp
}

// buildTamperFixture records the fixture's messages with the gateway's
// intake, MIME walker, verification and timestamp handlers, as serve would.
func buildTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	ctx := context.Background()
	fx := &tamperFixture{dir: t.TempDir(), refs: map[string]blob.Ref{}}
	signer, err := keys.Generate(filepath.Join(fx.dir, "keys", "gateway.key"), filepath.Join(fx.dir, "keys", "gateway.pub"))
	if err != nil {
		t.Fatal(err)
	}
	fx.fp, _ = keys.Fingerprint(signer.Public())
	fx.pubCopy = filepath.Join(t.TempDir(), "auditor-copy.pub")
	if err := keys.WritePublic(fx.pubCopy, signer.Public()); err != nil {
		t.Fatal(err)
	}
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(fx.dir, "log.db"), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bs, err := blob.Open(filepath.Join(fx.dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	_, tsaURL := tsptest.Start(t, tsptest.Normal)
	hs, err := verification.Handlers(ctx, verification.Config{TSAs: []verification.TSAConfig{{Name: "test", URL: tsaURL}}},
		verification.Deps{Blobs: bs, Verifier: "poststelle test"})
	if err != nil || len(hs) != 2 {
		t.Fatalf("verification handlers: %d, %v", len(hs), err)
	}
	other := sha256.Sum256([]byte("not a message of this log"))
	tc := &tsp.Client{TSAs: []tsp.TSA{{Name: "test", URL: tsaURL}}}
	if fx.otherToken, err = tc.Timestamp(ctx, other[:]); err != nil {
		t.Fatal(err)
	}
	in := &gateway.Intake{Log: l}
	for m := range fixtureMessages {
		cause := receiveFixtureMessage(t, ctx, in, l, bs, m, fx.refs)
		for _, h := range hs { // SignaturesVerified, then TimestampApplied
			out, err := h.Handle(ctx, cause, mustDecode(t, cause))
			if err != nil || len(out) != 1 {
				t.Fatalf("%s: %d events, %v", h.Name, len(out), err)
			}
			appendFollow(t, l, h.Name, cause, out[0])
			if m == 1 {
				switch p := out[0].(type) {
				case *gateway.SignaturesVerified:
					fx.refs["verification report (JSON)"], fx.refs["Prüfprotokoll (HTML)"] = p.Report, p.ReportHTML
				case *gateway.TimestampApplied:
					fx.refs["timestamp token"] = p.Token
				}
			}
		}
		appendFollow(t, l, "route", cause, &gateway.MessageRouted{Offices: []string{"demo"}, DecidedBy: "rules", Rule: "all"})
		appendFollow(t, l, "deliver", cause, &gateway.MessageDelivered{Office: "demo", Via: "queue"})
		body, _ := bs.PutBytes(ctx, []byte(fmt.Sprintf("Sehr geehrte Damen und Herren,\r\nAntwort %d.\r\n", m)))
		att, _ := bs.PutBytes(ctx, []byte(fmt.Sprintf("%%PDF-1.4 Bescheid %d", m)))
		req := appendFollow(t, l, "office-api", cause, &gateway.ReplyRequested{ReplyID: fmt.Sprintf("r%d", m), Office: "demo",
			Author: "demo", Channel: gateway.ChannelSMTP, To: gateway.Address{Address: "buerger@example.org"}, Subject: "Re: Antrag",
			Body: body, Attachments: []gateway.Part{{Path: "2", MediaType: "application/pdf", Filename: "bescheid.pdf", Blob: att, Kind: "attachment"}}})
		appendFollow(t, l, replies.HandlerName, req, &gateway.ReplySent{ReplyID: fmt.Sprintf("r%d", m), Channel: gateway.ChannelSMTP,
			Attempt: 1, Response: "250 2.0.0 queued"})
		if m == 1 {
			fx.refs["answer body"], fx.refs["answer attachment"] = body, att
		}
	}
	if end, _ := l.End(ctx, 0); end != fixtureEvents {
		t.Fatalf("fixture has %d events, want %d", end, fixtureEvents)
	}
	for _, k := range blobKinds {
		if fx.refs[k.kind] == (blob.Ref{}) {
			t.Fatalf("fixture has no %s", k.kind)
		}
	}
	return fx
}

// receiveFixtureMessage stores and walks a multipart message and records it.
func receiveFixtureMessage(t *testing.T, ctx context.Context, in *gateway.Intake, l *sqlitelog.Log, bs *blob.Store, m int, refs map[string]blob.Ref) *eventstore.Event {
	t.Helper()
	raw := fmt.Sprintf("From: buerger%d@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Antrag %d\r\nMessage-ID: <m%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nGuten Tag %d\r\n"+
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=antrag%d.txt\r\n\r\nAnlage %d\r\n--b--\r\n", m, m, m, m, m, m)
	ref, err := bs.PutBytes(ctx, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mailmsg.Walk(ctx, bs, ref, mailmsg.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: msg.MessageID, From: msg.From, To: msg.To,
		Subject: msg.Subject, ReceivedAt: time.Date(2026, 3, 2, 9, m, 0, 0, time.UTC), Raw: ref, Parts: msg.Parts,
		Transport: gateway.TransportEvidence{RemoteAddr: "127.0.0.1:40000", Envelope: map[string]string{"mailFrom": msg.From.Address}}}
	r, err := in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint(m)), rec)
	if err != nil {
		t.Fatal(err)
	}
	if m == 1 {
		refs["raw message"] = ref
		for _, p := range msg.Parts {
			if p.Blob != (blob.Ref{}) && p.Blob != ref {
				refs["MIME part"] = p.Blob
				break
			}
		}
	}
	stored, err := l.ReadStream(ctx, gateway.DefaultTenant, r.Stream)
	if err != nil || len(stored) != 1 {
		t.Fatalf("read back message %d: %v", m, err)
	}
	return &stored[0]
}

func mustDecode(t *testing.T, e *eventstore.Event) gateway.Payload {
	t.Helper()
	p, err := gateway.NewRegistry().Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendFollow(t *testing.T, l *sqlitelog.Log, handler string, cause *eventstore.Event, p gateway.Payload) *eventstore.Event {
	t.Helper()
	e, err := gateway.Follow(handler, cause, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	e.Position = res[0].Position
	return &e
}

// copyFixture copies the intact data directory for one row.
func (fx *tamperFixture) copy(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(fx.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fx.dir, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, src)
		return errors.Join(err, out.Close())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// outcome is what log verify must answer.
type outcome struct {
	Exit int
	// Offset is the first broken position named (exit 1 from the log
	// itself); -1 when the failure is not at a log position.
	Offset int64
	// Reason is a part of the message (stdout or stderr).
	Reason string
}

func (o outcome) String() string {
	switch {
	case o.Exit == exitOK:
		return "exit 0: " + o.Reason
	case o.Offset >= 0:
		return fmt.Sprintf("exit %d at offset %d: %s", o.Exit, o.Offset, o.Reason)
	}
	return fmt.Sprintf("exit %d: %s", o.Exit, o.Reason)
}

// tamperRow is one line of the tamper matrix (docs/tamper-matrix.md).
type tamperRow struct {
	Target string // what is altered
	How    string // the sqlite3 script, or a description of what Do does
	Script string // run with the sqlite3 tool on log.db
	// Do alters files (blobs, keys, a log rewritten with a key).
	Do func(t *testing.T, fx *tamperFixture, dir string)
	// Args are extra log verify arguments; {pub} is the auditor's copy of
	// the public key, {fp} the real key's fingerprint.
	Args []string
	// Config is YAML appended to the row's configuration ({fp} as above).
	Config string
	Want   outcome
	// NeedsHead marks edits only a head saved before tampering reveals
	// (truncation with its checkpoints, a fork): WithHead is the outcome of
	// log verify --head with that head.
	NeedsHead bool
	WithHead  outcome
	Note      string // why, for the documentation
}

const evBroken = "does not match the signed checkpoint"

// tamperMatrix is the table. Every column of every table, the row
// operations, forgeries with and without the key, and every blob kind.
func tamperMatrix() []tamperRow {
	truncated := outcome{Exit: exitFailed, Offset: -1, Reason: "the log was truncated"}
	forked := outcome{Exit: exitFailed, Offset: -1, Reason: "the log was rewritten or forked"}
	col := func(column, set string, off int64) tamperRow {
		return tamperRow{Target: "events." + column, Script: fmt.Sprintf("UPDATE events SET %s = %s WHERE off = %d;", column, set, off),
			Want: outcome{exitFailed, off, fmt.Sprintf("tree head at size %d %s", off+1, evBroken)}}
	}
	rows := []tamperRow{
		{Target: "events.off", Script: "UPDATE events SET off = 1000 WHERE off = 10;",
			Want: outcome{exitFailed, 10, "expected offset 10, found 11"}},
		col("id", "'forged'", 10),
		col("tenant", "'other'", 10),
		col("stream", "'msg-forged'", 10),
		col("stream_seq", "stream_seq + 100", 10),
		col("type", "'RoutingFailed'", 10),
		col("version", "2", 10),
		col("message_key", "'smtp:forged'", 7),
		col("correlation_id", "'forged'", 10),
		col("causation_id", "'forged'", 10),
		col("metadata", `CAST('{"x":"y"}' AS BLOB)`, 10),
		col("data", `CAST(replace(CAST(data AS TEXT), 'demo', 'dem0') AS BLOB)`, 10),
		col("recorded_at", "recorded_at + 1", 10),
		{Target: "events.prev_hash", Script: "UPDATE events SET prev_hash = zeroblob(32) WHERE off = 10;",
			Want: outcome{exitFailed, 10, "does not link to its predecessor"}},
		{Target: "events.leaf_hash", Script: "UPDATE events SET leaf_hash = zeroblob(32) WHERE off = 10;",
			Want: outcome{exitFailed, 10, "stored leaf hash"}},
		{Target: "events.leaf_hash of the newest event", Script: "UPDATE events SET leaf_hash = zeroblob(32) WHERE off = 20;",
			Want: outcome{exitFailed, 20, "stored leaf hash"}, Note: "serve refuses to resume from it as well"},
		{Target: "checkpoints.size", Script: "UPDATE checkpoints SET size = 1000 WHERE size = 11;",
			Want: outcome{exitFailed, 999, "checkpoint signature invalid"}},
		{Target: "checkpoints.root", Script: "UPDATE checkpoints SET root = zeroblob(32) WHERE size = 11;",
			Want: outcome{exitFailed, 10, "checkpoint signature invalid"}},
		{Target: "checkpoints.time", Script: "UPDATE checkpoints SET time = time + 1 WHERE size = 11;",
			Want: outcome{exitFailed, 10, "checkpoint signature invalid"}},
		{Target: "checkpoints.key_id", Script: "UPDATE checkpoints SET key_id = '0000000000000000' WHERE size = 11;",
			Want: outcome{exitFailed, 10, "names key"}},
		{Target: "checkpoints.signature", Script: "UPDATE checkpoints SET signature = zeroblob(64) WHERE size = 11;",
			Want: outcome{exitFailed, 10, "checkpoint signature invalid"}},
		{Target: "checkpoints.frontier", Script: "UPDATE checkpoints SET frontier = zeroblob(96) WHERE size = 11;",
			Want: outcome{exitFailed, 10, "frontier stored with the checkpoint at size 11"}},
		{Target: "checkpoints.frontier of the newest checkpoint", Script: "UPDATE checkpoints SET frontier = zeroblob(32) WHERE size = 21;",
			Want: outcome{exitFailed, 20, "frontier stored with the checkpoint at size 21"}, Note: "serve refuses to resume from it as well"},
		{Target: "meta.log_id", Script: "UPDATE meta SET value = 'forged' WHERE key = 'log_id';",
			Want: outcome{exitFailed, 0, "checkpoint signature invalid"}, Note: "the log id is in every signed checkpoint"},
		{Target: "meta.format", Script: "UPDATE meta SET value = 'other' WHERE key = 'format';",
			Want: outcome{exitUsage, -1, `format "other"`}, Note: "a layout the tool does not know is unusable input"},
		{Target: "meta row log_id deleted", Script: "DELETE FROM meta WHERE key = 'log_id';",
			Want: outcome{exitUsage, -1, "read log id"}},
		{Target: "first event deleted", Script: "DELETE FROM events WHERE off = 0;",
			Want: outcome{exitFailed, 0, "expected offset 0, found 1"}},
		{Target: "middle event deleted", Script: "DELETE FROM events WHERE off = 10;",
			Want: outcome{exitFailed, 10, "expected offset 10, found 11"}},
		{Target: "last event deleted", Script: "DELETE FROM events WHERE off = 20;",
			Want: outcome{exitFailed, 20, "a signed checkpoint covers 21"}},
		{Target: "event inserted at the end", Script: "INSERT INTO events SELECT 21, 'forged', tenant, stream, 99, type, version, '', correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash FROM events WHERE off = 20;",
			Want: outcome{exitFailed, 21, "does not link to its predecessor"}},
		{Target: "event inserted in the middle", Script: "UPDATE events SET off = off + 1000 WHERE off >= 10; UPDATE events SET off = off - 999 WHERE off >= 1000; " +
			"INSERT INTO events SELECT 10, 'forged', tenant, stream, 99, type, version, '', correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash FROM events WHERE off = 11;",
			Want: outcome{exitFailed, 10, "tree head at size 11 " + evBroken}},
		{Target: "two events swapped", Script: "UPDATE events SET off = -1 WHERE off = 10; UPDATE events SET off = 10 WHERE off = 11; UPDATE events SET off = 11 WHERE off = -1;",
			Want: outcome{exitFailed, 10, "does not link to its predecessor"}},
		{Target: "newest checkpoint deleted", Script: "DELETE FROM checkpoints WHERE size = 21;",
			Want: outcome{exitFailed, 20, "covered by no signed checkpoint"}},
		{Target: "every checkpoint deleted", Script: "DELETE FROM checkpoints;",
			Want: outcome{exitFailed, 0, "21 events (offsets 0 to 20) are covered by no signed checkpoint"}},
		{Target: "event 0 rewritten, chain re-linked, every checkpoint deleted", How: "change event 0's subject, recompute prev_hash and leaf_hash of every event (no key needed), DELETE FROM checkpoints",
			Do: relinkWithoutCheckpoints, Want: outcome{exitFailed, 0, "21 events (offsets 0 to 20) are covered by no signed checkpoint"},
			Note: "a consistent chain is no proof without a signed head"},
		{Target: "middle checkpoint deleted", Script: "DELETE FROM checkpoints WHERE size = 11;",
			Want: outcome{exitOK, -1, "OK: 21 events intact"},
			Note: "harmless: every event stays covered by a later signed head, and every saved head stays consistent"},
		{Target: "checkpoint inserted (copy of the newest, other size)", Script: "INSERT INTO checkpoints SELECT 22, root, time, key_id, signature, frontier FROM checkpoints WHERE size = 21;",
			Want: outcome{exitFailed, 21, "checkpoint signature invalid"}},
		{Target: "newest events deleted, checkpoints kept", Script: "DELETE FROM events WHERE off >= 14;",
			Want: outcome{exitFailed, 14, "a signed checkpoint covers 15"}},
		{Target: "newest events deleted with their checkpoints (truncation)", Script: "DELETE FROM events WHERE off >= 14; DELETE FROM checkpoints WHERE size > 14;",
			Want: outcome{exitOK, -1, "OK: 14 events intact"}, NeedsHead: true, WithHead: truncated,
			Note: "what remains is a complete earlier state of the log; only a head saved outside the data directory shows it was longer"},
		{Target: "fork: history rewritten from offset 10 with the real key", How: "delete events from offset 10 and their checkpoints, then append 11 other events through sqlitelog with the gateway's signing key",
			Do: forkWithRealKey, Want: outcome{exitOK, -1, "OK: 21 events intact"}, NeedsHead: true, WithHead: forked,
			Note: "whoever holds the signing key can sign any history; a saved head pins the one that was published"},
		{Target: "re-key: forged log, gateway.pub replaced", How: "a new key pair; log.db rebuilt through sqlitelog with it; keys/gateway.pub overwritten",
			Do: rekey, Want: outcome{exitOK, -1, "warning: the public key"},
			Note: "undetectable with the key beside the log, hence the warning on stderr; the next rows pin the real key"},
		{Target: "re-key, --key-fingerprint pinned", How: "as above", Do: rekey, Args: []string{"--key-fingerprint", "{fp}"},
			Want: outcome{exitFailed, -1, "the key was replaced"}},
		{Target: "re-key, keys.fingerprint in the configuration", How: "as above", Do: rekey, Config: "keys: {fingerprint: \"{fp}\"}\n",
			Want: outcome{exitFailed, -1, "the key was replaced"}},
		{Target: "re-key, --key from the auditor's copy", How: "as above", Do: rekey, Args: []string{"--key", "{pub}"},
			Want: outcome{exitFailed, 0, "checkpoint signature invalid"}},
		{Target: "log.db deleted", How: "rm log.db", Do: func(t *testing.T, _ *tamperFixture, dir string) { os.Remove(filepath.Join(dir, "log.db")) },
			Want: outcome{exitUsage, -1, "no such file"}},
		{Target: "blob altered, verified without --blobs", How: "overwrite the raw message's file", Do: alterBlob("raw message"),
			Want: outcome{exitOK, -1, "OK: 21 events intact"}, Note: "only --blobs reads the blob store"},
	}
	for _, k := range blobKinds {
		rows = append(rows,
			tamperRow{Target: "blob altered: " + k.kind, How: "overwrite the file of message 1's " + k.kind, Do: alterBlob(k.kind),
				Args: []string{"--blobs"}, Want: outcome{exitFailed, k.offset, "does not match its hash"}},
			tamperRow{Target: "blob removed: " + k.kind, How: "delete the file of message 1's " + k.kind, Do: removeBlob(k.kind),
				Args: []string{"--blobs"}, Want: outcome{exitFailed, k.offset, "blob: not found"}})
	}
	return append(rows,
		tamperRow{Target: "timestamp token swapped for a valid token over other data, log re-signed with the real key",
			How: "put another token of the same TSA into the blob store, point message 1's TimestampApplied (its genTime and serial too) at it, re-append events 9 to 20 through sqlitelog with the gateway's signing key",
			Do:  swapTimestamp(false), Args: []string{"--blobs"},
			Want: outcome{exitFailed, 9, "but the event records the imprint"},
			Note: "the log and every blob are intact; only the token's imprint shows it timestamps something else"},
		tamperRow{Target: "as above, and the event's imprint changed to the token's",
			How: "as above, the event's imprint set to the other token's",
			Do:  swapTimestamp(true), Args: []string{"--blobs"},
			Want: outcome{exitFailed, 9, "the token timestamps other data"},
			Note: "the raw message, hashed with the token's algorithm, does not match the imprint"},
	)
}

func blobPath(dir string, r blob.Ref) string {
	return filepath.Join(dir, "blobs", "sha256", r.SHA256[:2], r.SHA256)
}

func alterBlob(kind string) func(*testing.T, *tamperFixture, string) {
	return func(t *testing.T, fx *tamperFixture, dir string) {
		p := blobPath(dir, fx.refs[kind])
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20 // one bit, same size
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func removeBlob(kind string) func(*testing.T, *tamperFixture, string) {
	return func(t *testing.T, fx *tamperFixture, dir string) {
		if err := os.Remove(blobPath(dir, fx.refs[kind])); err != nil {
			t.Fatal(err)
		}
	}
}

// forkWithRealKey rewrites the history from offset 10 with the gateway's
// own code and key: a log as valid as the original.
func forkWithRealKey(t *testing.T, _ *tamperFixture, dir string) {
	db := filepath.Join(dir, "log.db")
	sqlite3(t, db, "DELETE FROM events WHERE off >= 10; DELETE FROM checkpoints WHERE size > 10;")
	signer, err := keys.LoadSigner(filepath.Join(dir, "keys", "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	appendForged(t, db, signer, 11)
}

// swapTimestamp makes message 1's TimestampApplied (offset 9) refer to the
// fixture's token over other data, with that token's genTime and serial,
// and, when imprint is set, its imprint too; then it rewrites the history
// from offset 9 with the real key, so that the log is valid in itself and
// every blob matches its hash.
func swapTimestamp(imprint bool) func(*testing.T, *tamperFixture, string) {
	return func(t *testing.T, fx *tamperFixture, dir string) {
		ctx := context.Background()
		db := filepath.Join(dir, "log.db")
		l, err := sqlitelog.OpenReadOnly(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := l.Read(ctx, 0, 9, 1000)
		l.Close()
		if err != nil || len(evs) != fixtureEvents-9 || evs[0].Type != "TimestampApplied" {
			t.Fatalf("read events from offset 9: %d, %v", len(evs), err)
		}
		bs, err := blob.Open(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := bs.PutBytes(ctx, fx.otherToken.Raw)
		if err != nil {
			t.Fatal(err)
		}
		var ts gateway.TimestampApplied
		if err := json.Unmarshal(evs[0].Data, &ts); err != nil {
			t.Fatal(err)
		}
		info := fx.otherToken.Token.Info
		ts.Token, ts.GenTime, ts.Serial = ref, info.GenTime.UTC(), info.SerialNumber.String()
		if imprint {
			ts.Imprint = hex.EncodeToString(info.HashedMessage)
		}
		if evs[0].Data, err = json.Marshal(&ts); err != nil {
			t.Fatal(err)
		}
		sqlite3(t, db, "DELETE FROM events WHERE off >= 9; DELETE FROM checkpoints WHERE size > 9;")
		signer, err := keys.LoadSigner(filepath.Join(dir, "keys", "gateway.key"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: db, Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for i := range evs {
			e := evs[i]
			e.Position, e.StreamSeq, e.PrevHash, e.RecordedAt = eventstore.Position{}, 0, [32]byte{}, time.Time{}
			if _, err := w.Append(ctx, e); err != nil {
				t.Fatalf("re-append event %d: %v", 9+i, err)
			}
		}
	}
}

// relinkWithoutCheckpoints forges event 0 and repairs the hash chain after
// it, which needs no key; only the signed checkpoints could betray it, so
// they are deleted.
func relinkWithoutCheckpoints(t *testing.T, _ *tamperFixture, dir string) {
	db := filepath.Join(dir, "log.db")
	l, err := sqlitelog.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Read(context.Background(), 0, 0, 1000)
	l.Close()
	if err != nil || len(evs) != fixtureEvents {
		t.Fatalf("read %d events: %v", len(evs), err)
	}
	forged := strings.Replace(string(evs[0].Data), "Antrag 0", "Widerspruch 0", 1)
	if forged == string(evs[0].Data) {
		t.Fatal("event 0 has no subject to forge")
	}
	evs[0].Data = []byte(forged)
	script := "DELETE FROM checkpoints;\n"
	var prev [32]byte
	for i := range evs {
		evs[i].PrevHash = prev
		prev = integrity.LeafHash(&evs[i])
		script += fmt.Sprintf("UPDATE events SET data = X'%x', prev_hash = X'%x', leaf_hash = X'%x' WHERE off = %d;\n",
			evs[i].Data, evs[i].PrevHash, prev, i)
	}
	sqlite3(t, db, script)
}

// rekey replaces the log with a forgery signed by a new key, and the
// public key beside it.
func rekey(t *testing.T, _ *tamperFixture, dir string) {
	for _, f := range []string{"log.db", "log.db-wal", "log.db-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	other := t.TempDir()
	signer, err := keys.Generate(filepath.Join(other, "forger.key"), filepath.Join(other, "forger.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WritePublic(filepath.Join(dir, "keys", "gateway.pub"), signer.Public()); err != nil {
		t.Fatal(err)
	}
	appendForged(t, filepath.Join(dir, "log.db"), signer, fixtureEvents)
}

func appendForged(t *testing.T, db string, signer crypto.Signer, n int) {
	t.Helper()
	ctx := context.Background()
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: db, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	in := &gateway.Intake{Log: l}
	for i := range n {
		if _, err := in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint("forged-", i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: "forged"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTamperMatrix alters a real log with the real sqlite3 tool, as someone
// with access to the disk would, row by row, and holds log verify to each
// row's outcome. The table is also docs/tamper-matrix.md; the test fails
// when they differ (-update-matrix rewrites the document).
func TestTamperMatrix(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("the sqlite3 tool is required (test/setup.sh installs it):", err)
	}
	rows := tamperMatrix()
	checkMatrixDoc(t, rows)
	fx := buildTamperFixture(t)
	t.Run("intact", func(t *testing.T) {
		dir := fx.copy(t)
		code, out, errs := cli(t, dir, "log", "verify", "--blobs", "--key-fingerprint", fx.fp)
		if code != exitOK || !strings.Contains(out, fmt.Sprintf("OK: %d events intact", fixtureEvents)) || strings.Contains(errs, "warning") {
			t.Fatalf("intact fixture: exit %d\n%s%s", code, out, errs)
		}
	})
	for _, row := range rows {
		t.Run(row.Target, func(t *testing.T) {
			dir := fx.copy(t)
			var headArgs []string
			if row.NeedsHead {
				headArgs = []string{"--head", saveHead(t, dir, "head.note")}
			}
			if row.Script != "" {
				sqlite3(t, filepath.Join(dir, "log.db"), row.Script)
			}
			if row.Do != nil {
				row.Do(t, fx, dir)
			}
			if row.Config != "" {
				cfg := "data_dir: " + dir + "\n" + strings.ReplaceAll(row.Config, "{fp}", fx.fp)
				if err := os.WriteFile(filepath.Join(dir, "poststelle.yaml"), []byte(cfg), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"log", "verify"}
			for _, a := range row.Args {
				args = append(args, strings.NewReplacer("{fp}", fx.fp, "{pub}", fx.pubCopy).Replace(a))
			}
			checkOutcome(t, row.Want, dir, args)
			if headArgs != nil {
				checkOutcome(t, row.WithHead, dir, append(args, headArgs...))
			}
		})
	}
}

func checkOutcome(t *testing.T, want outcome, dir string, args []string) {
	t.Helper()
	code, out, errs := cli(t, dir, args...)
	ok := code == want.Exit && strings.Contains(out+errs, want.Reason)
	if want.Exit == exitFailed && want.Offset >= 0 {
		ok = ok && strings.Contains(out, fmt.Sprintf("BROKEN: partition 0, offset %d: ", want.Offset))
	}
	if !ok {
		t.Fatalf("%v: got exit %d, want %v\nstdout: %s\nstderr: %s", args, code, want, out, errs)
	}
}

const (
	matrixDoc   = "../../docs/tamper-matrix.md"
	matrixBegin = "<!-- BEGIN MATRIX: generated from TestTamperMatrix (cmd/poststelle/tamper_test.go); go test ./cmd/poststelle -run TestTamperMatrix -update-matrix -->\n"
	matrixEnd   = "<!-- END MATRIX -->\n"
)

// renderMatrix writes the table as Markdown.
func renderMatrix(rows []tamperRow) string {
	var b strings.Builder
	b.WriteString(matrixBegin)
	b.WriteString("| # | tampering | how | `log verify` flags | expected | with a saved head (`--head`) |\n|---|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for i, r := range rows {
		how := r.How
		if r.Script != "" {
			how = "`" + r.Script + "`"
		}
		args := strings.Join(r.Args, " ")
		if r.Config != "" {
			args = "configuration `" + strings.TrimSpace(r.Config) + "`"
		}
		head := ""
		if r.NeedsHead {
			head = r.WithHead.String()
		}
		want := r.Want.String()
		if r.Note != "" {
			want += " — " + r.Note
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, cell(r.Target), cell(how), cell(args), cell(want), cell(head))
	}
	b.WriteString(matrixEnd)
	return b.String()
}

func checkMatrixDoc(t *testing.T, rows []tamperRow) {
	t.Helper()
	doc, err := os.ReadFile(matrixDoc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, matrixBegin), strings.Index(s, matrixEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated section markers", matrixDoc)
	}
	got, want := s[i:j+len(matrixEnd)], renderMatrix(rows)
	if got == want {
		return
	}
	if *updateMatrix {
		if err := os.WriteFile(matrixDoc, []byte(s[:i]+want+s[j+len(matrixEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s differs from the test's table; run go test ./cmd/poststelle -run TestTamperMatrix -update-matrix", matrixDoc)
}
