//go:build integration

package kafka_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/poststelle/poststelle/eventstore/kafkalog"
	"github.com/poststelle/poststelle/eventstore/pubsub"
)

// TestWatermillConformance runs Watermill's pubsub/tests over the Watermill
// adapter of the event log (package pubsub) on the Kafka backend, with the
// features the adapter claims on the embedded backend.
func TestWatermillConformance(t *testing.T) {
	var once sync.Once
	var log *kafkalog.Log
	var offsets *pubsub.SQLOffsets
	setup := func(t *testing.T) {
		once.Do(func() {
			dir, err := filepath.Abs(filepath.Join(t.TempDir(), ".."))
			if err != nil {
				t.Fatal(err)
			}
			log, err = kafkalog.Open(context.Background(), config(t, uniqueTopic("watermill"), 4))
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxOpenConns(1)
			if offsets, err = pubsub.NewSQLOffsets(context.Background(), db); err != nil {
				t.Fatal(err)
			}
		})
	}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		setup(t)
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
	},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "") },
		newPubSub,
	)
}
