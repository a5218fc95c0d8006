package packblob

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// The crash test runs this test binary again as the writer.
const crashDirEnv = "PACKBLOB_CRASH_WRITER_DIR"

// crashBlob is the content of blob k of round r: its seed is on the
// writer's acknowledgement line, so the parent can rebuild it.
func crashBlob(seed uint64) []byte {
	return randomBytes(seed, 1+int(seed%20000))
}

// TestMain runs the writer the crash test kills when asked to, instead of
// the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashWriter(dir)
	}
	os.Exit(m.Run())
}

// crashWriter puts blobs from 16 goroutines and prints each one's seed
// only once Put returned, until it is killed.
func crashWriter(dir string) {
	round, _ := strconv.ParseUint(os.Getenv("PACKBLOB_CRASH_ROUND"), 10, 64)
	s, err := Open(context.Background(), Config{Dir: dir, PackSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				seed := round<<32 | uint64(g)<<24 | i
				if _, err := s.PutBytes(context.Background(), crashBlob(seed)); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d\n", seed)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKilledMidWrite kills a writing process (SIGKILL) three times over one
// directory: after each kill every acknowledged blob reads back exactly,
// every blob the index lists verifies (torn records are gone, never served
// as wrong bytes), and every pack is sealed.
func TestKilledMidWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	var acked []uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("PACKBLOB_CRASH_ROUND=%d", round+1))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			seed, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(seed, 10, 64)
			if err != nil {
				t.Fatalf("writer said %q", sc.Text())
			}
			acked = append(acked, v)
			if n++; n == 300+round*100 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Wait()
		if n < 300+round*100 {
			t.Fatalf("round %d: the writer stopped after %d puts: %s", round, n, stderr.String())
		}
		s := open(t, Config{Dir: dir})
		for _, seed := range acked {
			want := crashBlob(seed)
			got, err := s.ReadAll(context.Background(), refOf(want), 0)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("round %d: acknowledged blob %d: %v", round, seed, err)
			}
		}
		listed := everyIndexedBlobVerifies(t, s)
		for _, p := range packFiles(t, dir) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			w, err := walk(f, 0, false)
			f.Close()
			if err != nil || !w.sealed {
				t.Fatalf("round %d: pack %s not sealed after recovery (%v)", round, p, err)
			}
		}
		s.Close()
		t.Logf("round %d: %d acknowledged so far, %d blobs listed", round, len(acked), listed)
	}
}

var _ blob.Backend = (*Store)(nil)
