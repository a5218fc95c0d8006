package packblob

import (
	"os"
	"syscall"
)

// datasync makes a pack's written records durable; the pack's size has
// been synced already (extend), so the inode need not be.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
