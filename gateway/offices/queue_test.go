package offices

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// queueEvents makes the events of three messages routed to bauamt, each
// message in its own stream (partition), and their queue entries in the
// office's stream in the order m2, m3, m1, which is not the messages' order.
func queueEvents(t *testing.T) (msgs [][]eventstore.Event, office []eventstore.Event) {
	t.Helper()
	reg := gateway.NewRegistry()
	h := QueueDelivery()
	bySubject := map[string]*eventstore.Event{}
	for i, subject := range []string{"m1", "m2", "m3"} {
		rec, err := gateway.NewReceived("", gateway.MessageKey(gateway.ChannelSMTP, subject), &gateway.MessageReceived{
			Channel: gateway.ChannelSMTP, Subject: subject, From: gateway.Address{Address: "buerger@example.org"},
			ReceivedAt: time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		rec.StreamSeq, rec.Position = 1, eventstore.Position{Partition: int32(i + 1)}
		routed, err := gateway.Follow("routing", &rec, 0, &gateway.MessageRouted{Offices: []string{"bauamt"}, Rule: "r", DecidedBy: "rules"})
		if err != nil {
			t.Fatal(err)
		}
		routed.StreamSeq, routed.Position = 2, eventstore.Position{Partition: int32(i + 1), Offset: 1}
		stream := []eventstore.Event{rec, routed}
		if subject == "m2" {
			ack, err := gateway.Follow("ack", &routed, 0, &gateway.MessageAcknowledged{Office: "bauamt", By: "mueller", Via: "api"})
			if err != nil {
				t.Fatal(err)
			}
			ack.StreamSeq, ack.Position = 3, eventstore.Position{Partition: int32(i + 1), Offset: 2}
			stream = append(stream, ack)
		}
		msgs = append(msgs, stream)
		bySubject[subject] = &msgs[i][1]
	}
	for n, subject := range []string{"m2", "m3", "m1"} {
		cause := bySubject[subject]
		p, _ := reg.Decode(cause)
		out, err := h.Handle(context.Background(), cause, p)
		if err != nil {
			t.Fatal(err)
		}
		e, err := gateway.Follow(QueueDeliveryHandler, cause, 1, out[1])
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream != gateway.OfficeStream("bauamt") {
			t.Fatalf("queue entry in stream %q", e.Stream)
		}
		e.StreamSeq, e.Position = int64(n+1), eventstore.Position{Partition: 0, Offset: int64(n)}
		office = append(office, e)
	}
	return msgs, office
}

func applyAll(t *testing.T, db *sql.DB, in Inbox, evs []eventstore.Event) {
	t.Helper()
	ctx := context.Background()
	reg := gateway.NewRegistry()
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Apply(ctx, tx, &evs[i], p); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueuedOrderIsTheLogsOrder checks that with QueuedOrder every
// interleaving of the partitions gives the same queue: the places of
// MessageQueued in the office's stream, the same acknowledgement, the same
// dump; and that a message is listed only once both its routing and its
// queue entry are folded.
func TestQueuedOrderIsTheLogsOrder(t *testing.T) {
	msgs, office := queueEvents(t)
	flat := func(parts ...[]eventstore.Event) (out []eventstore.Event) {
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	interleave := []eventstore.Event{msgs[1][0], office[0], msgs[0][0], msgs[1][1], office[1], msgs[1][2], msgs[2][0], office[2], msgs[2][1], msgs[0][1]}
	orders := map[string][]eventstore.Event{
		"messages first": flat(msgs[0], msgs[1], msgs[2], office),
		"office first":   flat(office, msgs[2], msgs[1], msgs[0]),
		"interleaved":    interleave,
	}
	in := Inbox{QueuedOrder: true}
	ctx := context.Background()
	var want string
	for name, evs := range orders {
		t.Run(name, func(t *testing.T) {
			db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
			tx, _ := db.BeginTx(ctx, nil)
			if _, err := tx.ExecContext(ctx, `CREATE TABLE projection_positions (name TEXT, part INTEGER, next INTEGER)`); err != nil {
				t.Fatal(err)
			}
			if err := in.Setup(ctx, tx); err != nil {
				t.Fatal(err)
			}
			tx.Commit()
			applyAll(t, db, in, evs)
			list, err := ListInbox(ctx, db, "bauamt", 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range list {
				got = append(got, fmt.Sprintf("%d %s %s", m.Seq, m.Subject, m.State))
			}
			if exp := []string{"1 m2 acknowledged", "2 m3 new", "3 m1 new"}; !reflect.DeepEqual(got, exp) {
				t.Fatalf("queue %q, want %q", got, exp)
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
	t.Run("routing without queue entry", func(t *testing.T) {
		db := gatewaytest.OpenState(t, filepath.Join(t.TempDir(), "state.db"))
		tx, _ := db.BeginTx(ctx, nil)
		tx.ExecContext(ctx, `CREATE TABLE projection_positions (name TEXT, part INTEGER, next INTEGER)`)
		if err := in.Setup(ctx, tx); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		applyAll(t, db, in, flat(msgs[0], msgs[1], office[:1]))
		list, _ := ListInbox(ctx, db, "bauamt", 0)
		if len(list) != 1 || list[0].Subject != "m2" || list[0].Seq != 1 {
			t.Fatalf("listed before its queue entry: %+v", list)
		}
		if n, _ := LatestSeq(ctx, db, "bauamt"); n != 1 {
			t.Fatalf("latest seq %d, want 1", n)
		}
	})
}

// TestQueueDelivery checks the handler's output: a delivery per office,
// then a queue entry per office in the office's stream.
func TestQueueDelivery(t *testing.T) {
	h := QueueDelivery()
	cause := &eventstore.Event{ID: "routed-1", Stream: "m-1"}
	out, err := h.Handle(context.Background(), cause, &gateway.MessageRouted{Offices: []string{"a", "b"}, Rule: "r"})
	if err != nil || len(out) != 4 {
		t.Fatalf("%v %v", out, err)
	}
	if d := out[1].(*gateway.MessageDelivered); d.Office != "b" || d.Via != "queue" {
		t.Fatalf("delivery %+v", d)
	}
	if q := out[3].(*gateway.MessageQueued); *q != (gateway.MessageQueued{Office: "b", Stream: "m-1", RoutedBy: "routed-1", Rule: "r"}) || q.StreamOf() != "office/b" {
		t.Fatalf("queue entry %+v", q)
	}
	if _, err := h.Handle(context.Background(), &eventstore.Event{}, &gateway.RoutingFailed{}); err == nil {
		t.Fatal("wrong payload accepted")
	}
}

// TestEncodeQueueRecord checks the record a department reads: the queue
// place from the event's StreamSeq, the message's stream as key, API links;
// other events of the office stream give no record.
func TestEncodeQueueRecord(t *testing.T) {
	reg := gateway.NewRegistry()
	_, office := queueEvents(t)
	e := office[1]
	e.RecordedAt = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	key, value, err := EncodeQueueRecord(reg, &e)
	if err != nil {
		t.Fatal(err)
	}
	var r QueueRecord
	if err := json.Unmarshal(value, &r); err != nil {
		t.Fatal(err)
	}
	stream := string(key)
	want := QueueRecord{Office: "bauamt", Seq: 2, Tenant: gateway.DefaultTenant, Stream: stream, QueuedAt: e.RecordedAt,
		RoutedBy: r.RoutedBy, Rule: "r", Links: QueueLinks{Message: "/offices/bauamt/messages/" + stream,
			Raw: "/offices/bauamt/messages/" + stream + "/raw", Report: "/offices/bauamt/messages/" + stream + "/report",
			Ack: "/offices/bauamt/messages/" + stream + "/ack"}}
	if r != want || r.RoutedBy == "" || stream == "" {
		t.Fatalf("record %+v, want %+v", r, want)
	}
	if QueueTopic("poststelle.events", e.Stream) != "poststelle.events.office.bauamt" {
		t.Fatalf("topic %s", QueueTopic("poststelle.events", e.Stream))
	}
	other := e
	other.Type = "MessageDelivered"
	if k, v, err := EncodeQueueRecord(reg, &other); k != nil || v != nil || err != nil {
		t.Fatalf("other event gave %q %q %v", k, v, err)
	}
}
