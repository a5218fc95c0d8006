package blobkeys_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/blobkeys/keystest"
)

func openSQLite(t *testing.T, path string) *blobkeys.SQLite {
	t.Helper()
	s, err := blobkeys.OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("open key store: %v", err)
	}
	return s
}

// TestConformanceSQLite runs the suite on the embedded store; two stores
// opened on one file play two processes sharing it.
func TestConformanceSQLite(t *testing.T) {
	keystest.Run(t, func(t *testing.T) keystest.Open {
		path := filepath.Join(t.TempDir(), "keys.db")
		return func(t *testing.T) blobkeys.Store { return openSQLite(t, path) }
	})
}

// TestErasedKeyLeavesNoTrace: after erasures the wrapped keys are in
// neither the database file nor its WAL, while the keys not erased are
// found by the same search (so the search would see them).
func TestErasedKeyLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	s := openSQLite(t, path)
	ctx := context.Background()
	type added struct {
		ref blob.Ref
		e   blobkeys.Entry
	}
	var all []added
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 50 {
				a := added{keystest.Ref(), keystest.Entry()}
				if _, err := s.Add(ctx, a.ref, a.e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, a := range all {
		if i%2 == 0 {
			if err := s.Erase(ctx, a.ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string) {
		files := readFiles(t, path, path+"-wal")
		for i, a := range all {
			found := bytes.Contains(files, a.e.WrappedKey)
			if i%2 == 0 && found {
				t.Fatalf("%s: the wrapped key of erased entry %d is still in the files", when, i)
			}
			if i%2 == 1 && !found {
				t.Fatalf("%s: the wrapped key of live entry %d is not found: the search is blind", when, i)
			}
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

func readFiles(t *testing.T, paths ...string) []byte {
	t.Helper()
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "keys.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Add(context.Background(), keystest.Ref(), keystest.Entry()); !errors.Is(err, blobkeys.ErrClosed) {
		t.Fatalf("add after close: %v, want ErrClosed", err)
	}
	if err := s.Erase(context.Background(), keystest.Ref()); !errors.Is(err, blobkeys.ErrClosed) {
		t.Fatalf("erase after close: %v, want ErrClosed", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("ping of a closed store succeeded")
	}
}

func TestRefusesForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openSQLite(t, path)
	s.Close()
	db := openRaw(t, path)
	if _, err := db.ExecContext(context.Background(), `UPDATE meta SET value = 'poststelle-blobkeys-9' WHERE key = 'format'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := blobkeys.OpenSQLite(context.Background(), path, nil); err == nil || !strings.Contains(err.Error(), "format") {
		t.Fatalf("open of another format: %v", err)
	}
}

func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// crashEnv makes the test binary the crashing child of TestCrashKeepsAcknowledged.
const crashEnv = "BLOBKEYS_CRASH_CHILD"

// TestCrashKeepsAcknowledged kills a process that adds and erases keys
// (SIGKILL, no Close, no flush) and checks that everything it reported
// done is there after a reopen: Add and Erase return only when durable.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type done struct {
		op, sum, cipher string
	}
	var acked []done
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var d done
		if _, err := fmt.Sscan(sc.Text(), &d.op, &d.sum, &d.cipher); err == nil {
			acked = append(acked, d)
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want death by SIGKILL", err)
	}
	if len(acked) < 100 {
		t.Fatalf("child acknowledged only %d operations", len(acked))
	}
	final := map[string]done{}
	for _, d := range acked {
		final[d.sum] = d
	}
	s := openSQLite(t, path)
	defer s.Close()
	for _, d := range final {
		e, err := s.Get(context.Background(), blob.Ref{SHA256: d.sum})
		switch d.op {
		case "erasing":
			// Killed during the erase: either outcome is correct.
			if err != nil && !errors.Is(err, blob.ErrErased) {
				t.Fatalf("entry %s, its erase interrupted: %v", d.sum[:8], err)
			}
		case "add":
			if err != nil || e.Cipher.SHA256 != d.cipher {
				t.Fatalf("acknowledged add of %s after the crash: %+v %v", d.sum[:8], e.Cipher, err)
			}
		case "erase":
			if !errors.Is(err, blob.ErrErased) {
				t.Fatalf("acknowledged erase of %s after the crash: %v", d.sum[:8], err)
			}
		}
	}
	t.Logf("%d acknowledged operations survived the crash", len(acked))
}

// crashChild adds from 8 goroutines, erasing every third, prints each
// acknowledged operation (and each erase it starts) and kills itself
// mid-stream.
func crashChild(path string) {
	s, err := blobkeys.OpenSQLite(context.Background(), path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var n int
	report := func(op string, ref blob.Ref, cipher string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("%s %s %s\n", op, ref.SHA256, cipher)
		if n++; n == 300 {
			os.Stdout.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ref, e := keystest.Ref(), keystest.Entry()
				if _, err := s.Add(context.Background(), ref, e); err != nil {
					continue
				}
				report("add", ref, e.Cipher.SHA256)
				if i%3 == 0 {
					report("erasing", ref, "-")
					if err := s.Erase(context.Background(), ref); err == nil {
						report("erase", ref, "-")
					}
				}
			}
		})
	}
	wg.Wait()
}
