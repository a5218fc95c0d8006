package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/poststelle/poststelle/eventstore/pubsub"
)

// failingOffsets fails its writes while fail is set.
type failingOffsets struct {
	*pubsub.MemoryOffsets
	fail   bool
	writes int
}

func (f *failingOffsets) Save(ctx context.Context, group string, part int32, next int64) error {
	if f.fail {
		return errors.New("disk full")
	}
	f.writes++
	return f.MemoryOffsets.Save(ctx, group, part, next)
}

// The write-behind writes each moved position once per flush, never moves
// one back, answers Load with its newest, and keeps what failed to write.
func TestLazyOffsets(t *testing.T) {
	ctx := context.Background()
	inner := &failingOffsets{MemoryOffsets: &pubsub.MemoryOffsets{}}
	if err := inner.MemoryOffsets.Save(ctx, "g", 0, 5); err != nil {
		t.Fatal(err)
	}
	o := newLazyOffsets(inner)
	load := func(src pubsub.Offsets, group string, part int32) int64 {
		t.Helper()
		n, err := src.Load(ctx, group, part)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := load(o, "g", 0); n != 5 {
		t.Fatalf("Load before any save = %d, want the stored 5", n)
	}
	for _, next := range []int64{6, 9, 7, 12} {
		o.Save(ctx, "g", 0, next)
	}
	o.Save(ctx, "h", 1, 3)
	if n := load(o, "g", 0); n != 12 {
		t.Fatalf("Load = %d, want the newest 12", n)
	}
	if n := load(inner, "g", 0); n != 5 {
		t.Fatalf("written before a flush: %d", n)
	}
	inner.fail = true
	if err := o.flush(ctx); err == nil {
		t.Fatal("a failed write was not reported")
	}
	inner.fail = false
	if err := o.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if load(inner, "g", 0) != 12 || load(inner, "h", 1) != 3 || inner.writes != 2 {
		t.Fatalf("after flush: g=%d h=%d writes=%d, want 12, 3 and 2 writes", load(inner, "g", 0), load(inner, "h", 1), inner.writes)
	}
	if err := o.flush(ctx); err != nil || inner.writes != 2 {
		t.Fatalf("a flush with nothing moved wrote (%d writes, %v)", inner.writes, err)
	}
}
