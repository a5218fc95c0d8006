package kafkalog

import (
	"bytes"
	"maps"

	"github.com/poststelle/poststelle/eventstore"
)

// The newest events of each partition stay decoded in memory, within both
// bounds, so that the readers that follow the head (on every node: the
// projections' Follow and the metrics observer over every partition, and
// each pipeline handler over its own) take them from there instead of each
// fetching the records from a broker and decoding them again. A reader
// further behind reads from Kafka as before.
const (
	recentEvents = 1024
	recentBytes  = 4 << 20
	// eventOverhead is what an event costs beside its payload, roughly: the
	// strings and the struct, for the byte bound.
	eventOverhead = 256
)

// recent is a partition's newest accepted events, as Read returns them
// (decoded and decorated), for log offsets from to from+len(events)-head.
// The fold's lock guards it.
type recent struct {
	from   int64
	events []eventstore.Event
	head   int
	bytes  int
}

func eventSize(e *eventstore.Event) int {
	n := eventOverhead + len(e.Data) + len(e.ID) + len(e.Tenant) + len(e.Stream) + len(e.Type) + len(e.MessageKey)
	for k, v := range e.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// add keeps e, the event at log offset e.Position.Offset, and drops the
// oldest beyond the bounds. An event that does not follow the newest kept
// one starts the window afresh, so that the window is always contiguous.
func (r *recent) add(e eventstore.Event) {
	if r.head == len(r.events) || r.from+int64(len(r.events)-r.head) != e.Position.Offset {
		clear(r.events)
		r.events, r.head, r.bytes, r.from = r.events[:0], 0, 0, e.Position.Offset
	}
	r.events = append(r.events, e)
	r.bytes += eventSize(&e)
	for len(r.events)-r.head > recentEvents || (r.bytes > recentBytes && len(r.events)-r.head > 1) {
		r.bytes -= eventSize(&r.events[r.head])
		r.events[r.head] = eventstore.Event{}
		r.head++
		r.from++
	}
	if r.head >= recentEvents { // reuse the array rather than let it grow
		n := copy(r.events, r.events[r.head:])
		clear(r.events[n:])
		r.events, r.head = r.events[:n], 0
	}
}

// get returns copies of the events at log offsets [from, end) when the
// window holds all of them. The copies share nothing with the window, so
// a reader may change what it got.
func (r *recent) get(from, end int64) ([]eventstore.Event, bool) {
	if from < r.from || end > r.from+int64(len(r.events)-r.head) || from >= end {
		return nil, false
	}
	out := make([]eventstore.Event, 0, end-from)
	for _, e := range r.events[r.head+int(from-r.from) : r.head+int(end-r.from)] {
		e.Metadata = maps.Clone(e.Metadata)
		e.Data = bytes.Clone(e.Data)
		out = append(out, e)
	}
	return out, true
}
