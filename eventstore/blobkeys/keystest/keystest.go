// Package keystest is the conformance suite every blobkeys.Store passes, so
// that encryption at rest behaves the same with the embedded key store and
// with the cluster's in S3.
package keystest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
)

// Open opens a store over one storage place; every call sees the same
// entries (another node, or the same node restarted). The suite closes what
// it opens.
type Open func(t *testing.T) blobkeys.Store

// Run runs the whole suite. fresh prepares an empty storage place (a
// database file, a prefix in a bucket) for one test and returns how to open
// stores over it; cleaning up is fresh's to register with t.Cleanup.
func Run(t *testing.T, fresh func(t *testing.T) Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"AddGet", testAddGet},
		{"AddIdempotent", testAddIdempotent},
		{"AddKeepsExisting", testAddKeepsExisting},
		{"NotFound", testNotFound},
		{"Erase", testErase},
		{"EraseUnknown", testEraseUnknown},
		{"AddAfterEraseRevives", testRevive},
		{"ConcurrentAdds", testConcurrentAdds},
		{"ConcurrentAddAndErase", testConcurrentAddErase},
		{"Reopen", testReopen},
		{"BadInput", testBadInput},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

// opened opens a store and closes it when the test ends.
func opened(t *testing.T, open Open) blobkeys.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// Ref returns a random plaintext reference.
func Ref() blob.Ref {
	var b [32]byte
	rand.Read(b[:])
	s := sha256.Sum256(b[:])
	return blob.Ref{SHA256: hex.EncodeToString(s[:]), Size: int64(b[0]) << 8}
}

// Entry returns a random well-formed entry.
func Entry() blobkeys.Entry {
	w := make([]byte, 60)
	rand.Read(w)
	return blobkeys.Entry{Cipher: Ref(), WrappedKey: w, KEK: "kek-" + hex.EncodeToString(w[:4])}
}

func mustAdd(t *testing.T, s blobkeys.Store, plain blob.Ref, e blobkeys.Entry) blobkeys.Entry {
	t.Helper()
	live, err := s.Add(context.Background(), plain, e)
	if err != nil {
		t.Fatalf("add %s: %v", plain.SHA256[:8], err)
	}
	return live
}

func mustGet(t *testing.T, s blobkeys.Store, plain blob.Ref) blobkeys.Entry {
	t.Helper()
	e, err := s.Get(context.Background(), plain)
	if err != nil {
		t.Fatalf("get %s: %v", plain.SHA256[:8], err)
	}
	return e
}

func testAddGet(t *testing.T, open Open) {
	s := opened(t, open)
	plain, e := Ref(), Entry()
	if live := mustAdd(t, s, plain, e); !live.Equal(e) {
		t.Fatalf("add returned %+v, want the added entry", live)
	}
	if got := mustGet(t, s, plain); !got.Equal(e) {
		t.Fatalf("get: %+v, want %+v", got, e)
	}
	other := Ref()
	e2 := Entry()
	mustAdd(t, s, other, e2)
	if got := mustGet(t, s, other); !got.Equal(e2) {
		t.Fatal("a second reference got another entry")
	}
	if got := mustGet(t, s, plain); !got.Equal(e) {
		t.Fatal("adding a second reference changed the first")
	}
}

func testAddIdempotent(t *testing.T, open Open) {
	s := opened(t, open)
	plain, e := Ref(), Entry()
	mustAdd(t, s, plain, e)
	for range 3 {
		if live := mustAdd(t, s, plain, e); !live.Equal(e) {
			t.Fatalf("repeated add returned %+v", live)
		}
	}
}

func testAddKeepsExisting(t *testing.T, open Open) {
	s := opened(t, open)
	plain, first, second := Ref(), Entry(), Entry()
	mustAdd(t, s, plain, first)
	if live := mustAdd(t, s, plain, second); !live.Equal(first) {
		t.Fatalf("add over a live entry returned %+v, want the existing one", live)
	}
	if got := mustGet(t, s, plain); !got.Equal(first) {
		t.Fatal("add replaced a live entry")
	}
}

func testNotFound(t *testing.T, open Open) {
	s := opened(t, open)
	if _, err := s.Get(context.Background(), Ref()); !errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrErased) {
		t.Fatalf("get of an unknown reference: %v, want ErrNotFound", err)
	}
}

func erasedAt(t *testing.T, s blobkeys.Store, plain blob.Ref) time.Time {
	t.Helper()
	_, err := s.Get(context.Background(), plain)
	var ee *blobkeys.ErasedError
	if !errors.Is(err, blob.ErrErased) || !errors.As(err, &ee) || errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("get of an erased reference: %v, want an *ErasedError matching ErrErased", err)
	}
	if ee.SHA256 != plain.SHA256 {
		t.Fatalf("erased error names %s, want %s", ee.SHA256, plain.SHA256)
	}
	return ee.At
}

func testErase(t *testing.T, open Open) {
	s, other := opened(t, open), opened(t, open)
	ctx := context.Background()
	plain, kept := Ref(), Ref()
	mustAdd(t, s, plain, Entry())
	keptEntry := mustAdd(t, s, kept, Entry())
	before := time.Now().Add(-time.Second)
	if err := s.Erase(ctx, plain); err != nil {
		t.Fatalf("erase: %v", err)
	}
	at := erasedAt(t, s, plain)
	if at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("erasure time %v, want about now", at)
	}
	if got := erasedAt(t, other, plain); !got.Equal(at) {
		t.Fatalf("another store sees erasure time %v, want %v", got, at)
	}
	time.Sleep(10 * time.Millisecond)
	for range 2 {
		if err := s.Erase(ctx, plain); err != nil {
			t.Fatalf("erase again: %v", err)
		}
	}
	if again := erasedAt(t, s, plain); !again.Equal(at) {
		t.Fatalf("a repeated erase moved the erasure time from %v to %v", at, again)
	}
	if got := mustGet(t, s, kept); !got.Equal(keptEntry) {
		t.Fatal("erasing one reference changed another")
	}
}

// testEraseUnknown: erasing a reference never added succeeds and leaves a
// tombstone (the documented semantics of Store.Erase).
func testEraseUnknown(t *testing.T, open Open) {
	s := opened(t, open)
	plain := Ref()
	if err := s.Erase(context.Background(), plain); err != nil {
		t.Fatalf("erase of an unknown reference: %v", err)
	}
	erasedAt(t, s, plain)
}

func testRevive(t *testing.T, open Open) {
	s := opened(t, open)
	plain := Ref()
	mustAdd(t, s, plain, Entry())
	if err := s.Erase(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	e := Entry()
	if live := mustAdd(t, s, plain, e); !live.Equal(e) {
		t.Fatalf("add after erase returned %+v, want the new entry", live)
	}
	if got := mustGet(t, opened(t, open), plain); !got.Equal(e) {
		t.Fatalf("after revival: %+v, want the new entry", got)
	}
}

// testConcurrentAdds: adds of one reference on two stores at once agree on
// one entry, and every caller is told which.
func testConcurrentAdds(t *testing.T, open Open) {
	stores := []blobkeys.Store{opened(t, open), opened(t, open)}
	plain := Ref()
	const n = 16
	lives := make([]blobkeys.Entry, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { lives[i], errs[i] = stores[i%2].Add(context.Background(), plain, Entry()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent adds: %v", err)
	}
	want := mustGet(t, stores[0], plain)
	for i, live := range lives {
		if !live.Equal(want) {
			t.Fatalf("add %d was told %s is live, but %s is", i, live.Cipher.SHA256[:8], want.Cipher.SHA256[:8])
		}
	}
	if got := mustGet(t, stores[1], plain); !got.Equal(want) {
		t.Fatal("the two stores disagree on the entry")
	}
}

// testConcurrentAddErase: adds and erasures racing end in one of the two
// states, seen alike by both stores, never in an error or a mixture.
func testConcurrentAddErase(t *testing.T, open Open) {
	stores := []blobkeys.Store{opened(t, open), opened(t, open)}
	plain := Ref()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			s := stores[i%2]
			if i%2 == 0 {
				_, errs[i] = s.Add(context.Background(), plain, Entry())
			} else {
				errs[i] = s.Erase(context.Background(), plain)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("racing adds and erasures: %v", err)
	}
	e0, err0 := stores[0].Get(context.Background(), plain)
	e1, err1 := stores[1].Get(context.Background(), plain)
	switch {
	case err0 == nil && err1 == nil:
		if !e0.Equal(e1) {
			t.Fatal("the stores disagree on the entry")
		}
	case errors.Is(err0, blob.ErrErased) && errors.Is(err1, blob.ErrErased):
	default:
		t.Fatalf("final state: %v / %v, want one entry or one tombstone", err0, err1)
	}
}

func testReopen(t *testing.T, open Open) {
	s := open(t)
	plain, gone := Ref(), Ref()
	e := mustAdd(t, s, plain, Entry())
	mustAdd(t, s, gone, Entry())
	if err := s.Erase(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	again := opened(t, open)
	if got := mustGet(t, again, plain); !got.Equal(e) {
		t.Fatal("entry changed across a reopen")
	}
	erasedAt(t, again, gone)
}

func testBadInput(t *testing.T, open Open) {
	s := opened(t, open)
	ctx := context.Background()
	bad := []blob.Ref{{SHA256: "../../etc/passwd"}, {SHA256: ""}, {SHA256: Ref().SHA256, Size: -1},
		{SHA256: "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"}}
	for _, ref := range bad {
		if _, err := s.Get(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("get %q: %v, want ErrBadRef", ref.SHA256, err)
		}
		if _, err := s.Add(ctx, ref, Entry()); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("add %q: %v, want ErrBadRef", ref.SHA256, err)
		}
		if err := s.Erase(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("erase %q: %v, want ErrBadRef", ref.SHA256, err)
		}
	}
	plain := Ref()
	entries := map[string]func(*blobkeys.Entry){
		"no wrapped key":     func(e *blobkeys.Entry) { e.WrappedKey = nil },
		"huge wrapped key":   func(e *blobkeys.Entry) { e.WrappedKey = make([]byte, blobkeys.MaxWrappedKey+1) },
		"no KEK id":          func(e *blobkeys.Entry) { e.KEK = "" },
		"huge KEK id":        func(e *blobkeys.Entry) { e.KEK = string(make([]byte, blobkeys.MaxKEKID+1)) },
		"bad cipher ref":     func(e *blobkeys.Entry) { e.Cipher.SHA256 = "x" },
		"negative cipher sz": func(e *blobkeys.Entry) { e.Cipher.Size = -1 },
	}
	for name, edit := range entries {
		e := Entry()
		edit(&e)
		if _, err := s.Add(ctx, plain, e); err == nil {
			t.Errorf("add with %s succeeded", name)
		}
	}
	if _, err := s.Get(ctx, plain); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a refused add left something: %v", err)
	}
}

func testPing(t *testing.T, open Open) {
	if err := opened(t, open).Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
