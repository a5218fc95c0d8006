package witness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Dir keeps every head as a file in a directory, which belongs on another
// volume than the data directory (or a mount another machine owns):
// head-<size>-<time>.note, with the timestamp token as head-<size>-<time>.tsr.
type Dir struct {
	Path string
}

// Name implements Witness.
func (d *Dir) Name() string { return "dir:" + d.Path }

// Publish implements Witness. The token is written first, so that a note
// that has appeared has its token beside it.
func (d *Dir) Publish(_ context.Context, p *Publication) error {
	base := filepath.Join(d.Path, "head-"+strconv.FormatInt(p.Size, 10)+"-"+p.At.Format("20060102T150405.000000000Z"))
	if p.Response != nil {
		if err := WriteFile(base+".tsr", p.Response); err != nil {
			return err
		}
	}
	return WriteFile(base+".note", p.Note)
}

// WriteFile writes data to path atomically and durably: a temporary file in
// the same directory, fsync, rename, fsync of the directory. A reader sees
// the old file or the whole new one, and a crash after the return keeps it.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("witness: create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("witness: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("witness: sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("witness: sync directory %s: %w", dir, err)
	}
	return nil
}
