package compose

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goBuild is the Dockerfile's `go build` command: its environment
// assignments and arguments, split as the shell would (double quotes only,
// which is all the Dockerfile uses).
func goBuild(t *testing.T) (env, args []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, " go build ") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("the Dockerfile runs no go build")
	}
	cmd, _, _ := strings.Cut(strings.TrimPrefix(line, "RUN "), "&&")
	words, err := shellWords(cmd)
	if err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("unexpected build command %q", cmd)
	}
	return env, words[2:]
}

func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, os.ErrInvalid
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestDockerfileBuild runs the image's build stage natively: the same go
// build environment and flags, from the repository, must give a static
// binary (the final stage is distroless/static, with no libc) that runs
// and knows the commands the compose file calls (serve, keys init, ready).
func TestDockerfileBuild(t *testing.T) {
	env, args := goBuild(t)
	if !containsAll(env, "CGO_ENABLED=0") {
		t.Fatalf("the build stage does not disable cgo: %v", env)
	}
	out := filepath.Join(t.TempDir(), "poststelle")
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			if args[i+1] != "/out/poststelle" {
				t.Fatalf("the build writes %s, the later stages copy /out/poststelle", args[i+1])
			}
			args[i+1] = out
		}
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader; distroless/static has none")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary links %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("-ldflags -s did not strip the symbol table")
	}
	var stdout, stderr bytes.Buffer
	help := exec.Command(out, "help")
	help.Stdout, help.Stderr = &stdout, &stderr
	if err := help.Run(); err != nil {
		t.Fatalf("poststelle help: %v\n%s", err, stderr.String())
	}
	for _, c := range []string{"poststelle serve", "poststelle keys init", "poststelle ready"} {
		if !strings.Contains(stdout.String(), c) {
			t.Errorf("poststelle help does not list %q", c)
		}
	}
	// The gateway's configuration from the compose file, as its
	// healthcheck reads it: ready answers 1 (no gateway here; 0 if another
	// process on this machine serves 127.0.0.1:9464), never 2 (an unusable
	// configuration).
	p := project(t)
	for _, g := range gateways(p) {
		cfg := filepath.Join(t.TempDir(), "poststelle.yaml")
		if err := os.WriteFile(cfg, []byte(configFor(t, p, g, flagValue(g.Command, "--config"))), 0o600); err != nil {
			t.Fatal(err)
		}
		ready := exec.Command(out, "ready", "--config", cfg, "--timeout", "1s")
		b, err := ready.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			t.Errorf("poststelle ready on %s's configuration with no node running: %v\n%s", g.Name, err, b)
		}
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

// TestImagePaths: the gateway image's entrypoint and its health check call
// the binary where the final stage puts it, so that the compose command
// (serve …) and the health check (ready …) run it.
func TestImagePaths(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string // the lines of each stage
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], l)
		}
	}
	if len(stages) == 0 {
		t.Fatal("no stage in the Dockerfile")
	}
	var bin, entrypoint string
	for _, l := range stages[len(stages)-1] {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == "COPY" && f[1] == "--from=build" && f[2] == "/out/poststelle" {
			bin = f[3]
		}
		if after, ok := strings.CutPrefix(l, "ENTRYPOINT "); ok {
			var ep []string
			if err := json.Unmarshal([]byte(after), &ep); err != nil || len(ep) == 0 {
				t.Fatalf("ENTRYPOINT %s: %v", after, err)
			}
			entrypoint = ep[0]
		}
	}
	if bin == "" || entrypoint != bin {
		t.Fatalf("the final stage copies the binary to %q, its entrypoint is %q", bin, entrypoint)
	}
	p := project(t)
	for _, g := range gateways(p) {
		if g.Build.Target != "" {
			t.Errorf("%s builds stage %s, not the final image", g.Name, g.Build.Target)
		}
		if hc := g.HealthCheck; hc == nil || len(hc.Test) < 2 || hc.Test[1] != bin {
			t.Errorf("%s: health check %v does not run %s", g.Name, hc, bin)
		}
	}
}

// TestDockerignore: the directories .gitignore keeps out of the repository
// (the demo's data directory with its signing key, the integration tests'
// downloads) stay out of the build context that `COPY . .` sends.
func TestDockerignore(t *testing.T) {
	lines := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
	ignored := lines(".dockerignore")
	dirs := 0
	for _, g := range lines(".gitignore") {
		if !strings.HasPrefix(g, "/") || !strings.HasSuffix(g, "/") {
			continue
		}
		dirs++
		if dir := strings.Trim(g, "/"); !slices.Contains(ignored, dir) {
			t.Errorf(".gitignore keeps out %s, .dockerignore does not", g)
		}
	}
	if dirs == 0 {
		t.Fatal("no directory in .gitignore; the check checks nothing")
	}
}
