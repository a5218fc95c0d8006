// Package corpus locates the repository's third-party test corpus, the
// testdata directory at the module root (see testdata/README.md for where each
// file comes from). The corpus is read-only evidence from other projects; tests
// read it and never write to it.
package corpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// errNoModule reports that no go.mod was found above the working directory.
var errNoModule = errors.New("no go.mod in the working directory or above it")

// Dir returns the corpus directory, failing the test when it cannot be found:
// a missing corpus must show as a failure, never as a silently skipped test.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := Find()
	if err != nil {
		t.Fatalf("test corpus: %v", err)
	}
	return dir
}

// Path joins elements onto the corpus directory, failing the test when the file
// does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test corpus: %v", err)
	}
	return p
}

// Find returns <module root>/testdata, the module root being the nearest
// directory at or above the working directory that holds go.mod. Tests run
// in their package's directory, so this works from any package.
func Find() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	d := filepath.Join(root, "testdata")
	return d, statDir(d)
}

// moduleRoot walks up from dir to the first directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errNoModule
		}
		dir = parent
	}
}

func statDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "stat", Path: d, Err: errors.New("not a directory")}
	}
	return nil
}
