package integrity

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

func TestDecodeLeafRoundTrip(t *testing.T) {
	for _, e := range []*eventstore.Event{
		{ID: "e1", Tenant: "t", Stream: "s", Type: "MessageReceived", Version: 2, StreamSeq: 1,
			RecordedAt: time.Unix(1700000000, 123456789).UTC(), Data: []byte(`{"a":1}`),
			Position: eventstore.Position{Partition: 3, Offset: 77}, PrevHash: [32]byte{1, 2, 3}},
		{ID: "e2", Tenant: "t", Stream: "s", Type: "X", Version: 1, StreamSeq: 2, MessageKey: "k", CorrelationID: "c", CausationID: "e1",
			Metadata: map[string]string{"b": "2", "a": "1", "": "empty key"}, RecordedAt: time.Unix(0, 0).UTC(), Data: []byte{}},
	} {
		got, err := DecodeLeaf(EncodeLeaf(e))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(EncodeLeaf(got), EncodeLeaf(e)) {
			t.Errorf("re-encoding differs for %s", e.ID)
		}
		if len(e.Data) == 0 {
			got.Data, e.Data = nil, nil
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("decoded %+v, want %+v", got, e)
		}
	}
}

func TestDecodeLeafRefuses(t *testing.T) {
	good := EncodeLeaf(&eventstore.Event{ID: "e", Metadata: map[string]string{"a": "1", "b": "2"}, Data: []byte("x")})
	swapped := bytes.Replace(good, []byte("\x00\x00\x00\x01a\x00\x00\x00\x011\x00\x00\x00\x01b\x00\x00\x00\x012"),
		[]byte("\x00\x00\x00\x01b\x00\x00\x00\x012\x00\x00\x00\x01a\x00\x00\x00\x011"), 1)
	if bytes.Equal(swapped, good) {
		t.Fatal("test leaf not swapped")
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"wrong magic":  append([]byte("poststelle-event-v2\x00"), good[len(leafMagic):]...),
		"truncated":    good[:len(good)-1],
		"trailing":     append(append([]byte(nil), good...), 0),
		"keys swapped": swapped,
		"huge length":  append(append([]byte(nil), good[:len(good)-5]...), 0xff, 0xff, 0xff, 0xff, 'x'),
	} {
		if _, err := DecodeLeaf(b); !errors.Is(err, ErrLeaf) {
			t.Errorf("%s: %v, want ErrLeaf", name, err)
		}
	}
}

func FuzzDecodeLeaf(f *testing.F) {
	f.Add(EncodeLeaf(&eventstore.Event{ID: "e", Type: "T", Metadata: map[string]string{"a": "1"}, Data: []byte(`{}`)}))
	f.Add([]byte(leafMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeLeaf(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeLeaf(e), b) {
			t.Fatalf("decoded leaf re-encodes differently")
		}
	})
}
