package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// BenchmarkFold folds the events of 1,000 routed and delivered messages
// into the office inbox and the messages read model, one event per
// transaction (batch=1, how the runner folded before batches) and in
// batches; the ratio of the two is what batching gains on this machine.
//
//	go test -run '^$' -bench Fold ./gateway/projection
func BenchmarkFold(b *testing.B) {
	ctx := context.Background()
	env := gatewaytest.New(b)
	const messages = 1000
	var evs []eventstore.Event
	for i := range messages {
		rec, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint("m", i)),
			&gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: fmt.Sprintf("b%d@example.org", i)},
				Subject: fmt.Sprint("bench ", i), ReceivedAt: time.Unix(1e9+int64(i), 0).UTC()})
		if err != nil {
			b.Fatal(err)
		}
		routed, err := gateway.Follow("routing", &rec, 0, &gateway.MessageRouted{Offices: []string{"bench"}, Rule: "catch-all", DecidedBy: "rules"})
		if err != nil {
			b.Fatal(err)
		}
		delivered, err := gateway.Follow(offices.QueueDeliveryHandler, &routed, 0, &gateway.MessageDelivered{Office: "bench", Via: "queue"})
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, rec, routed, delivered)
	}
	if _, err := env.Log.Append(ctx, evs...); err != nil {
		b.Fatal(err)
	}
	// The state database as serve opens it (internal/assembly): commits
	// without fsync, so what is measured is the fold, not the disk.
	state, err := sql.Open("sqlite", "file:"+filepath.Join(env.Dir, "bench-state.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer state.Close()
	state.SetMaxOpenConns(1)
	projs := []projection.Projection{offices.Inbox{}, projection.Messages{}}
	for _, batch := range []int{1, projection.DefaultMaxBatch} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			r := &projection.Runner{Log: env.Log, DB: state, Registry: gateway.NewRegistry(), MaxBatch: batch}
			for b.Loop() {
				for _, p := range projs {
					if err := r.Rebuild(ctx, p); err != nil {
						b.Fatal(err)
					}
					if err := r.CatchUp(ctx, p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(evs)*len(projs)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
