package packblob

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// A record header: magic (4 bytes), SHA-256 (32), content size (8, little
// endian), CRC-32C of the 44 bytes before it (4). The CRC tells a header
// from the torn or zeroed bytes a crash can leave at a pack's end; the
// content is checked by its hash.
const headerSize = 48

const maxRecordSize = 1 << 40

var (
	magicBlob = [4]byte{'P', 'S', 'B', '1'}
	magicSeal = [4]byte{'P', 'S', 'S', '1'}
)

type recordKind int

const (
	kindBlob recordKind = iota + 1
	kindSeal
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadHeader = errors.New("not a record header")

type header struct {
	kind recordKind
	sum  [32]byte
	size int64 // content bytes; for a seal, the pack's number of blobs
}

func encodeHeader(kind recordKind, sum [32]byte, size int64) []byte {
	b := make([]byte, headerSize)
	m := magicBlob
	if kind == kindSeal {
		m = magicSeal
	}
	copy(b, m[:])
	copy(b[4:36], sum[:])
	binary.LittleEndian.PutUint64(b[36:44], uint64(size))
	binary.LittleEndian.PutUint32(b[44:48], crc32.Checksum(b[:44], castagnoli))
	return b
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, io.ErrUnexpectedEOF
	}
	if binary.LittleEndian.Uint32(b[44:48]) != crc32.Checksum(b[:44], castagnoli) {
		return header{}, fmt.Errorf("%w: checksum", errBadHeader)
	}
	var h header
	switch [4]byte(b[:4]) {
	case magicBlob:
		h.kind = kindBlob
	case magicSeal:
		h.kind = kindSeal
	default:
		return header{}, fmt.Errorf("%w: magic %q", errBadHeader, b[:4])
	}
	copy(h.sum[:], b[4:36])
	size := binary.LittleEndian.Uint64(b[36:44])
	if size > maxRecordSize {
		return header{}, fmt.Errorf("%w: size %d", errBadHeader, size)
	}
	h.size = int64(size)
	return h, nil
}

func readHeader(r io.ReaderAt, off int64) (header, error) {
	var b [headerSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return header{}, err
	}
	return decodeHeader(b[:])
}

func sealRecord(blobs int64) []byte {
	return encodeHeader(kindSeal, [32]byte{}, blobs)
}

// record is one indexed blob: its header starts at off.
type record struct {
	sum  [32]byte
	off  int64
	size int64
}

type walked struct {
	records []record
	end     int64 // offset after the last good record
	sealed  bool  // a seal that counts the records ends the pack
}

// walk reads the records of f from offset from, stopping at the first that
// is incomplete, has a bad header or, with hash, does not hash to its
// header. A seal counts only when from is 0, it counts every record before
// it and nothing follows it.
func walk(f *os.File, from int64, hash bool) (walked, error) {
	size, err := fileSize(f)
	if err != nil {
		return walked{}, err
	}
	w := walked{end: from}
	buf := make([]byte, 32<<10)
	for w.end+headerSize <= size {
		h, err := readHeader(f, w.end)
		if errors.Is(err, errBadHeader) {
			break
		}
		if err != nil {
			return w, err
		}
		if h.kind == kindSeal {
			w.sealed = from == 0 && w.end+headerSize == size && h.size == int64(len(w.records))
			if w.sealed {
				w.end += headerSize
			}
			break
		}
		if h.size > size-w.end-headerSize {
			break
		}
		if hash {
			good, err := hashes(f, w.end+headerSize, h, buf)
			if err != nil {
				return w, err
			}
			if !good {
				break
			}
		}
		w.records = append(w.records, record{sum: h.sum, off: w.end, size: h.size})
		w.end += headerSize + h.size
	}
	return w, nil
}

func hashes(f *os.File, off int64, h header, buf []byte) (bool, error) {
	d := sha256.New()
	if _, err := io.CopyBuffer(d, io.NewSectionReader(f, off, h.size), buf); err != nil {
		return false, err
	}
	return [32]byte(d.Sum(nil)) == h.sum, nil
}
