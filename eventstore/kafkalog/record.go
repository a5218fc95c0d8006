package kafkalog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// recordMagic starts every record value; it names the encoding's version.
// The value carries the fields an appender supplies; everything the log
// assigns (position, stream sequence, predecessor hash) is derived by the
// readers' fold, and the recording time is the record's Kafka timestamp.
//
//	value    = magic "psev1\x00" id tenant stream type version:u32
//	           messageKey correlationID causationID
//	           nmeta:u32 (key value){nmeta, sorted by key} data
//	string   = len:u32 bytes
//	data     = len:u32 bytes
//
// Integers are big-endian. The record key is tenant "\x00" stream, and the
// partition is FNV-1a-32(key) mod partitions (see partitionFor).
const recordMagic = "psev1\x00"

// Size caps for decoding records from the topic, which is outside input.
const (
	maxMetadata    = 256
	maxRecordValue = eventstore.MaxDataSize + 64<<10
	maxFieldLen    = 64 << 10
)

// nonceHeader carries the appending call's random nonce, so the appender can
// recognise its own record in the fold and learn the fold's verdict on it.
const nonceHeader = "ps-append"

// encodeEvent returns the record value of an event's appender-supplied fields.
func encodeEvent(e *eventstore.Event) []byte {
	n := len(recordMagic) + 4*12 + len(e.ID) + len(e.Tenant) + len(e.Stream) + len(e.Type) +
		len(e.MessageKey) + len(e.CorrelationID) + len(e.CausationID) + len(e.Data)
	keys := make([]string, 0, len(e.Metadata))
	for k, v := range e.Metadata {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, recordMagic...)
	for _, s := range []string{e.ID, e.Tenant, e.Stream, e.Type} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(e.Version))
	for _, s := range []string{e.MessageKey, e.CorrelationID, e.CausationID} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Metadata[k])
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// errMalformed marks a record value that is not an event.
var errMalformed = errors.New("kafkalog: malformed record")

// decodeEvent parses a record value. It never panics on hostile input and
// checks the decoded event as an appender's event would be checked.
func decodeEvent(b []byte) (eventstore.Event, error) {
	var e eventstore.Event
	if len(b) > maxRecordValue {
		return e, fmt.Errorf("%w: value of %d bytes exceeds %d", errMalformed, len(b), maxRecordValue)
	}
	if len(b) < len(recordMagic) || string(b[:len(recordMagic)]) != recordMagic {
		return e, fmt.Errorf("%w: unknown magic", errMalformed)
	}
	d := decoder{b: b[len(recordMagic):]}
	e.ID, e.Tenant, e.Stream, e.Type = d.str("id"), d.str("tenant"), d.str("stream"), d.str("type")
	version := d.u32("version")
	if version > 1<<31-1 {
		return e, fmt.Errorf("%w: version %d out of range", errMalformed, version)
	}
	e.Version = int(version)
	e.MessageKey, e.CorrelationID, e.CausationID = d.str("message key"), d.str("correlation id"), d.str("causation id")
	nmeta := d.u32("metadata count")
	if nmeta > maxMetadata {
		return e, fmt.Errorf("%w: %d metadata entries exceed %d", errMalformed, nmeta, maxMetadata)
	}
	if nmeta > 0 {
		e.Metadata = make(map[string]string, nmeta)
		prev := ""
		for i := range nmeta {
			k := d.str("metadata key")
			if i > 0 && k <= prev && d.err == nil {
				d.err = fmt.Errorf("%w: metadata keys not strictly sorted", errMalformed)
			}
			e.Metadata[k], prev = d.str("metadata value"), k
		}
	}
	e.Data = d.bytes("data", eventstore.MaxDataSize)
	if d.err != nil {
		return e, d.err
	}
	if len(d.b) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(d.b))
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return e, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) u32(what string) uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.err = fmt.Errorf("%w: truncated at %s", errMalformed, what)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) bytes(what string, max int) []byte {
	n := d.u32(what)
	if d.err != nil {
		return nil
	}
	if int64(n) > int64(max) || int64(n) > int64(len(d.b)) {
		d.err = fmt.Errorf("%w: %s of %d bytes does not fit", errMalformed, what, n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return v
}

func (d *decoder) str(what string) string { return string(d.bytes(what, maxFieldLen)) }

// digest identifies an event's appender-supplied content, to tell an
// idempotent retry (same digest) from a reused id (other digest).
func digest(value []byte) [32]byte { return sha256.Sum256(value) }

// recordKey is the Kafka record key of an event's stream.
func recordKey(tenant, stream string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(stream))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, stream...)
}

// partitionFor maps a record key to its partition. It is part of the log's
// format: changing it (or the partition count) moves streams.
func partitionFor(key []byte, partitions int32) int32 {
	h := fnv.New32a()
	h.Write(key)
	return int32(h.Sum32() % uint32(partitions))
}

// streamBalancer places each record on partitionFor(key): kafka-go's own
// balancers are either round-robin by default or hash differently, and the
// readers reject records found on another partition.
type streamBalancer struct{}

func (streamBalancer) Balance(msg kafka.Message, partitions ...int) int {
	want := int(partitionFor(msg.Key, int32(len(partitions))))
	return partitions[want]
}
