package kafkalog

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/conformance"
)

// testKey is fixed so that the kill test's child process signs with the same key.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// envBrokers points the tests at a real cluster; without it they start an
// in-process kfake cluster and pass its address to the kill test's child.
const envBrokers = "KAFKA_BROKERS"

func brokers() []string { return strings.Split(os.Getenv(envBrokers), ",") }

func testConfig(topic string) Config {
	return Config{
		Brokers:            brokers(),
		Topic:              topic,
		Partitions:         4,
		Signer:             testKey,
		CheckpointInterval: 100 * time.Millisecond,
		SessionTimeout:     6 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func backend() conformance.Backend {
	return conformance.Backend{
		Name:      "kafka",
		PublicKey: testKey.Public(),
		Open: func(ctx context.Context, _ string, name string) (eventstore.Log, error) {
			return Open(ctx, testConfig(name))
		},
	}
}

func TestMain(m *testing.M) {
	conformance.MainChild(backend())
	if os.Getenv(envBrokers) == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
		if err != nil {
			fmt.Fprintln(os.Stderr, "start kfake:", err)
			os.Exit(2)
		}
		os.Setenv(envBrokers, strings.Join(c.ListenAddrs(), ","))
		code := m.Run()
		c.Close()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	conformance.Run(t, backend())
}

// TestAssignments: a subscriber's group shows the partitions it holds while
// it runs, and disappears when it ends.
func TestAssignments(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, testConfig(fmt.Sprintf("assign-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.Subscribe(sctx, "metrics-test", func(context.Context, int32) (int64, error) { return 0, nil },
			func(context.Context, eventstore.Event) error { return nil })
	}()
	group := l.cfg.Group + ".metrics-test"
	deadline := time.Now().Add(30 * time.Second)
	for len(l.Assignments()[group]) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("assignments %v, want all 4 partitions for %s", l.Assignments(), group)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if a, ok := l.Assignments()[group]; ok {
		t.Fatalf("group still listed after the subscriber ended: %v", a)
	}
}
