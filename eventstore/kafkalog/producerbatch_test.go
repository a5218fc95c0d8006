package kafkalog

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

func readRecordSet(t testing.TB, b []byte) kafka.RecordReader {
	t.Helper()
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(b)); err != nil {
		t.Fatalf("read record set: %v", err)
	}
	return rs.Records
}

// TestProducerBatchRoundTrip: what encodeProducerBatch writes, kafka-go
// reads back as one batch of the given producer, epoch and sequence, with
// the record's key, value, headers and time. (kfake, which the mirror tests
// produce to, checks the CRC.)
func TestProducerBatchRoundTrip(t *testing.T) {
	at := time.UnixMilli(1764700000123)
	for _, tc := range []struct {
		name       string
		key, value []byte
		seq        int32
	}{
		{"small", []byte("01J-stream"), []byte(`{"seq":7}`), 6},
		{"null key", nil, []byte("v"), 0},
		{"large value", []byte("k"), bytes.Repeat([]byte("x"), 70000), 1<<31 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeProducerBatch(1<<61+5, 0, tc.seq, at, tc.key, tc.value, []kafka.Header{{Key: seqHeader, Value: []byte("7")}})
			batches := recordBatches(readRecordSet(t, b))
			if len(batches) != 1 {
				t.Fatalf("%d batches", len(batches))
			}
			bt := batches[0]
			if bt.ProducerID != 1<<61+5 || bt.ProducerEpoch != 0 || bt.BaseSequence != tc.seq || bt.Attributes != 0 {
				t.Fatalf("batch producer %d epoch %d sequence %d attributes %d", bt.ProducerID, bt.ProducerEpoch, bt.BaseSequence, bt.Attributes)
			}
			r, err := bt.ReadRecord()
			if err != nil {
				t.Fatal(err)
			}
			key, _ := readBytes(r.Key, 1<<20)
			value, _ := readBytes(r.Value, 1<<20)
			if !bytes.Equal(key, tc.key) || (tc.key == nil) != (r.Key == nil) || !bytes.Equal(value, tc.value) {
				t.Errorf("record key %q value of %d bytes", key, len(value))
			}
			if !r.Time.Equal(at) || len(r.Headers) != 1 || r.Headers[0].Key != seqHeader || string(r.Headers[0].Value) != "7" {
				t.Errorf("record time %v headers %v", r.Time, r.Headers)
			}
			if _, err := bt.ReadRecord(); err != io.EOF {
				t.Errorf("a second record: %v", err)
			}
		})
	}
}

// TestLastMirrored: the newest record's seq header, and the producer
// sequence after it when the mirror's producer wrote it; 0 after a record of
// another producer; errors for a record without the header and for a fetch
// that stops short of the newest record.
func TestLastMirrored(t *testing.T) {
	const pid = 1<<61 + 9
	seqH := func(v string) []kafka.Header { return []kafka.Header{{Key: seqHeader, Value: []byte(v)}} }
	ours := encodeProducerBatch(pid, 0, 41, time.Now(), []byte("k"), []byte("v"), seqH("17"))
	got, err := lastMirrored(readRecordSet(t, ours), pid, 0)
	if err != nil || got != (mirrorTail{seq: 17, next: 42}) {
		t.Errorf("our record: %+v, %v", got, err)
	}
	wrap := encodeProducerBatch(pid, 0, 1<<31-1, time.Now(), []byte("k"), []byte("v"), seqH("18"))
	if got, err := lastMirrored(readRecordSet(t, wrap), pid, 0); err != nil || got != (mirrorTail{seq: 18, next: 0}) {
		t.Errorf("the largest sequence: %+v, %v (want the next one to wrap to 0)", got, err)
	}
	other := encodeProducerBatch(pid+1, 0, 41, time.Now(), []byte("k"), []byte("v"), seqH("17"))
	if got, err := lastMirrored(readRecordSet(t, other), pid, 0); err != nil || got != (mirrorTail{seq: 17}) {
		t.Errorf("another producer's record: %+v, %v", got, err)
	}
	var legacy bytes.Buffer
	rs := protocol.RecordSet{Version: 2, Records: protocol.NewRecordReader(
		protocol.Record{Offset: 0, Value: protocol.NewBytes([]byte("a")), Headers: seqH("3")},
		protocol.Record{Offset: 1, Value: protocol.NewBytes([]byte("b")), Headers: seqH("4")})}
	if _, err := rs.WriteTo(&legacy); err != nil {
		t.Fatal(err)
	}
	if got, err := lastMirrored(readRecordSet(t, legacy.Bytes()), pid, 1); err != nil || got != (mirrorTail{seq: 4}) {
		t.Errorf("records without a producer: %+v, %v", got, err)
	}
	if _, err := lastMirrored(readRecordSet(t, legacy.Bytes()), pid, 2); err == nil {
		t.Error("a fetch that ends before the newest record was accepted")
	}
	bad := encodeProducerBatch(pid, 0, 1, time.Now(), nil, []byte("v"), seqH("x"))
	if _, err := lastMirrored(readRecordSet(t, bad), pid, 0); err == nil {
		t.Error("a record without a valid seq header was accepted")
	}
	if _, err := lastMirrored(nil, pid, 0); err == nil {
		t.Error("an empty fetch was accepted")
	}
}

// FuzzLastMirrored: whatever a broker sends as the newest record of a mirror
// topic (batch fields, offsets, the seq header) gives a tail or an error,
// never a panic, and a tail only with a positive seq and a valid sequence.
func FuzzLastMirrored(f *testing.F) {
	f.Add(int64(1<<61), int32(0), int64(0), int64(0), []byte("1"), int64(0))
	f.Add(int64(1<<61), int32(1<<31-1), int64(5), int64(5), []byte("17"), int64(5))
	f.Add(int64(1<<61), int32(9), int64(7), int64(3), []byte("-5"), int64(2))
	f.Add(int64(-1), int32(-1), int64(0), int64(1<<40), []byte("99999999999999999999"), int64(1<<40))
	f.Fuzz(func(t *testing.T, pid int64, baseSeq int32, baseOffset, offset int64, header []byte, want int64) {
		rr := &protocol.RecordBatch{ProducerID: pid, BaseSequence: baseSeq, BaseOffset: baseOffset,
			Records: protocol.NewRecordReader(protocol.Record{Offset: offset, Value: protocol.NewBytes([]byte("v")),
				Headers: []protocol.Header{{Key: seqHeader, Value: header}}})}
		tail, err := lastMirrored(rr, 1<<61, want)
		if err == nil && (tail.seq <= 0 || tail.next < 0) {
			t.Fatalf("accepted a tail %+v", tail)
		}
	})
}
