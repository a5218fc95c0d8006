package sqlitelog

import (
	"context"
	"crypto/ed25519"
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
