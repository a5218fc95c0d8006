package pubsub_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
)

// shared is one log and offsets database for the whole Watermill suite: its
// constructors create several publishers and subscribers that must see each
// other's messages, as separate gateway processes on one log would.
type shared struct {
	dir     string // the top-level test's directory: subtests' directories vanish when they end
	once    sync.Once
	log     *sqlitelog.Log
	offsets *pubsub.SQLOffsets
}

func (s *shared) init(t *testing.T) {
	s.once.Do(func() {
		dir := s.dir
		var err error
		key := ed25519.NewKeyFromSeed(make([]byte, 32))
		s.log, err = sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: key})
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if s.offsets, err = pubsub.NewSQLOffsets(context.Background(), db); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWatermillConformance(t *testing.T) { runWatermill(t, 1) }

// TestWatermillConformanceInFlight runs the suite with several events in
// flight: Watermill's messages share one stream per topic, so its ordering
// promises must still hold.
func TestWatermillConformanceInFlight(t *testing.T) { runWatermill(t, 8) }

func runWatermill(t *testing.T, inFlight int) {
	s := shared{dir: t.TempDir()}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		s.init(t)
		cfg := pubsub.SubscriberConfig{Group: group, Offsets: s.offsets, MaxInFlight: inFlight}
		if group == "" {
			cfg.Offsets = nil
		}
		sub, err := pubsub.NewSubscriber(s.log, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return pubsub.NewPublisher(s.log), sub
	}
	// No RestartServiceCommand: the embedded log has no service to restart,
	// so TestReconnect skips here; test/integration/kafka runs it against a
	// real broker that it restarts.
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
