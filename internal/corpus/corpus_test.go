package corpus

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestModuleRoot(t *testing.T) {
	tmp := t.TempDir()
	mod := filepath.Join(tmp, "mod")
	deep := filepath.Join(mod, "a", "b", "testdata")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.org/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(tmp, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, want string
		err              error
	}{
		{"at the root", mod, mod, nil},
		{"below the root", filepath.Join(mod, "a", "b"), mod, nil},
		{"inside a nested testdata", deep, mod, nil},
		{"no module above", outside, "", errNoModule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := moduleRoot(tc.from)
			if !errors.Is(err, tc.err) {
				t.Fatalf("moduleRoot(%s) error %v, want %v", tc.from, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("moduleRoot(%s) = %q, want %q", tc.from, got, tc.want)
			}
		})
	}
}

func TestStatDirRefusesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "testdata")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := statDir(f); err == nil {
		t.Errorf("statDir(%s) accepted a regular file", f)
	}
	if err := statDir(filepath.Join(f, "missing")); err == nil {
		t.Error("statDir accepted a missing directory")
	}
}

func TestFindIsModuleTestdata(t *testing.T) {
	dir := Dir(t)
	if filepath.Base(dir) != "testdata" {
		t.Errorf("Dir = %s, want a directory named testdata", dir)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "go.mod")); err != nil {
		t.Errorf("Dir = %s is not beside go.mod: %v", dir, err)
	}
}

// notListed are the corpus files SOURCES.tsv does not describe: our own prose
// and the manifest itself.
var notListed = map[string]bool{"README.md": true, "SOURCES.tsv": true, ".gitattributes": true}

// TestSources checks every corpus file against SOURCES.tsv: same size and
// SHA-256 (so a line-ending conversion or a truncated checkout fails here, not
// as a puzzling signature failure elsewhere), and no file unlisted.
func TestSources(t *testing.T) {
	dir := Dir(t)
	listed := readSources(t, filepath.Join(dir, "SOURCES.tsv"))
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if notListed[rel] {
			return nil
		}
		want, ok := listed[rel]
		if !ok {
			t.Errorf("%s is not in SOURCES.tsv", rel)
			return nil
		}
		delete(listed, rel)
		size, sum, err := hashFile(p)
		if err != nil {
			return err
		}
		if size != want.size || sum != want.sha256 {
			t.Errorf("%s: %d bytes sha256 %s, SOURCES.tsv says %d bytes sha256 %s", rel, size, sum, want.size, want.sha256)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel := range listed {
		t.Errorf("%s is in SOURCES.tsv but missing from the corpus", rel)
	}
}

// TestGitAttributesKeepBytes guards the rule that git never converts line
// endings in the corpus: signed files break on any change.
func TestGitAttributesKeepBytes(t *testing.T) {
	b, err := os.ReadFile(Path(t, ".gitattributes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Join(strings.Fields(line), " ") == "* -text" {
			return
		}
	}
	t.Errorf("testdata/.gitattributes lacks the line \"* -text\"")
}

type source struct {
	size   int64
	sha256 string
}

// readSources reads SOURCES.tsv: a header, then file, sha256, bytes,
// repository, commit, source path, licence, note.
func readSources(t *testing.T, path string) map[string]source {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]source{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if n == 1 {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 8 {
			t.Fatalf("SOURCES.tsv:%d: %d columns, want 8", n, len(cols))
		}
		size, err := strconv.ParseInt(cols[2], 10, 64)
		if err != nil {
			t.Fatalf("SOURCES.tsv:%d: bytes: %v", n, err)
		}
		if cols[3] == "" || cols[4] == "" || cols[6] == "" {
			t.Errorf("SOURCES.tsv:%d: %s lacks repository, commit or licence", n, cols[0])
		}
		if _, dup := out[cols[0]]; dup {
			t.Errorf("SOURCES.tsv:%d: %s listed twice", n, cols[0])
		}
		out[cols[0]] = source{size: size, sha256: cols[1]}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("SOURCES.tsv lists no files")
	}
	return out
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
