package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// TestEEBTasksGauge: the gauge reports the eEB tasks awaiting each office's
// decision and those of them overdue, as the inbox read model has them.
func TestEEBTasksGauge(t *testing.T) {
	env := gatewaytest.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	appendOne := func(ev eventstore.Event, err error) *eventstore.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Log.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return &ev
	}
	for i, at := range []time.Time{t0, t0.Add(100 * time.Hour)} {
		id := []string{"old", "new"}[i]
		rcv := appendOne(gateway.NewReceived("", gateway.MessageKey(gateway.ChannelEGVP, id), &gateway.MessageReceived{
			Channel: gateway.ChannelEGVP, ReceivedAt: at, EGVP: &gateway.EGVPFields{EEBRequested: true, EEBDocuments: []string{"d"}}}))
		appendOne(gateway.Follow("routing", rcv, 0, &gateway.MessageRouted{Offices: []string{"rechtsamt"}, DecidedBy: "rules"}))
	}
	runner := &projection.Runner{Log: env.Log, DB: env.State, Registry: gateway.NewRegistry()}
	if err := runner.CatchUp(ctx, offices.Inbox{}); err != nil {
		t.Fatal(err)
	}
	w := &offices.OverdueWatch{Log: env.Log, State: env.State, Now: func() time.Time { return t0.Add(80 * time.Hour) }}
	if _, err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := runner.CatchUp(ctx, offices.Inbox{}); err != nil {
		t.Fatal(err)
	}
	want := `# HELP poststelle_eeb_tasks eEB tasks awaiting an office's decision (state open: all of them; overdue: those past their due date), by office.
# TYPE poststelle_eeb_tasks gauge
poststelle_eeb_tasks{office="rechtsamt",state="open"} 2
poststelle_eeb_tasks{office="rechtsamt",state="overdue"} 1
`
	if err := testutil.CollectAndCompare(&EEBTasks{DB: env.State}, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
