package pubsub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// TestInFlightKeepsStreamOrder hands events of 10 streams to a slow,
// concurrent consumer: streams must overlap, each stream must stay in order,
// and the saved position must reach the end only when everything is acked.
func TestInFlightKeepsStreamOrder(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	const total, streams = 300, 10
	for i := range total {
		e := eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: fmt.Sprint("s", i%streams), Type: "Work", Version: 1, Data: []byte(fmt.Sprint(i))}
		if _, err := g.Log.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := pubsub.NewSubscriber(g.Log, pubsub.SubscriberConfig{Group: "g", Offsets: g.Offsets, MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs, err := sub.Subscribe(cctx, "Work")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	last := map[string]int{}
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range total {
		m := <-msgs
		wg.Go(func() {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			var i int
			fmt.Sscan(string(m.Payload), &i)
			stream := fmt.Sprint("s", i%streams)
			mu.Lock()
			if prev, ok := last[stream]; ok && i != prev+streams {
				t.Errorf("stream %s: %d handed over after %d", stream, i, prev)
			}
			last[stream] = i
			mu.Unlock()
			running.Add(-1)
			m.Ack()
		})
	}
	wg.Wait()
	if peak.Load() < 2 {
		t.Fatalf("at most %d events were in flight; the window did not open", peak.Load())
	}
	if peak.Load() > 8 {
		t.Fatalf("%d events in flight, more than the window of 8", peak.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		off, err := g.Offsets.Load(ctx, "g/Work", 0)
		if err != nil {
			t.Fatal(err)
		}
		if off == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("saved position %d, want %d after every ack", off, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInFlightNeverSavesPastUnacked holds back the ack of an early event:
// the saved position must stay at it however many later events are acked.
func TestInFlightNeverSavesPastUnacked(t *testing.T) {
	g := gatewaytest.New(t)
	ctx := context.Background()
	for i := range 20 {
		e := eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: fmt.Sprint("s", i), Type: "Work", Version: 1}
		if _, err := g.Log.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	sub, _ := pubsub.NewSubscriber(g.Log, pubsub.SubscriberConfig{Group: "g", Offsets: g.Offsets, MaxInFlight: 4})
	defer sub.Close()
	msgs, _ := sub.Subscribe(ctx, "Work")
	// Ack everything but offset 0 (event e0): the window keeps moving
	// past the held event, four at a time.
	var held *message.Message
	for range 20 {
		m := <-msgs
		if m.UUID == "e0" {
			held = m
			continue
		}
		m.Ack()
	}
	time.Sleep(50 * time.Millisecond)
	if off, _ := g.Offsets.Load(ctx, "g/Work", 0); off != 0 {
		t.Fatalf("saved position %d while offset 0 is unacknowledged", off)
	}
	held.Ack()
	deadline := time.Now().Add(5 * time.Second)
	for off, _ := g.Offsets.Load(ctx, "g/Work", 0); off != 20; off, _ = g.Offsets.Load(ctx, "g/Work", 0) {
		if time.Now().After(deadline) {
			t.Fatalf("saved position %d, want 20", off)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
