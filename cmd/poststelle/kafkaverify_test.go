package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
)

// TestLogVerifyKafkaWithoutKey checks that log verify --kafka without --key
// and --config verifies with the key the notary published on the brokers
// (it used to look for ./data/keys/gateway.pub and exit 2), warns that the
// key is unpinned, and holds it to --key-fingerprint.
func TestLogVerifyKafkaWithoutKey(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	signer := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	addr := strings.Join(c.ListenAddrs(), ",")
	l, err := kafkalog.Open(ctx, kafkalog.Config{Brokers: c.ListenAddrs(), Topic: "verify", Partitions: 2, Signer: signer,
		CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := l.Append(ctx, eventstore.Event{ID: "e" + string(rune('a'+i)), Tenant: "t", Stream: "s" + string(rune('a'+i)), Type: "Note", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // no ./data here
	fp, _ := keys.Fingerprint(signer.Public())
	other := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 1))
	wrong, _ := keys.Fingerprint(other.Public())
	for _, tc := range []struct {
		name, pin, warn, out string
		code                 int
	}{
		{name: "unpinned", code: exitOK, out: "OK: 5 events intact", warn: "published on the brokers"},
		{name: "pinned", pin: fp, code: exitOK, out: "OK: 5 events intact"},
		{name: "wrong pin", pin: wrong, code: exitFailed, out: "BROKEN: the published public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"log", "verify", "--kafka", addr, "--topic", "verify"}
			if tc.pin != "" {
				args = append(args, "--key-fingerprint", tc.pin)
			}
			var out, errb bytes.Buffer
			code := run(ctx, args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			if strings.Contains(errb.String(), "gateway.pub") {
				t.Errorf("looked for a local key: %s", errb.String())
			}
			if got := strings.Contains(errb.String(), "warning"); got != (tc.warn != "") {
				t.Errorf("warning shown %v, want %v: %s", got, tc.warn != "", errb.String())
			}
		})
	}
}
