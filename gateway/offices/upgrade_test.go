package offices

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// recordRouted records a message routed to offs and the deliveries the
// queue delivery appended before MessageQueued existed (same handler name,
// same derived ids).
func recordRouted(t *testing.T, env *gatewaytest.Env, i int, offs []string, deliveries bool) {
	t.Helper()
	ctx := context.Background()
	rec, err := (&gateway.Intake{Log: env.Log}).Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, fmt.Sprint("old-", i)),
		&gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: fmt.Sprint("m", i), From: gateway.Address{Address: "a@example.org"},
			ReceivedAt: time.Unix(1e9+int64(i), 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := env.Log.ReadStream(ctx, gateway.DefaultTenant, rec.Stream)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %v", evs, err)
	}
	routed, err := gateway.Follow("routing", &evs[0], 0, &gateway.MessageRouted{Offices: offs, Rule: "r", DecidedBy: "rules"})
	if err != nil {
		t.Fatal(err)
	}
	out := []eventstore.Event{routed}
	for n, o := range offs {
		if !deliveries {
			break
		}
		d, err := gateway.Follow(QueueDeliveryHandler, &routed, n, &gateway.MessageDelivered{Office: o, Via: "queue"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if _, err := env.Log.Append(ctx, out...); err != nil {
		t.Fatal(err)
	}
}

// countBy counts the events of a type by message stream and office.
func countBy(t *testing.T, env *gatewaytest.Env, typ string) map[string]int {
	t.Helper()
	evs, err := env.Log.Read(context.Background(), 0, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	n := map[string]int{}
	for i := range evs {
		if evs[i].Type != typ {
			continue
		}
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		switch m := p.(type) {
		case *gateway.MessageQueued:
			n[m.Stream+" "+m.Office]++
		case *gateway.MessageDelivered:
			n[evs[i].Stream+" "+m.Office]++
		}
	}
	return n
}

func runQueueDelivery(t *testing.T, env *gatewaytest.Env, until func() bool) {
	t.Helper()
	p, err := pipeline.New(pipeline.Config{Log: env.Log, Offsets: env.Offsets, Registry: gateway.NewRegistry()}, QueueDelivery())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); !until(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("queue delivery did not finish in 30 s")
		}
	}
}

// TestQueueDeliveryRequeuesAnUpgradedLog checks the upgrade of a log
// written before MessageQueued: its messages were routed and delivered, the
// queue delivery's old group is at the end, and no queue entries exist.
// The queue delivery (in its new group) appends each missing entry once,
// also when it runs again from the start (a second gateway, a lost
// position), appends no second delivery, and the queued inbox then lists
// every message.
func TestQueueDeliveryRequeuesAnUpgradedLog(t *testing.T) {
	ctx := context.Background()
	env := gatewaytest.New(t)
	const old = 6
	for i := range old {
		offs := []string{"bauamt"}
		if i%3 == 0 {
			offs = append(offs, "kaemmerei")
		}
		recordRouted(t, env, i, offs, true)
	}
	end, err := env.Log.End(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Offsets.Save(ctx, "pipeline/"+QueueDeliveryHandler+"/MessageRouted", 0, end); err != nil {
		t.Fatal(err)
	}
	const entries = old + 2 // two messages also went to kaemmerei
	if n := len(countBy(t, env, "MessageQueued")); n != 0 {
		t.Fatalf("the old log has %d queue entries", n)
	}
	queuedOnce := func(want int) func() bool {
		return func() bool {
			q := countBy(t, env, "MessageQueued")
			for k, n := range q {
				if n != 1 {
					t.Fatalf("%s queued %d times", k, n)
				}
			}
			return len(q) == want
		}
	}
	runQueueDelivery(t, env, queuedOnce(entries))

	// Once more from the start, and a message routed after the upgrade
	// to know when the second run has gone through the whole log.
	if _, err := env.State.ExecContext(ctx, `UPDATE subscription_offsets SET next = 0 WHERE grp = ?`, "pipeline/"+QueueDeliveryGroup+"/MessageRouted"); err != nil {
		t.Fatal(err)
	}
	if n, err := env.Offsets.Load(ctx, "pipeline/"+QueueDeliveryGroup+"/MessageRouted", 0); err != nil || n != 0 {
		t.Fatalf("the new group's position is %d (%v), want 0", n, err)
	}
	recordRouted(t, env, old, []string{"bauamt"}, false)
	runQueueDelivery(t, env, queuedOnce(entries+1))
	for k, n := range countBy(t, env, "MessageDelivered") {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	if n := len(countBy(t, env, "MessageDelivered")); n != entries+1 {
		t.Errorf("%d deliveries, want %d", n, entries+1)
	}

	in := Inbox{QueuedOrder: true}
	r := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := r.CatchUp(ctx, in); err != nil {
		t.Fatal(err)
	}
	for office, want := range map[string]int{"bauamt": old + 1, "kaemmerei": 2} {
		list, err := ListInbox(ctx, env.State, office, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != want {
			t.Errorf("%s lists %d messages, want %d", office, len(list), want)
		}
		for i, m := range list {
			if m.Seq != int64(i+1) {
				t.Errorf("%s: message %d has seq %d", office, i, m.Seq)
			}
		}
	}
}
