package cryptblob

import (
	"context"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Erasable tells beforehand whether Erase would destroy ref's content: not
// when its plaintext is in the inner store (stored before encryption at
// rest), which Erase refuses. It implements retention.ErasableChecker, so
// that such blobs are listed as kept in ContentErased rather than claimed
// erased.
func (s *Store) Erasable(ctx context.Context, ref blob.Ref) (bool, error) {
	if err := blob.ValidRef(ref); err != nil {
		return false, err
	}
	_, err := s.inner.Stat(ctx, ref)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, blob.ErrNotFound):
		return false, fmt.Errorf("cryptblob: look for a plaintext copy of %s: %w", ref.SHA256, err)
	}
	return true, nil
}
