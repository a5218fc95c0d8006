package cryptblob

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKEKFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	created, err := CreateKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %v %v, want 0600", fi.Mode(), err)
	}
	loaded, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID() != created.ID() || len(created.ID()) != 16 {
		t.Fatalf("ids %q and %q", created.ID(), loaded.ID())
	}
	if _, err := CreateKEK(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over an existing KEK: %v, want ErrExist", err)
	}
	// A key wrapped by one loads and unwraps with the other.
	ref := refOf([]byte("Zugang"))
	w, err := created.wrap(fixedKey, ref)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := loaded.unwrap(w, ref); err != nil || !bytes.Equal(k, fixedKey) {
		t.Fatalf("unwrap with the loaded KEK: %v", err)
	}
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hexKey := strings.Repeat("ab", 32)
	tests := []struct {
		name, path, want string
	}{
		{"hex with whitespace", write("ws", "  "+hexKey+"\r\n", 0o600), ""},
		{"read-only owner", write("ro", hexKey, 0o400), ""},
		{"group readable", write("g", hexKey, 0o640), "mode 0640"},
		{"world readable", write("w", hexKey, 0o604), "mode 0604"},
		{"short", write("short", hexKey[:62], 0o600), "64 hexadecimal digits"},
		{"raw bytes", write("raw", strings.Repeat("\x01", 32), 0o600), "64 hexadecimal digits"},
		{"huge", write("huge", strings.Repeat("a", kekFileMax+1), 0o600), "larger than"},
		{"missing", filepath.Join(dir, "nope"), "open KEK file"},
		{"directory", dir, "not a regular file"},
	}
	os.Chmod(dir, 0o700)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKEK(tc.path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), hexKey[:16]) {
				t.Fatalf("the error reveals key material: %v", err)
			}
		})
	}
	if _, err := NewKEK(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte KEK was accepted")
	}
}

func TestUnwrapRefuses(t *testing.T) {
	k := testKEK(t)
	ref := refOf([]byte("Zugang"))
	w, _ := k.wrap(fixedKey, ref)
	other := ref
	other.Size++
	cases := map[string]func() error{
		"other size in the ref": func() error { _, err := k.unwrap(w, other); return err },
		"flipped":               func() error { _, err := k.unwrap(flip(w, 20), ref); return err },
		"short":                 func() error { _, err := k.unwrap(w[:len(w)-1], ref); return err },
		"empty":                 func() error { _, err := k.unwrap(nil, ref); return err },
		"another KEK":           func() error { _, err := testKEK(t).unwrap(w, ref); return err },
	}
	for name, fn := range cases {
		if err := fn(); err == nil {
			t.Errorf("%s: unwrapped", name)
		}
	}
}
