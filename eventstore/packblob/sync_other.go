//go:build !linux

package packblob

import "os"

func datasync(f *os.File) error { return f.Sync() }
