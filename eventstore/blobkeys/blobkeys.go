// Package blobkeys keeps the data keys of encrypted blobs (eventstore/
// cryptblob), one entry per plaintext reference, so that a blob's content
// can be destroyed for good by destroying its key (crypto-shredding). An
// entry names the ciphertext object in the blob store and holds the blob's
// data key wrapped with a key-encryption key (KEK); the key store never sees
// a plaintext data key, and a copy of it without the KEK reveals nothing.
//
// Erasing an entry replaces it with a tombstone that keeps the reference and
// the time of erasure, so that a read of an erased blob says "erased"
// (blob.ErrErased) rather than "lost" (blob.ErrNotFound), and removes the
// wrapped key bytes from the storage medium:
//
//   - OpenSQLite, the embedded store, runs with PRAGMA secure_delete=ON, so
//     SQLite overwrites deleted content with zeros, and checkpoints its
//     write-ahead log after every erasure (TRUNCATE), so that the page
//     images holding the old key do not linger in the WAL file. What the
//     file system or the disk keeps of overwritten blocks (journals,
//     copy-on-write snapshots, flash remapping, backups) is beyond what a
//     program can erase: operators who need that keep the data directory on
//     an encrypted volume and their backups within the retention period.
//   - OpenS3, the cluster's store shared by every gateway node, keeps one
//     small object per key, "<prefix>keys/<sha256>", and erases by
//     overwriting it with a tombstone. The key bytes are gone only if the
//     bucket keeps no earlier versions of an object: OpenS3 asks the bucket
//     for its versioning state and refuses a bucket on which versioning is
//     or was ever enabled (Enabled or Suspended) unless
//     S3Config.AllowVersioning says that the operator has made other
//     arrangements (a lifecycle rule expiring noncurrent versions at once).
//
// The conformance suite every Store passes is eventstore/blobkeys/keystest.
package blobkeys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Entry is the key store's record of one encrypted blob.
type Entry struct {
	// Cipher is the ciphertext object in the inner blob store.
	Cipher blob.Ref
	// WrappedKey is the blob's data key sealed with the KEK.
	WrappedKey []byte
	// KEK identifies the key-encryption key that wrapped WrappedKey, so
	// that a gateway holding several KEKs (after a rotation) picks the right
	// one and a gateway holding the wrong one says so instead of failing at
	// the authentication tag.
	KEK string
}

// Equal reports whether two entries are the same record.
func (e Entry) Equal(o Entry) bool {
	return e.Cipher == o.Cipher && e.KEK == o.KEK && bytes.Equal(e.WrappedKey, o.WrappedKey)
}

// Limits on an entry, checked before it is stored and after it is read, so
// that neither a caller nor a tampered store can make the other hold or
// parse more than a few hundred bytes per blob.
const (
	// MaxWrappedKey bounds Entry.WrappedKey.
	MaxWrappedKey = 512
	// MaxKEKID bounds Entry.KEK.
	MaxKEKID = 64
)

// Store keeps one entry per plaintext blob reference. Every method is safe
// for concurrent use, also by several processes or nodes over the same
// storage.
type Store interface {
	// Add records e as the entry of the plaintext blob plain and returns the
	// entry that is live for plain once Add returns: e when it was stored
	// (or an identical entry was there already, so that a retried Add is a
	// no-op), or the entry that was there before when that one differs. An
	// existing live entry is never replaced, so that concurrent puts of the
	// same content agree on one key and one ciphertext; the caller's own
	// ciphertext is then an orphan nobody can decrypt. A tombstone is
	// replaced: the same bytes may arrive again after their erasure (a
	// sender resends an old document) and must then be storable. Add
	// returns only when the entry is durable.
	Add(ctx context.Context, plain blob.Ref, e Entry) (Entry, error)
	// Get returns the live entry of plain; blob.ErrNotFound when plain was
	// never added (nor erased), and an *ErasedError, which matches
	// blob.ErrErased, when it was erased.
	Get(ctx context.Context, plain blob.Ref) (Entry, error)
	// Erase replaces the entry of plain with a tombstone and returns once
	// the tombstone is durable and the wrapped key is gone from the medium
	// as far as the store can see to it (see the package documentation).
	// Erase is idempotent and keeps the time of the first erasure. Erasing
	// a reference that was never added succeeds too and leaves a
	// tombstone, so that the erasure is final whatever it raced with:
	// reads of plain then report blob.ErrErased until an Add revives it.
	Erase(ctx context.Context, plain blob.Ref) error
	// Ping checks that the store is reachable; readiness probes call it.
	Ping(ctx context.Context) error
	// Close releases the store; Add and Erase queued before Close finish.
	Close() error
}

// ErasedError is the answer of Get for an erased entry. It matches
// blob.ErrErased under errors.Is.
type ErasedError struct {
	// SHA256 is the plaintext reference's hash.
	SHA256 string
	// At is when the entry was first erased.
	At time.Time
}

func (e *ErasedError) Error() string {
	return fmt.Sprintf("%v: %s (key destroyed %s)", blob.ErrErased, e.SHA256, e.At.UTC().Format(time.RFC3339))
}

// Unwrap makes the error match blob.ErrErased.
func (e *ErasedError) Unwrap() error { return blob.ErrErased }

// ErrClosed is an Add or Erase after Close.
var ErrClosed = errors.New("blobkeys: store closed")

// errBadEntry starts the refusal of a malformed entry.
var errBadEntry = errors.New("blobkeys: malformed entry")

// validEntry checks an entry before it is stored or after it was read.
func validEntry(e Entry) error {
	if err := blob.ValidRef(e.Cipher); err != nil {
		return fmt.Errorf("%w: ciphertext reference: %w", errBadEntry, err)
	}
	if len(e.WrappedKey) == 0 || len(e.WrappedKey) > MaxWrappedKey {
		return fmt.Errorf("%w: wrapped key of %d bytes (1 to %d)", errBadEntry, len(e.WrappedKey), MaxWrappedKey)
	}
	if e.KEK == "" || len(e.KEK) > MaxKEKID {
		return fmt.Errorf("%w: KEK id of %d bytes (1 to %d)", errBadEntry, len(e.KEK), MaxKEKID)
	}
	return nil
}
