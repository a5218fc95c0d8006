package cryptblob

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// KEK is the key-encryption key: an AES-256 key that wraps every blob's
// data key before the key store sees it. It lives in a file of its own,
// readable only by the gateway's user, apart from the data directory and
// its backups, so that a copy of the key store and the blobs without it
// reveals nothing.
//
// Its id, the first 8 bytes of the key's SHA-256 in hex, is recorded with
// every wrapped key, so that a gateway can tell which KEK wrapped an entry.
// Rotation (unwrapping every entry with the old KEK and wrapping it with a
// new one, keeping both meanwhile) is not implemented; the id is what it
// will need.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// kekFileMax caps a KEK file before it is read: 64 hex digits and a
// newline, with room for surrounding whitespace.
const kekFileMax = 256

// wrappedSize is the length of a wrapped data key: nonce, key, tag.
const wrappedSize = nonceSize + keySize + tagSize

// ErrUnknownKEK is an entry wrapped with a KEK this gateway does not hold.
var ErrUnknownKEK = errors.New("cryptblob: data key wrapped with another KEK")

// NewKEK makes a KEK of a 32-byte AES-256 key.
func NewKEK(key []byte) (KEK, error) {
	if len(key) != keySize {
		return KEK{}, fmt.Errorf("cryptblob: a KEK has %d bytes, not %d", keySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: KEK: %w", err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: KEK: %w", err)
	}
	sum := sha256.Sum256(key)
	return KEK{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// ID identifies the KEK in the key store's entries.
func (k KEK) ID() string { return k.id }

// LoadKEK reads a KEK file: the key as 64 hexadecimal digits (surrounding
// whitespace, such as a final newline, is ignored). Hex rather than raw
// bytes, so that the file survives being pasted into a secret store or a
// deployment template. A file that its group or others may read, or that
// is not a regular file, is refused: a key readable beyond the gateway's
// user protects nothing.
func LoadKEK(path string) (KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: open KEK file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: stat KEK file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return KEK{}, fmt.Errorf("cryptblob: KEK file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return KEK{}, fmt.Errorf("cryptblob: KEK file %s has mode %04o: group and others must not have access (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, kekFileMax+1))
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: read KEK file %s: %w", path, err)
	}
	if len(b) > kekFileMax {
		return KEK{}, fmt.Errorf("cryptblob: KEK file %s is larger than %d bytes", path, kekFileMax)
	}
	text := strings.TrimSpace(string(b))
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != keySize {
		// The content is not echoed: it may be a key in another encoding.
		return KEK{}, fmt.Errorf("cryptblob: KEK file %s does not hold %d hexadecimal digits", path, 2*keySize)
	}
	return NewKEK(key)
}

// CreateKEK makes a random KEK and writes it to path (mode 0600), refusing
// to overwrite an existing file: losing a KEK loses every blob it wrapped.
func CreateKEK(path string) (KEK, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return KEK{}, fmt.Errorf("cryptblob: random KEK: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return KEK{}, fmt.Errorf("cryptblob: create KEK file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return KEK{}, fmt.Errorf("cryptblob: write KEK file %s: %w", path, err)
	}
	return NewKEK(key)
}

var errNoKEK = errors.New("cryptblob: no KEK configured")

// wrapAAD binds a wrapped key to the plaintext it encrypts, so that an
// entry moved to another reference does not unwrap.
func wrapAAD(plain blob.Ref) []byte {
	aad := make([]byte, 0, 96)
	aad = append(aad, "poststelle-cryptblob-key-1\x00"...)
	aad = append(aad, plain.SHA256...)
	return binary.BigEndian.AppendUint64(aad, uint64(plain.Size))
}

// wrap seals a data key for plain: a random nonce, then the sealed key.
func (k KEK) wrap(dataKey []byte, plain blob.Ref) ([]byte, error) {
	if k.aead == nil {
		return nil, errNoKEK
	}
	out := make([]byte, nonceSize, wrappedSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("cryptblob: nonce: %w", err)
	}
	return k.aead.Seal(out, out[:nonceSize], dataKey, wrapAAD(plain)), nil
}

// unwrap opens a wrapped data key of plain.
func (k KEK) unwrap(wrapped []byte, plain blob.Ref) ([]byte, error) {
	if k.aead == nil {
		return nil, errNoKEK
	}
	if len(wrapped) != wrappedSize {
		return nil, fmt.Errorf("%w: %s: wrapped key of %d bytes, want %d", blob.ErrCorrupt, plain.SHA256, len(wrapped), wrappedSize)
	}
	key, err := k.aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD(plain))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: wrapped key fails authentication", blob.ErrCorrupt, plain.SHA256)
	}
	return key, nil
}
