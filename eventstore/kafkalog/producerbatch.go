package kafkalog

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/segmentio/kafka-go"
)

// crc32c is the CRC-32C (Castagnoli) table a v2 record batch's checksum
// uses.
var crc32c = crc32.MakeTable(crc32.Castagnoli)

// encodeProducerBatch returns a record set of one v2 record batch holding
// one record, written as sequence seq of the idempotent producer
// (producerID, epoch), with its 4-byte size prefix as a raw produce request
// carries it. kafka-go's own encoder always writes the "no producer" id, so
// the mirror encodes its batches here.
//
// The layout is Apache Kafka's message format v2 (documentation, "5.3.1
// Record Batch", "5.3.2 Record", "5.3.2.1 Record Header"; the producer id,
// epoch and base sequence are KIP-98's): integers big-endian, varints
// zig-zag encoded, the CRC-32C covering everything from the attributes to
// the batch's end. Attributes 0: no compression, CreateTime, not
// transactional, not a control batch.
func encodeProducerBatch(producerID int64, epoch int16, seq int32, t time.Time, key, value []byte, headers []kafka.Header) []byte {
	var rec []byte
	rec = append(rec, 0)              // record attributes (unused)
	rec = binary.AppendVarint(rec, 0) // timestamp delta
	rec = binary.AppendVarint(rec, 0) // offset delta
	rec = appendVarBytes(rec, key)    // key (-1: null)
	rec = appendVarBytes(rec, value)  // value
	rec = binary.AppendVarint(rec, int64(len(headers)))
	for _, h := range headers {
		rec = appendVarBytes(rec, []byte(h.Key))
		rec = appendVarBytes(rec, h.Value)
	}

	ms := t.UnixMilli()
	if t.IsZero() {
		ms = time.Now().UnixMilli()
	}
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0)          // record set size, set below
	b = binary.BigEndian.AppendUint64(b, 0)          // base offset (the broker assigns it)
	b = binary.BigEndian.AppendUint32(b, 0)          // batch length, set below
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // partition leader epoch: -1
	b = append(b, 2)                                 // magic
	crcAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0) // crc, set below
	attrAt := len(b)
	b = binary.BigEndian.AppendUint16(b, 0)          // attributes
	b = binary.BigEndian.AppendUint32(b, 0)          // last offset delta
	b = binary.BigEndian.AppendUint64(b, uint64(ms)) // base timestamp
	b = binary.BigEndian.AppendUint64(b, uint64(ms)) // max timestamp
	b = binary.BigEndian.AppendUint64(b, uint64(producerID))
	b = binary.BigEndian.AppendUint16(b, uint16(epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(seq)) // base sequence
	b = binary.BigEndian.AppendUint32(b, 1)           // records
	b = binary.AppendVarint(b, int64(len(rec)))
	b = append(b, rec...)

	binary.BigEndian.PutUint32(b[0:], uint32(len(b)-4))
	binary.BigEndian.PutUint32(b[4+8:], uint32(len(b)-4-8-4))
	binary.BigEndian.PutUint32(b[crcAt:], crc32.Checksum(b[attrAt:], crc32c))
	return b
}

// appendVarBytes appends a varint length and the bytes; nil is length -1.
func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}
