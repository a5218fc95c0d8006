package mailmsg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// memStore is an in-memory Store for tests and fuzzing.
type memStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func newMemStore() *memStore { return &memStore{blobs: map[string][]byte{}} }

func (m *memStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	b, err := io.ReadAll(src)
	if err != nil {
		return blob.Ref{}, err
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return blob.Ref{}, blob.ErrTooLarge
	}
	sum := sha256.Sum256(b)
	ref := blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	m.mu.Lock()
	m.blobs[ref.SHA256] = b
	m.mu.Unlock()
	return ref, nil
}

func (m *memStore) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	m.mu.Lock()
	b, ok := m.blobs[ref.SHA256]
	m.mu.Unlock()
	if !ok {
		return nil, blob.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) get(t testing.TB, ref blob.Ref) []byte {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[ref.SHA256]
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
