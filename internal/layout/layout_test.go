// Package layout holds the test that keeps the folders honest: imports run
// one way, so a folder says which side of the log its packages serve.
package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/poststelle/poststelle/"

// rules: a package under the folder on the left may not import anything
// under a folder on the right.
var rules = []struct {
	from   string
	forbid []string
	why    string
}{
	{"crypto/", []string{"gateway/", "eventstore/", "channels/", "office/", "mail/", "internal/assembly"}, "crypto knows nothing of messages"},
	{"eventstore/", []string{"gateway/", "channels/", "office/", "mail/", "internal/assembly"}, "the log knows nothing of the domain"},
	{"gateway/", []string{"channels/", "office/", "internal/assembly"}, "the domain knows no edge"},
	{"mail/", []string{"channels/", "office/", "internal/assembly"}, "mail formats serve both edges"},
	{"osci/", []string{"gateway/", "channels/", "office/", "internal/assembly"}, "the OSCI protocol serves both roles and both edges"},
	{"xjustiz/", []string{"gateway/", "channels/", "office/", "osci/", "internal/assembly"}, "XJustiz is a document format, whatever carries it"},
	{"egvp/", []string{"gateway/", "channels/", "office/", "internal/assembly"}, "the EGVP message layer serves the channel and the office alike"},
	{"office/", []string{"channels/", "internal/assembly"}, "the office side never reaches into a channel"},
	{"channels/", []string{"office/", "internal/assembly"}, "a channel never reaches into the office side"},
}

// TestImportDirection parses every non-test Go file of the module and fails
// on an import that runs against the layout, and on a channel that imports
// another channel.
func TestImportDirection(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if !strings.HasPrefix(p, module) {
				continue
			}
			if msg := violation(rel, strings.TrimPrefix(p, module)); msg != "" {
				t.Errorf("%s imports %s: %s", rel, p, msg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d Go files found under %s: wrong root?", checked, root)
	}
}

func violation(file, imported string) string {
	if strings.Contains(file, "/bench/") {
		return "" // a benchmark harness may build the whole gateway
	}
	for _, r := range rules {
		if !strings.HasPrefix(file, r.from) {
			continue
		}
		for _, f := range r.forbid {
			if strings.HasPrefix(imported+"/", f) {
				return r.why
			}
		}
	}
	if strings.Count(file, "/") > 1 && strings.HasPrefix(file, "channels/") && imported == "channels" {
		return "a channel never imports the registry that registers it"
	}
	// The registry (package channels, the files directly in channels/)
	// imports every channel to register it.
	if strings.HasPrefix(file, "channels/") && strings.Count(file, "/") > 1 && strings.HasPrefix(imported, "channels/") {
		if top(file) != top(imported+"/") && !builtOn[top(file)][top(imported+"/")] {
			return "a channel never imports another channel"
		}
	}
	return ""
}

// builtOn names the channels that are built on another channel's intake
// and may import it, and nothing else: De-Mail arrives as e-mail, in the
// provider gateway's mailbox (taken in by the IMAP watcher) or by SMTP
// from the gateway (taken in by the SMTP receiver), and its answers are
// e-mail submitted to the gateway (by the e-mail outbound's relay client).
var builtOn = map[string]map[string]bool{
	"channels/demail": {"channels/imap": true, "channels/smtp": true, "channels/smtpout": true},
}

// top is the first two path elements: "channels/smtp/bench/x.go" → "channels/smtp".
func top(p string) string {
	parts := strings.SplitN(p, "/", 3)
	if len(parts) < 2 {
		return p
	}
	return parts[0] + "/" + parts[1]
}

func TestViolation(t *testing.T) {
	for _, tt := range []struct {
		file, imported string
		bad            bool
	}{
		{"office/officeapi/handlers.go", "channels/smtpout", true},
		{"office/officeapi/handlers.go", "mail/mailmsg", false},
		{"channels/smtp/session.go", "channels/imap", true},
		{"channels/demail/inbound.go", "channels/imap", false},
		{"channels/demail/smtp.go", "channels/smtp", false},
		{"channels/demail/outbound.go", "channels/smtpout", false},
		{"channels/smtpout/smtpout.go", "channels/demail", true},
		{"channels/imap/imap.go", "channels/demail", true},
		{"channels/smtp/bench/main.go", "channels/smtp", false},
		{"channels/builtin.go", "channels/smtp", false},
		{"channels/smtp/smtp.go", "channels", true},
		{"gateway/replies/plan.go", "office/officeapi", true},
		{"crypto/cms/parse.go", "crypto/cert", false},
		{"eventstore/witness/remote.go", "gateway", true},
		{"office/officeapi/bench/main.go", "internal/assembly", false},
		{"internal/assembly/assembly.go", "channels/smtp", false},
		{"osci/envelope.go", "gateway", true},
		{"osci/envelope.go", "channels/smtp", true},
		{"osci/envelope.go", "crypto/xmldsig", false},
		{"channels/osci/inbound.go", "osci", false},
	} {
		if got := violation(tt.file, tt.imported) != ""; got != tt.bad {
			t.Errorf("%s → %s: violation %v, want %v", tt.file, tt.imported, got, tt.bad)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
