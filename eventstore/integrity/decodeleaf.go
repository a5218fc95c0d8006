package integrity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// MaxLeaf caps a leaf DecodeLeaf reads: an event's payload is small (the
// bytes of a message are blobs), so this is generous.
const MaxLeaf = 16 << 20

// ErrLeaf is wrapped when bytes are no leaf encoding.
var ErrLeaf = errors.New("integrity: not a leaf encoding")

// DecodeLeaf is the inverse of EncodeLeaf: it reads the event back from its
// canonical bytes, so that whoever holds a leaf and its inclusion proof
// knows exactly which event the log vouches for. It refuses anything that
// EncodeLeaf would not have written (wrong magic, truncation, trailing
// bytes, metadata keys out of order or repeated).
func DecodeLeaf(b []byte) (*eventstore.Event, error) {
	if len(b) > MaxLeaf {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrLeaf, len(b), MaxLeaf)
	}
	d := leafReader{b: b}
	if string(d.take(len(leafMagic))) != leafMagic {
		return nil, fmt.Errorf("%w: wrong magic (not %q)", ErrLeaf, leafMagic[:len(leafMagic)-1])
	}
	e := &eventstore.Event{}
	e.Position.Partition = int32(d.u32())
	e.Position.Offset = int64(d.u64())
	copy(e.PrevHash[:], d.take(32))
	e.RecordedAt = time.Unix(0, int64(d.u64())).UTC()
	e.ID, e.Tenant, e.Stream, e.Type = d.str(), d.str(), d.str(), d.str()
	e.StreamSeq = int64(d.u64())
	e.Version = int(int32(d.u32()))
	e.MessageKey, e.CorrelationID, e.CausationID = d.str(), d.str(), d.str()
	n := d.u32()
	if d.err == nil && int64(n)*8 > int64(len(d.b)) {
		d.err = errors.New("more metadata entries than bytes")
	}
	if n > 0 && d.err == nil {
		e.Metadata = make(map[string]string, n)
		prev := ""
		for i := uint32(0); i < n && d.err == nil; i++ {
			k, v := d.str(), d.str()
			if i > 0 && k <= prev {
				d.err = fmt.Errorf("metadata key %q out of order", k)
			}
			prev = k
			e.Metadata[k] = v
		}
	}
	e.Data = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the payload", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLeaf, d.err)
	}
	return e, nil
}

// leafReader takes big-endian fields off b; the first short read sets err
// and every later read returns zero values.
type leafReader struct {
	b   []byte
	err error
}

func (d *leafReader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errors.New("truncated")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *leafReader) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *leafReader) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *leafReader) bytes() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.err = errors.New("truncated")
		return nil
	}
	return append([]byte(nil), d.take(int(n))...)
}

func (d *leafReader) str() string { return string(d.bytes()) }
