package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
)

// Memory is a content-addressed store in memory with the same Put and Open
// as Store, for tools that inspect one message without touching the data
// directory (`poststelle route test`) and for tests. It holds everything it
// is given, so callers bound what they put (the MIME walk's storage budget
// does).
type Memory struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

// Put reads r into memory; content larger than maxSize (when maxSize > 0)
// is refused with ErrTooLarge.
func (m *Memory) Put(ctx context.Context, r io.Reader, maxSize int64) (Ref, error) {
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	b, err := io.ReadAll(&ctxReader{ctx: ctx, r: src})
	if err != nil {
		return Ref{}, fmt.Errorf("blob: read into memory: %w", err)
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return Ref{}, fmt.Errorf("%w (%d bytes)", ErrTooLarge, maxSize)
	}
	sum := sha256.Sum256(b)
	ref := Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs == nil {
		m.blobs = map[string][]byte{}
	}
	m.blobs[ref.SHA256] = b
	return ref, nil
}

// Open returns a reader of a stored blob.
func (m *Memory) Open(_ context.Context, ref Ref) (io.ReadCloser, error) {
	b, ok := m.Bytes(ref)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref.SHA256)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Bytes returns a stored blob's content.
func (m *Memory) Bytes(ref Ref) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[ref.SHA256]
	return b, ok
}
