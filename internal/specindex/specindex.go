// Package specindex reads docs/spec-index.tsv, the table of the standards'
// requirements the code implements, and checks that every file and test it
// names exists, so that a rename or a move cannot leave the index stale.
package specindex

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Header is the first line of the index.
const Header = "spec\tsection\trequirement\tfile\ttest\tstatus"

// Statuses a row may have.
const (
	Implemented = "implemented"
	Partial     = "partial"
	NotYet      = "not yet"
)

// maxIndexBytes caps the index; it is ours, but a runaway file should fail
// clearly rather than slowly.
const maxIndexBytes = 1 << 20

// Row is one requirement.
type Row struct {
	Line                             int // 1-based line in the file
	Spec, Section, Requirement, File string
	Test                             string // package path relative to the module root, ".", test name; "-" for none
	Status                           string
}

// Parse reads the index. Lines starting with "#" and empty lines are
// skipped.
func Parse(r io.Reader) ([]Row, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxIndexBytes))
	var rows []Row
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != Header {
				return nil, fmt.Errorf("line 1: header %q, want %q", text, Header)
			}
			continue
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("line %d: %d columns, want 6", line, len(f))
		}
		rows = append(rows, Row{Line: line, Spec: f[0], Section: f[1], Requirement: f[2], File: f[3], Test: f[4], Status: f[5]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read spec index: %w", err)
	}
	return rows, nil
}

// Check verifies every row against the module rooted at root and returns
// one error per problem, each naming the row's line.
func Check(root string, rows []Row) []error {
	var errs []error
	tests := map[string]map[string]bool{} // package dir -> test names
	for _, r := range rows {
		if err := checkRow(root, r, tests); err != nil {
			errs = append(errs, fmt.Errorf("spec-index.tsv line %d (%s %s): %w", r.Line, r.Spec, r.Section, err))
		}
	}
	return errs
}

func checkRow(root string, r Row, tests map[string]map[string]bool) error {
	if r.Spec == "" || r.Section == "" || r.Requirement == "" {
		return errors.New("spec, section and requirement must be set")
	}
	switch r.Status {
	case Implemented, Partial:
	case NotYet:
		return nil // nothing to point at yet
	default:
		return fmt.Errorf("status %q, want %q, %q or %q", r.Status, Implemented, Partial, NotYet)
	}
	if st, err := os.Stat(filepath.Join(root, filepath.FromSlash(r.File))); err != nil || st.IsDir() {
		return fmt.Errorf("file %s does not exist", r.File)
	}
	dir, name, ok := cutLast(r.Test, ".")
	if !ok || !strings.HasPrefix(name, "Test") && !strings.HasPrefix(name, "Fuzz") {
		return fmt.Errorf("test %q is not package/path.TestName", r.Test)
	}
	names, ok := tests[dir]
	if !ok {
		var err error
		if names, err = testFuncs(filepath.Join(root, filepath.FromSlash(dir))); err != nil {
			return err
		}
		tests[dir] = names
	}
	if !names[name] {
		return fmt.Errorf("no func %s in %s/*_test.go", name, dir)
	}
	return nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+len(sep):], true
}

// testFuncs lists the top-level functions of a directory's _test.go files.
func testFuncs(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no test files in %s", dir)
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				names[fd.Name.Name] = true
			}
		}
	}
	return names, nil
}
