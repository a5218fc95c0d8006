package mailmsg

import (
	"bytes"
	"context"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// memStore is the in-memory store the tests walk into.
type memStore struct{ blob.Memory }

func newMemStore() *memStore { return &memStore{} }

func (m *memStore) get(t testing.TB, ref blob.Ref) []byte {
	t.Helper()
	b, ok := m.Bytes(ref)
	if !ok {
		t.Fatalf("blob %s not stored", ref.SHA256)
	}
	return b
}

// walkBytes stores raw and walks it.
func walkBytes(t testing.TB, raw []byte, lim Limits) (*Message, *memStore) {
	t.Helper()
	st := newMemStore()
	ref, err := st.Put(context.Background(), bytes.NewReader(raw), 0)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Walk(context.Background(), st, ref, lim)
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return msg, st
}
