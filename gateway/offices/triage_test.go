package offices

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

func triageHandler(t *testing.T, topic string) pipeline.Handler {
	t.Helper()
	for _, h := range TriageQueue() {
		if h.Topic == topic {
			return h
		}
	}
	t.Fatalf("no triage queue handler for %s", topic)
	return pipeline.Handler{}
}

// triageEvents makes three messages, each in its own partition, that go to
// triage (m1 and m3 unrouted, m2 failing a handler and later failing
// routing too), and the triage stream's entries the handlers append for
// them, in the order m2, m3, m1, m2 (the reopening), which is not the
// messages' order.
func triageEvents(t *testing.T) (msgs [][]eventstore.Event, triage []eventstore.Event) {
	t.Helper()
	reg := gateway.NewRegistry()
	causes := map[string][]*eventstore.Event{}
	for i, subject := range []string{"m1", "m2", "m3"} {
		part := int32(i + 1)
		rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, subject), &gateway.MessageReceived{
			Channel: gateway.ChannelSMTP, Subject: subject, From: gateway.Address{Address: "buerger@example.org"},
			ReceivedAt: time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		rec.StreamSeq, rec.Position = 1, eventstore.Position{Partition: part}
		stream := []eventstore.Event{rec}
		var failures []gateway.Payload
		if subject == "m2" {
			failures = append(failures, &gateway.ProcessingFailed{Handler: "verification", EventID: rec.ID, Type: rec.Type, Attempts: 6, Error: "boom"})
		}
		failures = append(failures, &gateway.RoutingFailed{Reason: "no rule matched " + subject})
		for n, p := range failures {
			e, err := gateway.Follow("routing", &rec, n, p)
			if err != nil {
				t.Fatal(err)
			}
			e.StreamSeq, e.Position = int64(n+2), eventstore.Position{Partition: part, Offset: int64(n + 1)}
			stream = append(stream, e)
		}
		msgs = append(msgs, stream)
		for j := 1; j < len(stream); j++ {
			causes[subject] = append(causes[subject], &msgs[i][j])
		}
	}
	for n, c := range []*eventstore.Event{causes["m2"][0], causes["m3"][0], causes["m1"][0], causes["m2"][1]} {
		p, err := reg.Decode(c)
		if err != nil {
			t.Fatal(err)
		}
		h := triageHandler(t, c.Type)
		out, err := h.Handle(context.Background(), c, p)
		if err != nil || len(out) != 1 {
			t.Fatalf("%s on %s: %v %v", h.Name, c.Type, out, err)
		}
		e, err := gateway.Follow(h.Name, c, 0, out[0])
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream != gateway.TriageStream {
			t.Fatalf("triage entry in stream %q", e.Stream)
		}
		e.StreamSeq, e.Position = int64(n+1), eventstore.Position{Partition: 0, Offset: int64(n)}
		triage = append(triage, e)
	}
	return msgs, triage
}

// TestTriageOrderIsTheLogsOrder checks that with QueuedOrder the triage
// queue's seq comes from the triage stream: every interleaving of the
// partitions (and a rebuild, which is one more) gives each item the same
// seq, the first place of its stream; an item is listed only once its place
// is folded.
func TestTriageOrderIsTheLogsOrder(t *testing.T) {
	msgs, triage := triageEvents(t)
	flat := func(parts ...[]eventstore.Event) (out []eventstore.Event) {
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	orders := map[string][]eventstore.Event{
		"messages first": flat(msgs[0], msgs[1], msgs[2], triage),
		"triage first":   flat(triage, msgs[2], msgs[1], msgs[0]),
		"interleaved": {msgs[1][0], triage[0], msgs[0][0], msgs[1][1], triage[3], triage[1], msgs[2][0],
			msgs[1][2], msgs[2][1], triage[2], msgs[0][1]},
		"reopening first": flat(msgs[0], msgs[2], []eventstore.Event{triage[3]}, msgs[1], triage[:3]),
	}
	in := Inbox{QueuedOrder: true}
	ctx := context.Background()
	var want string
	for name, evs := range orders {
		t.Run(name, func(t *testing.T) {
			db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
			setupInbox(t, db, in)
			applyAll(t, db, in, evs)
			items, err := ListTriage(ctx, db, 0, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, fmt.Sprintf("%d %s %s %s", it.Seq, it.Received.Subject, it.Kind, it.State))
			}
			if exp := []string{"1 m2 routing open", "2 m3 routing open", "3 m1 routing open"}; !reflect.DeepEqual(got, exp) {
				t.Fatalf("triage %q, want %q", got, exp)
			}
			d, err := Dump(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if want == "" {
				want = d
			} else if d != want {
				t.Fatalf("dump differs:\n%s\nwant:\n%s", d, want)
			}
		})
	}
	t.Run("item without its place", func(t *testing.T) {
		db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
		setupInbox(t, db, in)
		applyAll(t, db, in, flat(msgs[0], msgs[1], triage[:1]))
		items, _ := ListTriage(ctx, db, 0, true, 0)
		if len(items) != 1 || items[0].Received.Subject != "m2" || items[0].Seq != 1 {
			t.Fatalf("listed before its place: %+v", items)
		}
		it, err := GetTriage(ctx, db, msgs[0][0].Stream)
		if err != nil || it.Seq != 0 || it.State != "open" {
			t.Fatalf("item without a place: %+v, %v", it, err)
		}
	})
}

// TestTriageQueueHandlers checks which events give a triage place: the ones
// the inbox opens items for, and no others.
func TestTriageQueueHandlers(t *testing.T) {
	cause := &eventstore.Event{ID: "evt-1", Stream: "m-1"}
	cases := []struct {
		topic string
		p     gateway.Payload
		kind  string
	}{
		{"RoutingFailed", &gateway.RoutingFailed{Reason: "x"}, "routing"},
		{"ProcessingFailed", &gateway.ProcessingFailed{Handler: "h"}, "processing"},
		{"WebhookFailed", &gateway.WebhookFailed{Office: "o"}, "webhook"},
		{"ReplyFailed", &gateway.ReplyFailed{ReplyID: "r", Permanent: true}, "reply"},
		{"ReplyFailed", &gateway.ReplyFailed{ReplyID: "r"}, ""},
		{"DeliveryEvidenceRecorded", &gateway.DeliveryEvidenceRecorded{Unlinked: "no match"}, "evidence"},
		{"DeliveryEvidenceRecorded", &gateway.DeliveryEvidenceRecorded{}, ""},
		{"EEBOverdue", &gateway.EEBOverdue{}, TriageEEBOverdue},
	}
	if n := len(TriageQueue()); n != 6 {
		t.Fatalf("%d handlers, want one per opening event type (6)", n)
	}
	for _, c := range cases {
		out, err := triageHandler(t, c.topic).Handle(context.Background(), cause, c.p)
		if err != nil {
			t.Fatal(err)
		}
		if c.kind == "" {
			if len(out) != 0 {
				t.Errorf("%s %+v gave %v, want nothing", c.topic, c.p, out)
			}
			continue
		}
		want := &gateway.TriageQueued{Stream: "m-1", Cause: "evt-1", Kind: c.kind}
		if len(out) != 1 || !reflect.DeepEqual(out[0], want) {
			t.Errorf("%s gave %v, want %+v", c.topic, out, want)
		}
	}
}

func setupInbox(t *testing.T, db *sql.DB, in Inbox) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE projection_positions (name TEXT, part INTEGER, next INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := in.Setup(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
