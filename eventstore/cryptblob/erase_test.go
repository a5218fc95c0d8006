package cryptblob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
)

// memFixture is a fixture over one memBackend, whose content tests inspect.
func memFixture(t *testing.T) (*fixture, *memBackend) {
	b := &memBackend{m: &blob.Memory{}}
	return &fixture{inner: func(*testing.T) blob.Backend { return b }, keys: filepath.Join(t.TempDir(), "keys.db"), kek: testKEK(t)}, b
}

// document is recognisable plaintext over several chunks.
func document(n int) []byte {
	return bytes.Repeat([]byte("Bescheid über die Baugenehmigung, Aktenzeichen 4711/26. "), n)
}

// readPaths are every way to read a blob, each returning its error.
var readPaths = map[string]func(s *Store, ref blob.Ref) error{
	"Open": func(s *Store, ref blob.Ref) error {
		rc, err := s.Open(context.Background(), ref)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		return err
	},
	"ReadAll": func(s *Store, ref blob.Ref) error { _, err := s.ReadAll(context.Background(), ref, 0); return err },
	"Verify":  func(s *Store, ref blob.Ref) error { return s.Verify(context.Background(), ref) },
	"Stat":    func(s *Store, ref blob.Ref) error { _, err := s.Stat(context.Background(), ref); return err },
}

func TestEraseEveryReadPath(t *testing.T) {
	f, mem := memFixture(t)
	s, other := f.open(t), f.open(t)
	ctx := context.Background()
	doc := document(3000) // about 170 KiB: three chunks
	ref, err := s.PutBytes(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := s.keys.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Erase(ctx, ref); err != nil {
		t.Fatalf("erase: %v", err)
	}
	for _, st := range []*Store{s, other} {
		for name, read := range readPaths {
			if err := read(st, ref); !errors.Is(err, blob.ErrErased) || errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s after erase: %v, want ErrErased", name, err)
			}
		}
	}
	if err := s.Erase(ctx, ref); err != nil {
		t.Fatalf("second erase: %v", err)
	}
	ct, ok := mem.m.Bytes(entry.Cipher)
	if !ok {
		t.Fatal("the inner store lost the ciphertext")
	}
	if bytes.Contains(ct, doc[:40]) || bytes.Contains(ct, []byte("Baugenehmigung")) {
		t.Fatal("the ciphertext contains plaintext")
	}
	// The same bytes arriving again are stored afresh.
	again, err := s.PutBytes(ctx, doc)
	if err != nil || again != ref {
		t.Fatalf("put after erase: %+v %v", again, err)
	}
	if got, err := other.ReadAll(ctx, ref, 0); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("read after the revival: %v", err)
	}
}

func TestEraseUnknownLeavesTombstone(t *testing.T) {
	f, _ := memFixture(t)
	s := f.open(t)
	ref := refOf([]byte("never stored"))
	if err := s.Erase(context.Background(), ref); err != nil {
		t.Fatalf("erase of an unknown blob: %v", err)
	}
	if _, err := s.Stat(context.Background(), ref); !errors.Is(err, blob.ErrErased) {
		t.Fatalf("stat after erasing an unknown blob: %v, want ErrErased", err)
	}
	if err := s.Erase(context.Background(), blob.Ref{SHA256: "../x"}); !errors.Is(err, blob.ErrBadRef) {
		t.Fatalf("erase of a malformed reference: %v", err)
	}
}

// TestLegacyPlaintext: blobs from before encryption at rest are read from
// the inner store as they are and refuse erasure; so does one that was
// stored in plaintext and later encrypted too.
func TestLegacyPlaintext(t *testing.T) {
	f, mem := memFixture(t)
	s := f.open(t)
	ctx := context.Background()
	old := document(10)
	ref, err := mem.PutBytes(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	for name, read := range readPaths {
		if err := read(s, ref); err != nil {
			t.Errorf("%s of a legacy blob: %v", name, err)
		}
	}
	if got, err := s.ReadAll(ctx, ref, 0); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("legacy read: %v", err)
	}
	if err := s.Erase(ctx, ref); !errors.Is(err, blob.ErrNotErasable) {
		t.Fatalf("erase of a legacy blob: %v, want ErrNotErasable", err)
	}
	// Stored again now that encryption is on: an entry appears, but the
	// plaintext copy still makes it unerasable, and it stays readable.
	if _, err := s.Put(ctx, bytes.NewReader(old), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.keys.Get(ctx, ref); err != nil {
		t.Fatalf("no key entry after the encrypted put: %v", err)
	}
	if err := s.Erase(ctx, ref); !errors.Is(err, blob.ErrNotErasable) {
		t.Fatalf("erase of a blob with a plaintext copy: %v, want ErrNotErasable", err)
	}
	if got, err := s.ReadAll(ctx, ref, 0); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("read after a refused erase: %v", err)
	}
	if _, err := s.ReadAll(ctx, refOf([]byte("absent")), 0); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("read of an absent blob: %v, want ErrNotFound", err)
	}
}

// TestDedupe: PutBytes of stored content writes nothing; a streamed Put
// writes an orphan ciphertext but keeps the first entry.
func TestDedupe(t *testing.T) {
	f, mem := memFixture(t)
	s := f.open(t)
	ctx := context.Background()
	doc := document(50)
	ref, err := s.PutBytes(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.keys.Get(ctx, ref)
	puts := mem.putCount()
	if _, err := s.PutBytes(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if mem.putCount() != puts {
		t.Fatal("PutBytes of stored content wrote a ciphertext")
	}
	if _, err := s.Put(ctx, bytes.NewReader(doc), 0); err != nil {
		t.Fatal(err)
	}
	if mem.putCount() != puts+1 {
		t.Fatalf("streamed put wrote %d ciphertexts, want 1", mem.putCount()-puts)
	}
	if e, _ := s.keys.Get(ctx, ref); !e.Equal(first) {
		t.Fatal("a repeated put replaced the key entry")
	}
	if got, err := s.ReadAll(ctx, ref, 0); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("read after the orphaning put: %v", err)
	}
}

func TestWrongKEK(t *testing.T) {
	f, _ := memFixture(t)
	s := f.open(t)
	ctx := context.Background()
	doc := document(20)
	ref, err := s.PutBytes(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	stranger := &fixture{inner: f.inner, keys: f.keys, kek: testKEK(t)}
	other := stranger.open(t)
	for name, read := range readPaths {
		if name == "Stat" {
			continue // sizes need no key
		}
		if err := read(other, ref); !errors.Is(err, ErrUnknownKEK) {
			t.Errorf("%s with another KEK: %v, want ErrUnknownKEK", name, err)
		}
	}
	// An entry claiming the other KEK's id but wrapped with the first (a
	// forged or mixed-up id) fails authentication instead of decrypting.
	e, _ := s.keys.Get(ctx, ref)
	e.KEK = stranger.kek.ID()
	if err := other.keys.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := other.keys.Add(ctx, ref, e); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ReadAll(ctx, ref, 0); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("read with a KEK that does not unwrap: %v, want ErrCorrupt", err)
	}
}

// TestWrappedKeyBoundToRef: an entry copied to another reference does not
// unwrap there.
func TestWrappedKeyBoundToRef(t *testing.T) {
	f, _ := memFixture(t)
	s := f.open(t)
	ctx := context.Background()
	a, _ := s.PutBytes(ctx, []byte("Antrag A"))
	b, _ := s.PutBytes(ctx, []byte("Antrag B"))
	ea, _ := s.keys.Get(ctx, a)
	if err := s.keys.Erase(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.keys.Add(ctx, b, ea); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAll(ctx, b, 0); !errors.Is(err, blob.ErrCorrupt) || !strings.Contains(err.Error(), "wrapped key") {
		t.Fatalf("read of a moved entry: %v, want the wrapped key to fail", err)
	}
}

func TestZeroKEKRefuses(t *testing.T) {
	keys := openKeys(t, filepath.Join(t.TempDir(), "keys.db"))
	s := New(&memBackend{m: &blob.Memory{}}, keys, KEK{}, nil)
	if _, err := s.PutBytes(context.Background(), []byte("x")); !errors.Is(err, errNoKEK) {
		t.Fatalf("put without a KEK: %v", err)
	}
}

// failingKeys is a key store that is down.
type failingKeys struct{ blobkeys.Store }

var errKeysDown = errors.New("key store down")

func (failingKeys) Get(context.Context, blob.Ref) (blobkeys.Entry, error) {
	return blobkeys.Entry{}, errKeysDown
}

func (failingKeys) Add(context.Context, blob.Ref, blobkeys.Entry) (blobkeys.Entry, error) {
	return blobkeys.Entry{}, errKeysDown
}

func (failingKeys) Ping(context.Context) error { return errKeysDown }

// TestKeyStoreDown: with the key store unreachable nothing is read from
// the inner store as if it were legacy plaintext, and no put succeeds.
func TestKeyStoreDown(t *testing.T) {
	mem := &memBackend{m: &blob.Memory{}}
	s := New(mem, failingKeys{}, testKEK(t), nil)
	ctx := context.Background()
	ref, _ := mem.PutBytes(ctx, []byte("legacy"))
	for name, read := range readPaths {
		if err := read(s, ref); !errors.Is(err, errKeysDown) {
			t.Errorf("%s with the key store down: %v", name, err)
		}
	}
	if _, err := s.Put(ctx, strings.NewReader("new"), 0); !errors.Is(err, errKeysDown) {
		t.Fatalf("put with the key store down: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, errKeysDown) {
		t.Fatalf("ping: %v", err)
	}
}
