package integrity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// fixedKey makes signatures reproducible (Ed25519 is deterministic).
func fixedKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)) }

func testHeads() []Head {
	return []Head{
		{LogID: "0123abcd", Partition: 0, Size: 8, Root: [32]byte{1, 2, 3}},
		{LogID: "0123abcd", Partition: 1, Size: 0, Root: emptyRoot},
	}
}

func TestSignParseHeads(t *testing.T) {
	key := fixedKey()
	text, err := SignHeads(key, testHeads())
	if err != nil {
		t.Fatal(err)
	}
	// The tlog-checkpoint form: origin, size, root, blank line, signature.
	first, _, _ := strings.Cut(string(text), "— ")
	if want := "poststelle/0123abcd/p0\n8\nAQIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"; first != want {
		t.Fatalf("note starts %q, want %q", first, want)
	}
	got, err := ParseHeads(text, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != testHeads()[0] || got[1] != testHeads()[1] {
		t.Fatalf("parsed %+v", got)
	}
	// The note package itself accepts each note with the same key.
	notes, _ := splitNotes(text)
	vkey, _ := note.NewEd25519VerifierKey("poststelle/0123abcd/p1", key.Public().(ed25519.PublicKey))
	v, _ := note.NewVerifier(vkey)
	if _, err := note.Open(notes[1], note.VerifierList(v)); err != nil {
		t.Fatalf("note.Open: %v", err)
	}
}

func TestParseHeadsRefuses(t *testing.T) {
	key := fixedKey()
	text, _ := SignHeads(key, testHeads()[:1])
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		name  string
		text  []byte
		key   any
		want  string
		isKey bool
	}{
		{"another key", text, other.Public(), "no signature of key", true},
		{"size changed", bytes.Replace(text, []byte("\n8\n"), []byte("\n9\n"), 1), key.Public(), "invalid", true},
		{"origin changed", bytes.Replace(text, []byte("/p0\n"), []byte("/p1\n"), 1), key.Public(), "no signature", true},
		{"not ed25519", text, ec.Public(), "Ed25519", false},
		{"empty", nil, key.Public(), "empty", false},
		{"no signature", []byte("poststelle/x/p0\n1\nAA==\n\n"), key.Public(), "without a signature", false},
		{"foreign origin", bytes.Replace(text, []byte("poststelle/"), []byte("example.org/"), 1), key.Public(), "not the origin", false},
		{"no partition", bytes.Replace(text, []byte("/p0\n"), []byte("/q0\n"), 1), key.Public(), "not the origin", false},
		{"too large", bytes.Repeat([]byte("a\n"), MaxHeadFile), key.Public(), "exceeds", false},
	}
	for _, tc := range cases {
		_, err := ParseHeads(tc.text, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if tc.isKey != errors.Is(err, ErrHeadKey) {
			t.Errorf("%s: ErrHeadKey %v, want %v", tc.name, errors.Is(err, ErrHeadKey), tc.isKey)
		}
	}
}

// A witness may add its own signature line; the head still parses.
func TestParseHeadsCosigned(t *testing.T) {
	key := fixedKey()
	text, _ := SignHeads(key, testHeads()[:1])
	skey, _, _ := note.GenerateKey(rand.Reader, "witness.example")
	ws, _ := note.NewSigner(skey)
	vkey, _ := note.NewEd25519VerifierKey("poststelle/0123abcd/p0", key.Public().(ed25519.PublicKey))
	v, _ := note.NewVerifier(vkey)
	n, err := note.Open(text, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, ws)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(cosigned), "— ") != 2 {
		t.Fatalf("want two signature lines:\n%s", cosigned)
	}
	both := append(cosigned, cosigned...)
	got, err := ParseHeads(both, key.Public())
	if err != nil || len(got) != 2 {
		t.Fatalf("%d heads, %v", len(got), err)
	}
}

func FuzzParseHeads(f *testing.F) {
	key := fixedKey()
	text, _ := SignHeads(key, testHeads())
	f.Add(text)
	f.Add([]byte("poststelle/x/p0\n1\nAA==\n\n— poststelle/x/p0 AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		heads, err := ParseHeads(b, key.Public())
		if err != nil {
			return
		}
		// Whatever parses re-signs to a file that parses to the same heads.
		again, err := SignHeads(key, heads)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseHeads(again, key.Public())
		if err != nil || len(back) != len(heads) {
			t.Fatalf("re-signed heads do not parse: %v", err)
		}
		for i := range back {
			if back[i] != heads[i] {
				t.Fatalf("head %d changed: %+v → %+v", i, heads[i], back[i])
			}
		}
	})
}
