//go:build integration

// Package kafka_test runs the event log against a real Apache Kafka broker
// started by broker.sh (see run.sh): the log backend's conformance suite and
// Watermill's pub/sub suite over it (library-level), and the real
// `poststelle serve` binary on the broker: a broker restart in the middle of
// a stream of SMTP deliveries, and scale-out over three serve processes.
package kafka_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/conformance"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
	"github.com/poststelle/poststelle/internal/servetest"
)

// testKey is fixed so that child processes sign with the same key.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func brokers(tb testing.TB) []string {
	v := os.Getenv("KAFKA_BROKERS")
	if v == "" {
		if tb != nil {
			tb.Fatal("KAFKA_BROKERS is not set: run test/integration/kafka/run.sh, or broker.sh start and KAFKA_BROKERS=127.0.0.1:19092")
		}
		fmt.Fprintln(os.Stderr, "KAFKA_BROKERS is not set")
		os.Exit(2)
	}
	return strings.Split(v, ",")
}

func config(tb testing.TB, topic string, partitions int32) kafkalog.Config {
	level := slog.LevelError
	if os.Getenv("KAFKALOG_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return kafkalog.Config{
		Brokers:            brokers(tb),
		Topic:              topic,
		Partitions:         partitions,
		Signer:             testKey,
		CheckpointInterval: 200 * time.Millisecond,
		SessionTimeout:     6 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
}

func backend() conformance.Backend {
	return conformance.Backend{
		Name:      "kafka-broker",
		PublicKey: testKey.Public(),
		Open: func(ctx context.Context, _ string, name string) (eventstore.Log, error) {
			return kafkalog.Open(ctx, config(nil, name, 4))
		},
	}
}

// bin is the poststelle binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	conformance.MainChild(backend())
	dir, err := os.MkdirTemp("", "poststelle-kafka-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = servetest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	brokers(t)
	conformance.Run(t, backend())
}

func uniqueTopic(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}
