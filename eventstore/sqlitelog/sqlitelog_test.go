package sqlitelog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/conformance"
)

// testKey is fixed so that the kill test's child process signs with the same key.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func backend() conformance.Backend {
	return conformance.Backend{
		Name:      "sqlite",
		PublicKey: testKey.Public(),
		Open: func(ctx context.Context, dir, name string) (eventstore.Log, error) {
			return Open(ctx, Config{Path: filepath.Join(dir, name+".db"), Signer: testKey})
		},
	}
}

func TestMain(m *testing.M) {
	conformance.MainChild(backend())
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	conformance.Run(t, backend())
}

func TestNewestCheckpoint(t *testing.T) {
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "log.db"), Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, found, err := l.NewestCheckpoint(ctx, 0); found || err != nil {
		t.Fatalf("empty log: found %v, %v", found, err)
	}
	for i := range 3 {
		if _, err := l.Append(ctx, eventstore.Event{ID: fmt.Sprint("e", i), Tenant: "t", Stream: "s", Type: "T", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	c, found, err := l.NewestCheckpoint(ctx, 0)
	all, _ := l.Checkpoints(ctx, 0)
	if !found || err != nil || c.Size != 3 || c.Root != all[len(all)-1].Root || string(c.Signature) != string(all[len(all)-1].Signature) {
		t.Fatalf("newest %+v found %v err %v; all %d", c, found, err, len(all))
	}
	if _, _, err := l.NewestCheckpoint(ctx, 1); err == nil {
		t.Fatal("partition 1 accepted")
	}
}
