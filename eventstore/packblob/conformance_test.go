package packblob

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blob/blobtest"
)

var _ blob.Backend = (*Store)(nil)

// TestConformance runs the blob suite; two stores opened on one directory
// play two processes sharing it, each writing its own pack. The second
// configuration rolls packs every 64 KiB and packs nothing above 1 KiB, so
// the suite also crosses pack ends and the file path.
func TestConformance(t *testing.T) {
	for _, cfg := range []Config{{}, {PackSize: 64 << 10, MaxPacked: 1 << 10}} {
		t.Run(fmt.Sprintf("max_packed=%d,pack_size=%d", cfg.MaxPacked, cfg.PackSize), func(t *testing.T) {
			blobtest.Run(t, blobtest.Backend{LargeSize: 48 << 20, Storage: func(t *testing.T) blobtest.Storage {
				dir := t.TempDir()
				return blobtest.Storage{
					Open: func() (blob.Backend, error) {
						c := cfg
						c.Dir = dir
						s, err := Open(context.Background(), c)
						if err == nil {
							t.Cleanup(func() { s.Close() })
						}
						return s, err
					},
					Corrupt: func(ref blob.Ref, content []byte) error { return corrupt(dir, ref, content) },
				}
			}})
		})
	}
}

// corrupt replaces a blob's stored content behind the store's back: in its
// file, or in place in its pack record with the header rewritten to the
// new length.
func corrupt(dir string, ref blob.Ref, content []byte) error {
	p := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256)
	if _, err := os.Stat(p); err == nil {
		os.Chmod(p, 0o600)
		return os.WriteFile(p, content, 0o600)
	}
	packs, err := filepath.Glob(filepath.Join(dir, "packs", "*"+packSuffix))
	if err != nil {
		return err
	}
	var sum [32]byte
	hex.Decode(sum[:], []byte(ref.SHA256))
	want := encodeHeader(kindBlob, sum, ref.Size)
	for _, path := range packs {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Searched for, not walked: an earlier corruption may have changed
		// a header's length.
		off := bytes.Index(b, want)
		if off < 0 {
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		_, err1 := f.WriteAt(encodeHeader(kindBlob, sum, int64(len(content))), int64(off))
		_, err2 := f.WriteAt(content, int64(off)+headerSize)
		return joinClose(f, err1, err2)
	}
	return fmt.Errorf("blob %s is in no pack and no file", ref.SHA256)
}

func joinClose(f *os.File, errs ...error) error {
	for _, err := range errs {
		if err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
