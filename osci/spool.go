package osci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spool keeps attachment bytes outside memory while a message is read: a temporary
// directory (DirSpool), a blob store, anything that can take a stream and give it back.
type Spool interface {
	// Put reads r to its end and keeps the bytes. name is the part's Content-ID, for
	// diagnostics only: it is sender-chosen and must not become a path.
	Put(ctx context.Context, name string, r io.Reader) (Spooled, error)
}

// Spooled is one kept attachment.
type Spooled interface {
	// Open returns a reader of the bytes as they were put.
	Open() (io.ReadCloser, error)
}

// DirSpool spools each attachment into a file of its own in Dir (os.TempDir when empty).
// The files are the caller's to remove: Remove deletes those a Spooled names.
type DirSpool struct {
	Dir string
}

// Put implements Spool.
func (s DirSpool) Put(ctx context.Context, _ string, r io.Reader) (Spooled, error) {
	f, err := os.CreateTemp(s.Dir, "osci-part-*")
	if err != nil {
		return nil, fmt.Errorf("osci: spooling a part: %w", err)
	}
	_, err = io.Copy(f, ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("osci: spooling a part: %w", err)
	}
	return spoolFile(filepath.Clean(f.Name())), nil
}

type spoolFile string

func (f spoolFile) Open() (io.ReadCloser, error) { return os.Open(string(f)) }

// Remove deletes the files behind spooled parts made by a DirSpool; others are left alone.
func (DirSpool) Remove(parts ...Spooled) error {
	var errs []error
	for _, p := range parts {
		if f, ok := p.(spoolFile); ok {
			if err := os.Remove(string(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
