//go:build !unix

package packblob

import (
	"errors"
	"os"
	"time"
)

var errNoLocks = errors.New("packblob: pack files need flock, which this system lacks")

func lock(*os.File) error            { return errNoLocks }
func tryLock(*os.File) (bool, error) { return false, errNoLocks }
func unlock(*os.File)                {}
func isReadOnlyFS(error) bool        { return false }
func waitBriefly()                   { time.Sleep(time.Millisecond) }
