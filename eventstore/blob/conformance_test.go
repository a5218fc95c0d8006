package blob_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blob/blobtest"
)

var _ blob.Backend = (*blob.Store)(nil)

// TestConformance runs the blob suite against the local directory; two
// stores opened on one directory play two processes sharing it.
func TestConformance(t *testing.T) {
	blobtest.Run(t, blobtest.Backend{Storage: func(t *testing.T) blobtest.Storage {
		dir := t.TempDir()
		return blobtest.Storage{
			Open: func() (blob.Backend, error) { return blob.Open(dir) },
			Corrupt: func(ref blob.Ref, content []byte) error {
				p := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256)
				if err := os.Chmod(p, 0o600); err != nil {
					return err
				}
				return os.WriteFile(p, content, 0o600)
			},
		}
	}})
}
