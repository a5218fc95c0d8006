package gatewaytest

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Payloads decodes the events of one stream and returns those whose
// payload is a T, in stream order.
func Payloads[T gateway.Payload](t testing.TB, l eventstore.Log, tenant, stream string) []T {
	t.Helper()
	evs, err := l.ReadStream(context.Background(), tenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	var out []T
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatalf("decode event %s (%s): %v", evs[i].ID, evs[i].Type, err)
		}
		if v, ok := p.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Append appends ev to the log and returns it with its position.
func (e *Env) Append(t testing.TB, ev eventstore.Event) eventstore.Event {
	t.Helper()
	res, err := e.Log.Append(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.Position = res[0].Position
	return ev
}

// Follow appends the event a handler records in answer to cause.
func (e *Env) Follow(t testing.TB, handler string, cause eventstore.Event, p gateway.Payload) eventstore.Event {
	t.Helper()
	ev, err := gateway.Follow(handler, &cause, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	return e.Append(t, ev)
}
