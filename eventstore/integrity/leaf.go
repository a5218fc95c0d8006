// Package integrity makes the event log tamper-evident and provable.
//
// Every partition of the log is a hash chain and a Merkle tree in the style of
// RFC 9162 (Certificate Transparency v2) and Go's sumdb: each event is encoded
// canonically (EncodeLeaf), the encoding includes the leaf hash of the event
// before it, and the leaf hashes form a Merkle tree whose head the gateway signs
// (Checkpoint). An auditor holding only the gateway's public key can recompute
// every leaf and every signed head offline (Verifier), and can check that one
// message's events are in the log from an inclusion proof without seeing any
// other message (Prove, CheckProof).
//
// The encoding is specified in docs/wire-format.md; changing it breaks every
// existing log, so it is versioned by its magic prefix.
package integrity

import (
	"encoding/binary"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/poststelle/poststelle/eventstore"
)

// leafMagic starts every leaf encoding; it names the encoding's version.
const leafMagic = "poststelle-event-v1\x00"

// EncodeLeaf returns the canonical bytes of an event as hashed into the log.
// Every field of the event is covered, including its position, its recording
// time and the hash of its predecessor, so that altering, moving or dropping
// an event changes the hashes of everything after it.
func EncodeLeaf(e *eventstore.Event) []byte {
	n := len(leafMagic) + 32 + 8*5 + len(e.Data) + 16*10
	for k, v := range e.Metadata {
		n += len(k) + len(v) + 8
	}
	return appendLeaf(make([]byte, 0, n), e)
}

// appendLeaf appends EncodeLeaf(e) to b, so that a loop over many events
// can reuse one buffer.
func appendLeaf(b []byte, e *eventstore.Event) []byte {
	b = append(b, leafMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.Position.Partition))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Position.Offset))
	b = append(b, e.PrevHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.RecordedAt.UnixNano()))
	for _, s := range []string{e.ID, e.Tenant, e.Stream, e.Type} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.StreamSeq))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Version))
	for _, s := range []string{e.MessageKey, e.CorrelationID, e.CausationID} {
		b = appendString(b, s)
	}
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Metadata[k])
	}
	return appendBytes(b, e.Data)
}

// LeafHash is the Merkle leaf hash of an event: SHA-256(0x00 || EncodeLeaf(e)).
func LeafHash(e *eventstore.Event) [32]byte {
	return tlog.RecordHash(EncodeLeaf(e))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func recordHash(encoded []byte) [32]byte { return tlog.RecordHash(encoded) }
