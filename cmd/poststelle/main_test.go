package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/packblob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/assembly"
)

// testLog writes a log of n messages (each received and routed) with blobs,
// and returns the data directory.
func testLog(t *testing.T, n int) string {
	t.Helper()
	return testLogIn(t, n, func(dir string) (blobPutter, error) { return blob.Open(dir) })
}

type blobPutter interface {
	PutBytes(ctx context.Context, b []byte) (blob.Ref, error)
}

// testLogIn is testLog with the raw messages stored by the store open
// returns for the blob directory.
func testLogIn(t *testing.T, n int, open func(dir string) (blobPutter, error)) string {
	t.Helper()
	dir := t.TempDir()
	kp, pp := filepath.Join(dir, "keys", "gateway.key"), filepath.Join(dir, "keys", "gateway.pub")
	signer, err := keys.Generate(kp, pp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bs, err := open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := bs.(io.Closer); ok {
		defer c.Close()
	}
	in := &gateway.Intake{Log: l}
	for i := range n {
		ref, err := bs.PutBytes(ctx, []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d", i, i)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint(i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: fmt.Sprint(i), Raw: ref})
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := l.ReadStream(ctx, gateway.DefaultTenant, r.Stream)
		e, _ := gateway.Follow("route", &stored[0], 0, &gateway.MessageRouted{Offices: []string{"demo"}, DecidedBy: "rules"})
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cli runs the command in-process with a configuration pointing at dir.
func cli(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cfg := filepath.Join(dir, "poststelle.yaml")
	if _, err := os.Stat(cfg); err != nil {
		os.WriteFile(cfg, []byte("data_dir: "+dir+"\n"), 0o600)
	}
	if len(args) > 1 && args[0] == "log" {
		args = append(args[:2:2], append([]string{"--config", cfg}, args[2:]...)...)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func sqlite3(t *testing.T, db, script string) {
	t.Helper()
	cmd := exec.Command("sqlite3", db, script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", script, err, out)
	}
}

func TestLogVerifyIntact(t *testing.T) {
	dir := testLog(t, 50)
	code, out, errs := cli(t, dir, "log", "verify", "--blobs")
	if code != exitOK || !strings.Contains(out, "OK: 100 events intact") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

// TestLogVerifyCatchesTampering edits the database with the sqlite3 tool, as
// someone with access to the disk would, and expects every edit detected.
func TestLogVerifyCatchesTampering(t *testing.T) {
	cases := []struct {
		name   string
		script string
		want   string // a part of the BROKEN line
	}{
		{"byte changed in a payload", `UPDATE events SET data = CAST(replace(CAST(data AS TEXT), 'demo', 'dem0') AS BLOB) WHERE off = 11;`, "offset "},
		{"recorded time changed", `UPDATE events SET recorded_at = recorded_at + 1 WHERE off = 40;`, "offset "},
		{"row deleted", `DELETE FROM events WHERE off = 20;`, "offset 20"},
		{"last row deleted", `DELETE FROM events WHERE off = 99;`, "removed"},
		{"two rows swapped", `UPDATE events SET off = -1 WHERE off = 30; UPDATE events SET off = 30 WHERE off = 31; UPDATE events SET off = 31 WHERE off = -1;`, "offset 30"},
		{"row inserted", `INSERT INTO events SELECT 100, 'forged', tenant, stream, 99, type, version, '', correlation_id, causation_id, metadata, data, recorded_at, prev_hash, leaf_hash FROM events WHERE off = 99;`, "offset 100"},
		{"checkpoint altered", `UPDATE checkpoints SET root = zeroblob(32) WHERE size = 50;`, "signature"},
		{"checkpoints and tail removed", `DELETE FROM events WHERE off >= 90; DELETE FROM checkpoints WHERE size > 90;`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testLog(t, 50)
			sqlite3(t, filepath.Join(dir, "log.db"), tc.script)
			code, out, errs := cli(t, dir, "log", "verify")
			if tc.want == "" { // undetectable without an external head: say how much is covered
				if code != exitOK || !strings.Contains(out, "90 events") {
					t.Fatalf("exit %d\n%s%s", code, out, errs)
				}
				return
			}
			if code != exitFailed || !strings.Contains(out, "BROKEN") || !strings.Contains(out, tc.want) {
				t.Fatalf("tampering not reported: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
		})
	}
}

// TestLogVerifyBlobsInPacks: blobs in packs (the default store) are
// re-hashed by log verify --blobs, and a byte flipped in a pack is reported.
func TestLogVerifyBlobsInPacks(t *testing.T) {
	dir := testLogIn(t, 20, func(dir string) (blobPutter, error) {
		return packblob.Open(context.Background(), packblob.Config{Dir: dir})
	})
	packs, _ := filepath.Glob(filepath.Join(dir, "blobs", "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d packs, want the messages in one", len(packs))
	}
	code, out, errs := cli(t, dir, "log", "verify", "--blobs")
	if code != exitOK || !strings.Contains(out, "OK: 40 events intact") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	raw, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte("body 7"))
	if i < 0 {
		t.Fatal("message 7 not found in the pack")
	}
	raw[i+5] ^= 0x01
	if err := os.WriteFile(packs[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, dir, "log", "verify", "--blobs")
	if code != exitFailed || !strings.Contains(out, "does not match its hash") {
		t.Fatalf("byte flipped in a pack not reported: exit %d\n%s%s", code, out, errs)
	}
}

func TestLogVerifyCorruptFiles(t *testing.T) {
	t.Run("blob altered", func(t *testing.T) {
		dir := testLog(t, 5)
		var victim string
		filepath.WalkDir(filepath.Join(dir, "blobs", "sha256"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				victim = p
			}
			return nil
		})
		os.Chmod(victim, 0o600)
		os.WriteFile(victim, []byte("altered"), 0o600)
		code, out, errs := cli(t, dir, "log", "verify", "--blobs")
		if code != exitFailed || !strings.Contains(out, "does not match its hash") {
			t.Fatalf("altered blob not reported: exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("database page overwritten", func(t *testing.T) {
		dir := testLog(t, 200)
		db := filepath.Join(dir, "log.db")
		sqlite3(t, db, "PRAGMA wal_checkpoint(TRUNCATE);")
		raw, _ := os.ReadFile(db)
		for i := 8192; i < 8192+2048 && i < len(raw); i++ {
			raw[i] = 0xA5
		}
		os.WriteFile(db, raw, 0o600)
		code, out, errs := cli(t, dir, "log", "verify")
		if code == exitOK || !strings.Contains(out+errs, "log.db") && !strings.Contains(out, "BROKEN") {
			t.Fatalf("corrupted page not reported: exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		dir := testLog(t, 3)
		other := t.TempDir()
		keys.Generate(filepath.Join(other, "k"), filepath.Join(other, "k.pub"))
		code, out, _ := cli(t, dir, "log", "verify", "--key", filepath.Join(other, "k.pub"))
		if code != exitFailed || !strings.Contains(out, "signature") {
			t.Fatalf("foreign key accepted: exit %d %s", code, out)
		}
	})
}

func TestProveAndCheckProof(t *testing.T) {
	dir := testLog(t, 10)
	stream := gateway.StreamID(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, "3"))
	code, out, errs := cli(t, dir, "log", "prove", "--stream", stream)
	if code != exitOK {
		t.Fatalf("prove: exit %d %s", code, errs)
	}
	proofFile := filepath.Join(dir, "proof.json")
	os.WriteFile(proofFile, []byte(out), 0o600)
	pub := filepath.Join(dir, "keys", "gateway.pub")
	code, res, errs := cli(t, dir, "log", "check-proof", "--key", pub, proofFile)
	if code != exitOK || !strings.Contains(res, "OK: 2 events") {
		t.Fatalf("check-proof: exit %d %s %s", code, res, errs)
	}
	// A proof must not reveal other messages, and must fail when altered.
	if strings.Contains(out, `"subject":"4"`) {
		t.Fatal("proof reveals another message")
	}
	var sp map[string]any
	json.Unmarshal([]byte(out), &sp)
	ev := sp["events"].([]any)[0].(map[string]any)
	ev["offset"] = ev["offset"].(float64) + 2
	altered, _ := json.Marshal(sp)
	os.WriteFile(proofFile, altered, 0o600)
	if code, res, _ := cli(t, dir, "log", "check-proof", "--key", pub, proofFile); code != exitFailed {
		t.Fatalf("altered proof accepted: %d %s", code, res)
	}
}

func TestReplayFilters(t *testing.T) {
	dir := testLog(t, 4)
	code, out, _ := cli(t, dir, "log", "replay", "--type", "MessageRouted")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 4 {
		t.Fatalf("exit %d, %d lines", code, len(lines))
	}
	var e replayedEvent
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Type != "MessageRouted" || e.CausationID == "" {
		t.Fatalf("line %q: %v", lines[0], err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		"log_level: loud\n":                                            "log_level",
		"eventstore:\n  backend: mysql\n":                              "eventstore.backend",
		"eventstore:\n  backend: kafka\n":                              "eventstore.kafka.brokers",
		"eventstore: {backend: kafka, kafka: {brokers: [nohost]}}\n":   "eventstore.kafka.brokers[0]",
		"smtp:\n  listen: nowhere\n":                                   "smtp.listen",
		"unknown_field: 1\n":                                           "unknown_field",
		"data_dir: [1, 2]\n":                                           "line 1",
		"keys: {fingerprint: \"abc\"}\n":                               "keys.fingerprint",
		"demail:\n  providers: [{name: dmda.example}]\n":               "demail.providers[0].ca_file",
		"demail:\n  mailboxes: [{host: gw.example}]\n":                 "demail.providers",
		"demail:\n  providers: [{name: x, ca_file: ca.pem, pin: 1}]\n": "line 2",
		"demail:\n  providers: [{name: dmda.example, ca_file: ca.pem}]\n  smtp: {listen: \":2526\"}\n": "demail.smtp.cert_file",
	}
	for content, want := range cases {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(content), 0o600)
		_, err := loadConfig(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to name %s", content, err, want)
		}
	}
	if c, err := loadConfig(""); err != nil || assembly.ChannelSection[smtp.Config](c, channels.SMTPSection) == nil || !assembly.ChannelSection[smtp.Config](c, channels.SMTPSection).AcceptAll || c.DataDir != "data" {
		t.Fatalf("default configuration: %+v %v", c, err)
	}
	p := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(p, nil, 0o600)
	if _, err := loadConfig(p); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "poststelle serve") {
		t.Fatalf("help: %d", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != exitUsage {
		t.Fatalf("unknown command: %d", code)
	}
}

func TestKeysInitPrintsFingerprint(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "poststelle.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "init", "--config", cfg}, &out, &errb); code != exitOK {
		t.Fatalf("keys init: exit %d %s", code, errb.String())
	}
	pub, err := keys.LoadPublic(filepath.Join(dir, "keys", "gateway.pub"))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := keys.Fingerprint(pub)
	if !strings.Contains(out.String(), "fingerprint (record it apart from the data, pin it as keys.fingerprint): "+fp+"\n") {
		t.Fatalf("keys init does not print the fingerprint %s:\n%s", fp, out.String())
	}
	// serve refuses to sign with a key other than the pinned one.
	c, err := loadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Keys.Fingerprint = "sha256:" + strings.Repeat("0", 64)
	if g, err := assembly.Open(context.Background(), c, newLogger(io.Discard, "error")); err == nil {
		g.Close()
		t.Fatal("serve opened with a key other than the pinned one")
	} else if !strings.Contains(err.Error(), fp) {
		t.Fatalf("error does not name the key's fingerprint: %v", err)
	}
	c.Keys.Fingerprint = fp
	g, err := assembly.Open(context.Background(), c, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatalf("serve refused the pinned key: %v", err)
	}
	g.Close()
}

// TestLogVerifyKeySource: the key's fingerprint is printed, a key from the
// data directory is warned about unless pinned, a key given with --key is not.
func TestLogVerifyKeySource(t *testing.T) {
	dir := testLog(t, 2)
	pub, _ := keys.LoadPublic(filepath.Join(dir, "keys", "gateway.pub"))
	fp, _ := keys.Fingerprint(pub)
	code, out, errs := cli(t, dir, "log", "verify")
	if code != exitOK || !strings.Contains(out, "key: "+fp+" ") || !strings.Contains(errs, "warning: the public key") {
		t.Fatalf("unpinned key from the data directory: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, dir, "log", "verify", "--key-fingerprint", strings.ToUpper(strings.TrimPrefix(fp, "sha256:")))
	if code != exitUsage {
		t.Fatalf("fingerprint without its prefix: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, dir, "log", "verify", "--key-fingerprint", fp)
	if code != exitOK || strings.Contains(errs, "warning") {
		t.Fatalf("pinned key: exit %d\n%s%s", code, out, errs)
	}
	copyPath := filepath.Join(t.TempDir(), "gateway.pub")
	keys.WritePublic(copyPath, pub)
	code, out, errs = cli(t, dir, "log", "verify", "--key", copyPath)
	if code != exitOK || strings.Contains(errs, "warning") || !strings.Contains(out, "key: "+fp+" "+copyPath) {
		t.Fatalf("key given with --key: exit %d\n%s%s", code, out, errs)
	}
}
