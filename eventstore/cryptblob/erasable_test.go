package cryptblob

import (
	"context"
	"errors"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// TestErasable: a blob encrypted here can be erased, one stored in
// plaintext before encryption cannot, and Erasable says so beforehand, as
// Erase then does.
func TestErasable(t *testing.T) {
	ctx := context.Background()
	s, inner := newErasableStore(t)
	enc, err := s.PutBytes(ctx, []byte("verschlüsselt"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := inner.PutBytes(ctx, []byte("Klartext von früher"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  blob.Ref
		want bool
	}{{enc, true}, {plain, false}} {
		got, err := s.Erasable(ctx, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("Erasable(%s) = %v, %v; want %v", tc.ref.SHA256, got, err, tc.want)
		}
		err = s.Erase(ctx, tc.ref)
		if tc.want && err != nil {
			t.Errorf("Erase(%s): %v", tc.ref.SHA256, err)
		}
		if !tc.want && !errors.Is(err, blob.ErrNotErasable) {
			t.Errorf("Erase(%s): %v, want ErrNotErasable", tc.ref.SHA256, err)
		}
	}
	if _, err := s.Erasable(ctx, blob.Ref{SHA256: "zz"}); err == nil {
		t.Error("Erasable of a malformed reference: no error")
	}
}

func newErasableStore(t *testing.T) (*Store, blob.Backend) {
	t.Helper()
	f, mem := memFixture(t)
	return f.open(t), mem
}
