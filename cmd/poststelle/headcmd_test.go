package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/assembly"
)

// addMessages records n more messages (two events each) in the log of dir,
// signed with dir's own key; tag makes their content differ between logs.
func addMessages(t *testing.T, dir, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	signer, err := keys.LoadSigner(filepath.Join(dir, "keys", "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	in := &gateway.Intake{Log: l}
	for i := range n {
		r, err := in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, tag+fmt.Sprint(i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: tag})
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := l.ReadStream(ctx, gateway.DefaultTenant, r.Stream)
		e, _ := gateway.Follow("route", &stored[0], 0, &gateway.MessageRouted{Offices: []string{"demo"}, DecidedBy: "rules"})
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// saveHead runs log head --out and returns the file.
func saveHead(t *testing.T, dir, name string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if code, out, errs := cli(t, dir, "log", "head", "--out", f); code != exitOK {
		t.Fatalf("log head: exit %d\n%s%s", code, out, errs)
	}
	return f
}

func TestLogHeadPrintsSignedNote(t *testing.T) {
	dir := testLog(t, 3)
	code, out, errs := cli(t, dir, "log", "head")
	lines := strings.Split(out, "\n")
	if code != exitOK || len(lines) != 6 || !strings.HasPrefix(lines[0], "poststelle/") || !strings.HasSuffix(lines[0], "/p0") ||
		lines[1] != "6" || len(lines[2]) != 44 || lines[3] != "" || !strings.HasPrefix(lines[4], "— "+lines[0]+" ") {
		t.Fatalf("exit %d\n%q\n%s", code, out, errs)
	}
}

func TestLogVerifyHead(t *testing.T) {
	dir := testLog(t, 50)
	head := saveHead(t, dir, "head.note")
	addMessages(t, dir, "later", 10)

	code, out, errs := cli(t, dir, "log", "verify", "--head", head)
	if code != exitOK || !strings.Contains(out, "extends it consistently (100 → 120 events)") || !strings.Contains(out, "OK: 120 events intact") {
		t.Fatalf("extension: exit %d\n%s%s", code, out, errs)
	}

	// Truncation with the real sqlite3 tool: the newest events and every
	// checkpoint covering them go, which log verify alone cannot see.
	sqlite3(t, filepath.Join(dir, "log.db"), `DELETE FROM events WHERE off >= 90; DELETE FROM checkpoints WHERE size > 90;`)
	if code, out, errs := cli(t, dir, "log", "verify"); code != exitOK {
		t.Fatalf("without the head the cut is invisible, expected exit 0: %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, dir, "log", "verify", "--head", head)
	if code != exitFailed || !strings.Contains(out, "BROKEN: head "+head) || !strings.Contains(out, "truncated: the head covers 100 events, the partition now has 90") {
		t.Fatalf("truncation: exit %d\n%s%s", code, out, errs)
	}
}

func TestLogVerifyHeadFork(t *testing.T) {
	dir := testLog(t, 20)
	fork := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", fork).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	os.Remove(filepath.Join(fork, "poststelle.yaml"))
	// Same log id, same key, same size from here on, different history.
	addMessages(t, dir, "original", 5)
	addMessages(t, fork, "forged", 5)
	head := saveHead(t, dir, "head.note")

	code, out, errs := cli(t, fork, "log", "verify", "--key", filepath.Join(dir, "keys", "gateway.pub"), "--head", head)
	if code != exitFailed || !strings.Contains(out, "rewritten or forked: its first 50 events") {
		t.Fatalf("fork: exit %d\n%s%s", code, out, errs)
	}
	// The original still extends its own head.
	if code, out, errs := cli(t, dir, "log", "verify", "--head", head); code != exitOK {
		t.Fatalf("original: exit %d\n%s%s", code, out, errs)
	}
}

func TestLogVerifyHeadOtherKey(t *testing.T) {
	dir, other := testLog(t, 5), testLog(t, 5)
	head := saveHead(t, other, "other.note")
	code, out, errs := cli(t, dir, "log", "verify", "--head", head)
	if code != exitFailed || !strings.Contains(out, "BROKEN: head "+head) || !strings.Contains(out, "not signed by the gateway key in use") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, dir, "log", "verify", "--head", filepath.Join(dir, "missing.note"))
	if code != exitUsage {
		t.Fatalf("missing head file: exit %d\n%s%s", code, out, errs)
	}
}

func TestLogVerifyHeadTimestamp(t *testing.T) {
	dir := testLog(t, 5)
	head := saveHead(t, dir, "head.note")
	_, url := tsptest.Start(t, tsptest.Normal)
	client := &tsp.Client{TSAs: []tsp.TSA{{URL: url}}}
	stamp := func(data []byte) []byte {
		d := sha256.Sum256(data)
		st, err := client.Timestamp(context.Background(), d[:])
		if err != nil {
			t.Fatal(err)
		}
		return witness.GrantedResponse(st.Raw)
	}
	note, _ := os.ReadFile(head)
	tsr := strings.TrimSuffix(head, ".note") + ".tsr"
	os.WriteFile(tsr, stamp(note), 0o644)
	code, out, errs := cli(t, dir, "log", "verify", "--head", head)
	if code != exitOK || !strings.Contains(out, "timestamped at ") || !strings.Contains(out, "Poststelle Test TSA") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	os.WriteFile(tsr, stamp([]byte("another head")), 0o644)
	code, out, errs = cli(t, dir, "log", "verify", "--head", head)
	if code != exitFailed || !strings.Contains(out, "does not verify for this head") {
		t.Fatalf("wrong token: exit %d\n%s%s", code, out, errs)
	}
}

// TestServePublishesHeads wires the witnesses from a configuration as serve
// does: a round writes a head to the directory, records HeadPublished, and
// the log verifies against the head written.
func TestServePublishesHeads(t *testing.T) {
	dir := testLog(t, 5)
	out := t.TempDir()
	_, tsaURL := tsptest.Start(t, tsptest.Normal)
	cfgFile := filepath.Join(dir, "poststelle.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("data_dir: %s\nwitnesses:\n  interval: 1h\n  tsa: %s\n  dir: [%s]\n", dir, tsaURL, out)), 0o600)
	cfg, err := loadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := assembly.Open(ctx, cfg, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := assembly.HeadPublisher(cfg, g, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := p.Publish(ctx)
	if err != nil || len(o.Accepted) != 1 || o.Publication.Stamp == nil {
		t.Fatalf("outcome %+v, %v", o, err)
	}
	evs, _ := g.Log().ReadStream(ctx, cfg.Tenant, gateway.HeadsStream)
	g.Close()
	if len(evs) != 1 || evs[0].Type != "HeadPublished" || !strings.Contains(string(evs[0].Data), `"size":10`) || !strings.Contains(string(evs[0].Data), `"tokenSha256"`) {
		t.Fatalf("recorded %+v", evs)
	}
	notes, _ := filepath.Glob(filepath.Join(out, "head-10-*.note"))
	if len(notes) != 1 {
		t.Fatalf("witness directory: %v", notes)
	}
	code, stdout, errs := cli(t, dir, "log", "verify", "--head", notes[0])
	if code != exitOK || !strings.Contains(stdout, "timestamped at") || !strings.Contains(stdout, "(10 → 11 events)") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
}

func TestWitnessConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"witnesses: {dir: []}\n":                           "witnesses: name at least one",
		"witnesses: {email: {to: [x]}}\n":                  "witnesses.email.to[0]",
		"witnesses: {http: [{url: 'http://a.example'}]}\n": "witnesses.http[0].url",
		"witnesses: {dir: [/tmp], colour: red}\n":          "colour",
	} {
		f := filepath.Join(dir, "c.yaml")
		os.WriteFile(f, []byte(body), 0o600)
		if _, err := loadConfig(f); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}
