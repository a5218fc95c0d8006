package verification

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestMemoryBudgetBoundsHolders runs many acquirers of assorted sizes and
// checks that what they hold together never exceeds the budget, that
// every one of them gets its turn, and that the budget is whole again.
func TestMemoryBudgetBoundsHolders(t *testing.T) {
	const size = 100
	b := newMemoryBudget(size)
	var mu sync.Mutex
	var held, peak int64
	var wg sync.WaitGroup
	done := 0
	for i := range 40 {
		wg.Go(func() {
			n, err := b.acquire(context.Background(), int64(i*7%130)) // some above the whole budget
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			held += n
			peak = max(peak, held)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			held -= n
			done++
			mu.Unlock()
			b.release(n)
		})
	}
	wg.Wait()
	if peak > size || done != 40 {
		t.Fatalf("peak %d of %d, %d of 40 done", peak, size, done)
	}
	if b.free != size || len(b.waiters) != 0 {
		t.Fatalf("budget left with %d free, %d waiters", b.free, len(b.waiters))
	}
}

func TestMemoryBudgetOrderAndCancel(t *testing.T) {
	cases := []struct {
		name    string
		hold    int64 // taken first and kept
		want    int64 // asked by the waiter
		granted bool  // before the holder releases
		took    int64
	}{
		{"fits", 40, 60, true, 60},
		{"waits", 50, 60, false, 60},
		{"larger than the budget runs alone", 1, 500, false, 100},
		{"negative asks nothing", 100, -5, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newMemoryBudget(100)
			h, err := b.acquire(context.Background(), c.hold)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan int64, 1)
			go func() {
				n, err := b.acquire(context.Background(), c.want)
				if err != nil {
					t.Error(err)
				}
				got <- n
			}()
			select {
			case n := <-got:
				if !c.granted && c.want > 0 {
					t.Fatalf("granted %d while %d of 100 held", n, h)
				}
				if n != c.took {
					t.Fatalf("took %d, want %d", n, c.took)
				}
				b.release(n)
				b.release(h)
				return
			case <-time.After(50 * time.Millisecond):
				if c.granted {
					t.Fatal("not granted though it fits")
				}
			}
			b.release(h)
			if n := <-got; n != c.took {
				t.Fatalf("took %d, want %d", n, c.took)
			}
		})
	}
}

// TestMemoryBudgetFIFO: a small request behind a waiting large one waits
// too, so the large one is not starved; a cancelled waiter leaves the
// queue and lets the next one through.
func TestMemoryBudgetFIFO(t *testing.T) {
	b := newMemoryBudget(100)
	first, _ := b.acquire(context.Background(), 60)
	ctx, cancel := context.WithCancel(context.Background())
	large := make(chan error, 1)
	go func() { _, err := b.acquire(ctx, 90); large <- err }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	small := make(chan int64, 1)
	go func() { n, _ := b.acquire(context.Background(), 10); small <- n }()
	select {
	case <-small:
		t.Fatal("a small request overtook a waiting large one")
	case <-time.After(30 * time.Millisecond):
	}
	cancel()
	if err := <-large; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if n := <-small; n != 10 {
		t.Fatalf("small took %d", n)
	}
	b.release(10)
	b.release(first)
	if b.free != 100 {
		t.Fatalf("%d free after all released", b.free)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
