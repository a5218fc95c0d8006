//go:build integration

package kafka_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	_ "modernc.org/sqlite" // the offsets database

	"github.com/poststelle/poststelle/eventstore/kafkalog"
	"github.com/poststelle/poststelle/eventstore/pubsub"
)

// TestWatermillConformance runs Watermill's pubsub/tests over the Watermill
// adapter of the event log (package pubsub) on the Kafka backend, with the
// features the adapter claims on the embedded backend. Its TestReconnect
// restarts the real broker (broker.sh restart) twice while 100 publishers
// write. It runs before the parallel subtests start, and Watermill runs the
// restarts in the background, so the test waits them out before it returns
// and releases the parallel subtests onto a broker that stays up.
func TestWatermillConformance(t *testing.T) {
	restart, err := filepath.Abs("broker.sh")
	if err != nil {
		t.Fatal(err)
	}
	// One log and one offsets database for the whole suite, living as long
	// as the top-level test: its constructors create publishers and
	// subscribers that must see each other, as gateway processes would.
	log, err := kafkalog.Open(context.Background(), config(t, uniqueTopic("watermill"), 4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	offsets, err := pubsub.NewSQLOffsets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		cfg := pubsub.SubscriberConfig{Group: group, Offsets: offsets}
		if group == "" {
			cfg.Offsets = nil
		}
		sub, err := pubsub.NewSubscriber(log, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return pubsub.NewPublisher(log), sub
	}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                   true,
		GuaranteedOrder:                  true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
		RestartServiceCommand:            []string{"bash", restart, "restart"},
	},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "") },
		newPubSub,
	)
	brokerScript(t, "wait-restarts")
}
