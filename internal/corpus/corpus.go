// Package corpus locates the shared third-party test corpus (../shared/testdata
// beside the repository) for tests. The corpus is read-only evidence from other
// projects; tests read it and never write to it.
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the environment variable that overrides where the corpus lives.
const EnvDir = "POSTSTELLE_TESTDATA"

// Dir returns the corpus directory, failing the test when it cannot be found:
// a missing corpus must show as a failure, never as a silently skipped test.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := Find()
	if err != nil {
		t.Fatalf("shared test corpus: %v (set %s)", err, EnvDir)
	}
	return dir
}

// Path joins elements onto the corpus directory, failing the test when the file
// does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test corpus: %v", err)
	}
	return p
}

// Find searches for the corpus: $POSTSTELLE_TESTDATA, else ../shared/testdata
// next to the module root found by walking up from the working directory.
func Find() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, statDir(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(filepath.Dir(dir), "shared", "testdata")
			return d, statDir(d)
		}
		if filepath.Dir(dir) == dir {
			return "", os.ErrNotExist
		}
	}
}

func statDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "stat", Path: d, Err: os.ErrInvalid}
	}
	return nil
}
