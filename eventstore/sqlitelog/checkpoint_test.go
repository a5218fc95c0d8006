package sqlitelog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
)

// TestWALIsCheckpointed appends 64 MiB in 128 commits to a log whose writer
// has SQLite's automatic checkpoint off: without the checkpointer the WAL
// would hold all of it; with it the WAL is reused from its start.
func TestWALIsCheckpointed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(ctx, Config{Path: path, Signer: testKey})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 512<<10)
	for i := range 128 {
		if _, err := l.Append(ctx, eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: "s", Type: "T", Version: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 32<<20 {
		t.Fatalf("the WAL holds %d MiB after 64 MiB of appends: it is not checkpointed", st.Size()>>20)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if end, err := ro.End(ctx, 0); err != nil || end != 128 {
		t.Fatalf("after reopening: end %d, %v", end, err)
	}
}
