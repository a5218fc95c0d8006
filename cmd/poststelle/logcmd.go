package main

import (
	"bufio"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

func keysGenerate(cfg *Config) (crypto.Signer, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Keys.SigningKey), 0o700); err != nil {
		return nil, err
	}
	return keys.Generate(cfg.Keys.SigningKey, cfg.Keys.PublicKey)
}

func runLog(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	switch sub {
	case "verify":
		return runLogVerify(ctx, args, stdout, stderr)
	case "replay":
		return runLogReplay(ctx, args, stdout, stderr)
	case "prove":
		return runLogProve(ctx, args, stdout, stderr)
	case "check-proof":
		return runLogCheckProof(args, stdout, stderr)
	case "head":
		return runLogHead(ctx, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "poststelle: unknown log command %q (verify, replay, prove, check-proof, head)\n", sub)
		return exitUsage
	}
}

// logFlags are shared by the commands that read a log.
type logFlags struct {
	config *string
	db     *string
	kafka  *string
	topic  *string
}

func addLogFlags(fs interface {
	String(name, value, usage string) *string
}, cfg *string) logFlags {
	return logFlags{config: cfg,
		db:    fs.String("db", "", "embedded log `file` to read (default: <data_dir>/log.db of the configuration)"),
		kafka: fs.String("kafka", "", "read the log from these Kafka `brokers` (comma-separated) instead"),
		topic: fs.String("topic", "poststelle.events", "Kafka `topic` of the log, with --kafka"),
	}
}

// openAudited opens a log read-only for auditing.
func (f logFlags) open(ctx context.Context) (integrity.AuditedLog, *Config, error) {
	cfg, err := loadConfig(*f.config)
	if err != nil {
		return nil, nil, err
	}
	if *f.kafka != "" || cfg.EventStore.Backend == "kafka" {
		brokers, topic := cfg.EventStore.Kafka.Brokers, cfg.EventStore.Kafka.Topic
		if *f.kafka != "" {
			brokers, topic = splitComma(*f.kafka), *f.topic
		}
		l, err := kafkalog.OpenReader(ctx, kafkalog.Config{Brokers: brokers, Topic: topic, Partitions: cfg.EventStore.Kafka.Partitions,
			CheckpointInterval: cfg.EventStore.Kafka.CheckpointInterval})
		return l, cfg, err
	}
	path := *f.db
	if path == "" {
		path = filepath.Join(cfg.DataDir, "log.db")
	}
	l, err := sqlitelog.OpenReadOnly(ctx, path)
	return l, cfg, err
}

func splitComma(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
}

func runLogVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("log verify", stderr)
	lf := addLogFlags(fs, cfgPath)
	keyPath := fs.String("key", "", "the gateway's public key `file` (default: the configured public key)")
	keyFP := fs.String("key-fingerprint", "", "fail unless the key has this `fingerprint` (sha256:<hex>, as keys init prints it; default: keys.fingerprint of the configuration)")
	checkBlobs := fs.Bool("blobs", false, "also re-hash every stored blob any event refers to, and check that each timestamp token covers its message")
	var heads headFiles
	fs.Var(&heads, "head", "fail unless the log consistently extends the signed head in this `file` (from log head or a witness; repeatable)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	l, cfg, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	var pub crypto.PublicKey
	var code int
	if kl, ok := l.(*kafkalog.Log); ok && *keyPath == "" && *cfgPath == "" {
		// A remote log has no data directory here: the demo default
		// ./data/keys/gateway.pub belongs to some other installation.
		pub, code = publishedKey(ctx, kl, *keyFP, stdout, stderr)
	} else {
		pub, code = verifyKey(cfg, *keyPath, *keyFP, stdout, stderr)
	}
	if pub == nil {
		return code
	}
	var each func(*eventstore.Event) error
	var blobs *blobChecker
	if *checkBlobs {
		blobs, err = newBlobChecker(ctx, cfg, l)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle:", err)
			return exitUsage
		}
		each = blobs.check
	}
	hv, code := loadHeads(heads, pub, l.LogID(), stdout, stderr)
	if code != exitOK {
		return code
	}
	each = hv.wrap(each)
	bar := newProgress(stderr, "verify", logSize(ctx, l))
	inner := each
	each = func(e *eventstore.Event) error {
		bar.add(1)
		if inner != nil {
			return inner(e)
		}
		return nil
	}
	start := time.Now()
	sum, err := integrity.VerifyLogWith(ctx, l, pub, integrity.VerifyOptions{Each: each})
	bar.finish()
	var prob *integrity.Problem
	switch {
	case errors.As(err, &prob):
		fmt.Fprintf(stdout, "BROKEN: partition %d, offset %d: %s\n", prob.Partition, prob.Offset, prob.Reason)
		return exitFailed
	case err != nil:
		fmt.Fprintln(stderr, "poststelle: verify:", err)
		return exitUsage
	}
	if !hv.report(stdout, int32(len(sum.Partitions))) {
		return exitFailed
	}
	if blobs != nil {
		if err := blobs.finish(stdout); err != nil {
			fmt.Fprintln(stdout, "BROKEN:", err)
			return exitFailed
		}
	}
	elapsed := time.Since(start)
	for i, p := range sum.Partitions {
		fmt.Fprintf(stdout, "partition %d: %d events, %d signed checkpoints, %d events after the newest checkpoint%s, head %x\n",
			i, p.Events, p.Checkpoints, p.Uncovered, tailNote(p), p.Root)
	}
	fmt.Fprintf(stdout, "OK: %d events intact, verified in %s (%.0f events/s)\n", sum.Events, elapsed.Round(time.Millisecond),
		float64(sum.Events)/max(elapsed.Seconds(), 1e-9))
	return exitOK
}

// tailNote says how old an uncovered tail is (allowed only on a log whose
// checkpoints trail its events, and only while young).
func tailNote(p integrity.Summary) string {
	if p.Uncovered == 0 {
		return ""
	}
	return fmt.Sprintf(" (oldest recorded %s, not yet signed)", p.OldestUncovered.Format(time.RFC3339Nano))
}

// verifyKey loads the public key log verify checks signatures with, prints
// its fingerprint, and holds it to the pinned fingerprint (--key-fingerprint,
// else keys.fingerprint). A key taken from the data directory beside the log
// proves nothing by itself, since whoever can rewrite the log can replace it:
// without a pin that is warned about. It returns nil and the exit code when
// verification must not go on.
func verifyKey(cfg *Config, path, pin string, stdout, stderr io.Writer) (crypto.PublicKey, int) {
	explicit := path != ""
	if !explicit {
		path = cfg.Keys.PublicKey
	}
	pub, err := keys.LoadPublic(path)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return nil, exitUsage
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return nil, exitUsage
	}
	fmt.Fprintf(stdout, "key: %s %s\n", fp, path)
	if pin == "" {
		pin = cfg.Keys.Fingerprint
	}
	if pin == "" {
		if !explicit && insideDir(cfg.DataDir, path) {
			fmt.Fprintf(stderr, "poststelle: warning: the public key %s comes from the data directory beside the log; "+
				"a forger who rewrote the log can replace it too. Compare its fingerprint %s with the one recorded at keys init, "+
				"or pin it with --key-fingerprint or keys.fingerprint.\n", path, fp)
		}
		return pub, exitOK
	}
	want, err := keys.ParseFingerprint(pin)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: --key-fingerprint:", err)
		return nil, exitUsage
	}
	if fp != want {
		fmt.Fprintf(stdout, "BROKEN: the public key %s has fingerprint %s, but %s is pinned: the key was replaced\n", path, fp, want)
		return nil, exitFailed
	}
	return pub, exitOK
}

// publishedKey takes the key the notaries announced on the checkpoints topic
// of a Kafka log, for log verify --kafka without --key or --config. Like a
// key beside the log it proves nothing alone, so it is held to the pin when
// one is given and warned about otherwise.
func publishedKey(ctx context.Context, l *kafkalog.Log, pin string, stdout, stderr io.Writer) (crypto.PublicKey, int) {
	found, err := l.PublishedKeys(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return nil, exitUsage
	}
	if len(found) != 1 {
		fmt.Fprintf(stderr, "poststelle: %d public keys are published beside the checkpoints of %s; name the gateway's key with --key\n", len(found), l.LogID())
		return nil, exitUsage
	}
	var pub crypto.PublicKey
	for _, k := range found {
		pub = k
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return nil, exitUsage
	}
	fmt.Fprintf(stdout, "key: %s published on %s\n", fp, l.LogID())
	if pin == "" {
		fmt.Fprintf(stderr, "poststelle: warning: the public key %s was published on the brokers beside the log; "+
			"whoever can rewrite the log can publish another. Pin it with --key-fingerprint or give the key with --key.\n", fp)
		return pub, exitOK
	}
	want, err := keys.ParseFingerprint(pin)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: --key-fingerprint:", err)
		return nil, exitUsage
	}
	if fp != want {
		fmt.Fprintf(stdout, "BROKEN: the published public key has fingerprint %s, but %s is pinned: the key was replaced\n", fp, want)
		return nil, exitFailed
	}
	return pub, exitOK
}

// insideDir reports whether path lies in dir.
func insideDir(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return true // cannot tell: warn
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// replayedEvent is the JSON line form of an event.
type replayedEvent struct {
	Partition     int32             `json:"partition"`
	Offset        int64             `json:"offset"`
	ID            string            `json:"id"`
	Tenant        string            `json:"tenant"`
	Stream        string            `json:"stream"`
	StreamSeq     int64             `json:"streamSeq"`
	Type          string            `json:"type"`
	Version       int               `json:"version"`
	MessageKey    string            `json:"messageKey,omitempty"`
	CorrelationID string            `json:"correlationId,omitempty"`
	CausationID   string            `json:"causationId,omitempty"`
	RecordedAt    time.Time         `json:"recordedAt"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Data          json.RawMessage   `json:"data"`
}

func runLogReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("log replay", stderr)
	lf := addLogFlags(fs, cfgPath)
	from := fs.Int64("from", 0, "start at this `offset` (in every partition)")
	since := fs.String("since", "", "only events recorded at or after this RFC 3339 `time`")
	typ := fs.String("type", "", "only events of this `type`")
	stream := fs.String("stream", "", "only the events of this `stream`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	var sinceT time.Time
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle: --since:", err)
			return exitUsage
		}
		sinceT = t
	}
	l, _, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	parts, err := l.Partitions(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	var n, seen int64
	bar := newProgress(stderr, "replay", logSize(ctx, l))
	for p := range parts {
		for off := *from; ; {
			evs, err := l.Read(ctx, p, off, 2000)
			if err != nil {
				fmt.Fprintf(stderr, "poststelle: read partition %d at offset %d: %v\n", p, off, err)
				return exitFailed
			}
			if len(evs) == 0 {
				break
			}
			for i := range evs {
				e := &evs[i]
				seen++
				if (*typ != "" && e.Type != *typ) || (*stream != "" && e.Stream != *stream) || e.RecordedAt.Before(sinceT) {
					continue
				}
				if err := enc.Encode(toReplayed(e)); err != nil {
					return exitFailed
				}
				n++
			}
			off = evs[len(evs)-1].Position.Offset + 1
			bar.add(int64(len(evs)))
		}
	}
	bar.finish()
	fmt.Fprintf(stderr, "replayed %d of %d events\n", n, seen)
	return exitOK
}

// logSize is the number of events in every partition, 0 when it cannot
// be told (the bar then shows counts and rate only).
func logSize(ctx context.Context, l eventstore.Log) int64 {
	parts, err := l.Partitions(ctx)
	if err != nil {
		return 0
	}
	var total int64
	for p := range parts {
		end, err := l.End(ctx, p)
		if err != nil {
			return 0
		}
		total += end
	}
	return total
}

func toReplayed(e *eventstore.Event) replayedEvent {
	data := json.RawMessage(e.Data)
	if !json.Valid(e.Data) {
		data, _ = json.Marshal(e.Data) // base64 for non-JSON payloads
	}
	return replayedEvent{Partition: e.Position.Partition, Offset: e.Position.Offset, ID: e.ID, Tenant: e.Tenant,
		Stream: e.Stream, StreamSeq: e.StreamSeq, Type: e.Type, Version: e.Version, MessageKey: e.MessageKey,
		CorrelationID: e.CorrelationID, CausationID: e.CausationID, RecordedAt: e.RecordedAt, Metadata: e.Metadata, Data: data}
}

func runLogProve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("log prove", stderr)
	lf := addLogFlags(fs, cfgPath)
	stream := fs.String("stream", "", "the message's `stream` id (see log replay)")
	tenant := fs.String("tenant", gateway.DefaultTenant, "the stream's `tenant`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *stream == "" {
		fmt.Fprintln(stderr, "poststelle: log prove needs --stream")
		return exitUsage
	}
	l, _, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	proof, err := integrity.ProveStream(ctx, l, *tenant, *stream)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(proof); err != nil {
		return exitFailed
	}
	return exitOK
}

func runLogCheckProof(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("log check-proof", stderr)
	keyPath := fs.String("key", "", "the gateway's public key `file`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: poststelle log check-proof --key PUBLIC-KEY PROOF.json")
		return exitUsage
	}
	pub, err := keys.LoadPublic(*keyPath)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil || len(raw) > 64<<20 {
		fmt.Fprintln(stderr, "poststelle: read proof:", err)
		return exitUsage
	}
	var sp integrity.StreamProof
	if err := json.Unmarshal(raw, &sp); err != nil {
		fmt.Fprintln(stderr, "poststelle: parse proof:", err)
		return exitUsage
	}
	leaves, err := integrity.CheckStreamProof(pub, &sp)
	if err != nil {
		fmt.Fprintln(stdout, "INVALID:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "OK: %d events of the message are in log %s\n", len(leaves), sp.LogID)
	return exitOK
}
