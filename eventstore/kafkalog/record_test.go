package kafkalog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
)

func TestRecordRoundTrip(t *testing.T) {
	cases := []eventstore.Event{
		{ID: "a", Tenant: "t", Stream: "s", Type: "T", Version: 1},
		{ID: "b", Tenant: "t", Stream: "s", Type: "T", Version: 7, MessageKey: "smtp:<x@y>", CorrelationID: "c",
			CausationID: "a", Metadata: map[string]string{"z": "1", "a": ""}, Data: []byte(`{"k":"v"}`)},
	}
	for _, e := range cases {
		v := encodeEvent(&e)
		got, err := decodeEvent(v)
		if err != nil {
			t.Fatalf("%s: %v", e.ID, err)
		}
		if !bytes.Equal(encodeEvent(&got), v) || got.ID != e.ID || got.Version != e.Version || len(got.Metadata) != len(e.Metadata) {
			t.Fatalf("%s did not round-trip: %+v", e.ID, got)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encodeEvent(&eventstore.Event{ID: "a", Tenant: "t", Stream: "s", Type: "T", Version: 1, Data: []byte("x")})
	tests := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("psev2\x00"), good[6:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"huge len":  append([]byte(recordMagic), 0xff, 0xff, 0xff, 0xff),
		"no id":     encodeEvent(&eventstore.Event{Tenant: "t", Stream: "s", Type: "T", Version: 1}),
	}
	for name, b := range tests {
		if _, err := decodeEvent(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
}

func TestPartitionForIsStable(t *testing.T) {
	// The placement is part of the log's format (FNV-1a of tenant NUL stream,
	// mod the partition count): these values must never change.
	for _, c := range []struct {
		stream     string
		partitions int32
		want       int32
	}{{"s0", 12, 9}, {"s1", 12, 10}, {"msg-42", 12, 0}, {"s0", 4, 1}, {"s1", 4, 2}} {
		if got := partitionFor(recordKey("t1", c.stream), c.partitions); got != c.want {
			t.Errorf("partition of t1/%s in %d = %d, want %d", c.stream, c.partitions, got, c.want)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(&eventstore.Event{ID: "a", Tenant: "t", Stream: "s", Type: "T", Version: 1}))
	f.Add(encodeEvent(&eventstore.Event{ID: "b", Tenant: "t", Stream: "s", Type: "T", Version: 2, MessageKey: "k",
		Metadata: map[string]string{"x": "y"}, Data: []byte("data")}))
	f.Add([]byte(recordMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEvent(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeEvent(&e), b) {
			t.Fatalf("decoded event re-encodes differently")
		}
	})
}
