package kafkalog

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// TestConcurrentAppendsShareRequests appends from many goroutines at once,
// small events and events so large that two of them exceed one request's
// cap, into streams spread over every partition, and checks that every
// append gets its own position and that every stream reads back in the
// order its appender wrote it.
func TestConcurrentAppendsShareRequests(t *testing.T) {
	l := openTest(t, topicName(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	large := bytes.Repeat([]byte("L"), 700<<10) // two do not fit one 1 MiB request
	const appenders, perAppender = 24, 8
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	positions := make(chan eventstore.Position, appenders*perAppender)
	for a := range appenders {
		wg.Go(func() {
			stream := fmt.Sprintf("s-%d", a)
			for i := range perAppender {
				e := tev(fmt.Sprintf("e-%d-%d", a, i), stream, fmt.Sprintf("%d/%d", a, i))
				if a%8 == 0 && i%4 == 0 {
					e.Data = large
				}
				res, err := l.Append(ctx, e)
				if err != nil {
					errs <- fmt.Errorf("appender %d event %d: %w", a, i, err)
					return
				}
				if len(res) != 1 || res[0].Existing {
					errs <- fmt.Errorf("appender %d event %d: result %+v", a, i, res)
					return
				}
				positions <- res[0].Position
			}
		})
	}
	wg.Wait()
	close(errs)
	close(positions)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[eventstore.Position]bool{}
	for p := range positions {
		if seen[p] {
			t.Fatalf("position %+v returned twice", p)
		}
		seen[p] = true
	}
	if len(seen) != appenders*perAppender {
		t.Fatalf("got %d positions, want %d", len(seen), appenders*perAppender)
	}
	for a := range appenders {
		evs, err := l.ReadStream(ctx, "t1", fmt.Sprintf("s-%d", a))
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != perAppender {
			t.Fatalf("stream s-%d: %d events, want %d", a, len(evs), perAppender)
		}
		for i, e := range evs {
			if want := fmt.Sprintf("e-%d-%d", a, i); e.ID != want || e.StreamSeq != int64(i+1) {
				t.Fatalf("stream s-%d event %d: id %s seq %d, want %s seq %d", a, i, e.ID, e.StreamSeq, want, i+1)
			}
			if a%8 == 0 && i%4 == 0 && !bytes.Equal(e.Data, large) {
				t.Fatalf("stream s-%d event %d: large data differs (%d bytes)", a, i, len(e.Data))
			}
		}
	}
}

// TestAppendAfterCloseFails checks that an Append on a closed log fails
// with ErrClosed instead of waiting for a producer that is gone.
func TestAppendAfterCloseFails(t *testing.T) {
	l := openTest(t, topicName(t))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Append(ctx, tev("x", "s", "d")); err != eventstore.ErrClosed {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
}
