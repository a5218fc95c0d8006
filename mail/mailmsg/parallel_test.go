package mailmsg

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// gatedStore holds every Put until its gate opens.
type gatedStore struct {
	memStore
	gate chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	<-g.gate
	return g.memStore.Put(ctx, r, maxSize)
}

func TestParallelStoreBudget(t *testing.T) {
	const maxBuffered = 1 << 10
	tests := []struct {
		name       string
		budget     *MemoryBudget
		size       int
		background bool // Put returns before the store has the part
	}{
		{"no budget, small part", nil, 100, true},
		{"ample budget, small part", NewMemoryBudget(1 << 20), 100, true},
		{"spent budget, small part", NewMemoryBudget(maxBuffered), 100, false},
		{"ample budget, large part", NewMemoryBudget(1 << 20), 10 * maxBuffered, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &gatedStore{gate: make(chan struct{})}
			ps := NewParallelStore(st, 4, maxBuffered, tc.budget)
			content := strings.Repeat("x", tc.size)
			returned := make(chan blob.Ref, 1)
			go func() {
				ref, err := ps.Put(context.Background(), strings.NewReader(content), 0)
				if err != nil {
					t.Error(err)
				}
				returned <- ref
			}()
			var ref blob.Ref
			select {
			case ref = <-returned:
				if !tc.background {
					t.Fatal("Put returned before the store had the part")
				}
				close(st.gate)
			case <-time.After(200 * time.Millisecond):
				if tc.background {
					t.Fatal("Put waited for the store")
				}
				close(st.gate)
				ref = <-returned
			}
			if err := ps.Wait(); err != nil {
				t.Fatal(err)
			}
			if got := st.get(t, ref); !bytes.Equal(got, []byte(content)) {
				t.Fatalf("stored %d bytes, want %d", len(got), len(content))
			}
			if n := tc.budget.InUse(); n != 0 {
				t.Fatalf("%d bytes of the budget still taken after Wait", n)
			}
		})
	}
}
