package pades

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// maxRatio bounds how much a Flate stream may expand: hostile files pack
// gigabytes of zeros into a few kilobytes.
const maxRatio = 1000

// StreamData reads and decodes a stream's data, as the file stood at limit
// (for an indirect /Length). Only FlateDecode (with PNG predictors) is
// decoded: signature verification needs nothing else.
func (d *Document) StreamData(s *Stream, limit int64) ([]byte, error) {
	lo, err := d.Resolve(s.Dict["Length"], limit)
	if err != nil {
		return nil, fmt.Errorf("stream length: %w", err)
	}
	n, ok := lo.(int64)
	if !ok || n < 0 {
		return nil, malformed("stream at %d without a usable /Length", s.Offset)
	}
	if n > int64(d.lim.MaxStreamBytes) {
		return nil, malformed("stream at %d of %d bytes, more than %d", s.Offset, n, d.lim.MaxStreamBytes)
	}
	if s.Offset+n > d.size {
		return nil, malformed("stream at %d runs past the end of the file", s.Offset)
	}
	raw, _, err := d.readAt(s.Offset, int(n))
	if err != nil {
		return nil, err
	}
	filters, err := d.filters(s.Dict, limit)
	if err != nil {
		return nil, err
	}
	data := raw
	for i, f := range filters {
		switch f.name {
		case "FlateDecode", "Fl":
			data, err = d.inflate(data)
			if err != nil {
				return nil, fmt.Errorf("stream at %d: %w", s.Offset, err)
			}
			data, err = unpredict(data, f.parms)
			if err != nil {
				return nil, fmt.Errorf("stream at %d: %w", s.Offset, err)
			}
		default:
			return nil, malformed("stream at %d: filter %d /%s is not supported here", s.Offset, i+1, f.name)
		}
	}
	return data, nil
}

type filter struct {
	name  Name
	parms Dict
}

func (d *Document) filters(dict Dict, limit int64) ([]filter, error) {
	fo, err := d.Resolve(dict["Filter"], limit)
	if err != nil {
		return nil, err
	}
	po, err := d.Resolve(dict["DecodeParms"], limit)
	if err != nil {
		return nil, err
	}
	var names []Name
	var parms []Object
	switch f := fo.(type) {
	case nil:
		return nil, nil
	case Name:
		names, parms = []Name{f}, []Object{po}
	case Array:
		if len(f) > 4 {
			return nil, malformed("more than 4 filters")
		}
		pa, _ := po.(Array)
		for i, x := range f {
			n, ok := x.(Name)
			if !ok {
				return nil, malformed("filter is not a name")
			}
			names = append(names, n)
			if i < len(pa) {
				parms = append(parms, pa[i])
			} else {
				parms = append(parms, nil)
			}
		}
	default:
		return nil, malformed("/Filter is neither a name nor an array")
	}
	out := make([]filter, len(names))
	for i := range names {
		p, err := d.ResolveDict(parms[i], limit)
		if err != nil {
			return nil, err
		}
		out[i] = filter{name: names[i], parms: p}
	}
	return out, nil
}

// inflate decodes zlib data within the stream, ratio and document caps.
func (d *Document) inflate(in []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(in))
	if err != nil {
		return nil, malformed("FlateDecode: %v", err)
	}
	defer zr.Close()
	limit := int64(d.lim.MaxStreamBytes)
	if r := int64(len(in))*maxRatio + 4096; r < limit {
		limit = r
	}
	if rest := d.lim.MaxDecodedBytes - d.decoded; rest < limit {
		limit = rest
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(zr, limit+1))
	d.decoded += n
	if err != nil {
		return nil, malformed("FlateDecode: %v", err)
	}
	if n > limit {
		return nil, malformed("FlateDecode: more than %d bytes decoded (size or expansion cap)", limit)
	}
	return out.Bytes(), nil
}

func intParm(p Dict, key Name, def int64) int64 {
	if v, ok := p[key].(int64); ok {
		return v
	}
	return def
}

// unpredict undoes the PNG predictors (Predictor >= 10) that
// cross-reference streams use; Predictor 1 is none.
func unpredict(data []byte, p Dict) ([]byte, error) {
	pred := intParm(p, "Predictor", 1)
	if pred == 1 {
		return data, nil
	}
	if pred < 10 || pred > 15 {
		return nil, malformed("predictor %d not supported", pred)
	}
	colors, bpc, cols := intParm(p, "Colors", 1), intParm(p, "BitsPerComponent", 8), intParm(p, "Columns", 1)
	if colors < 1 || colors > 32 || (bpc != 1 && bpc != 2 && bpc != 4 && bpc != 8 && bpc != 16) || cols < 1 || cols > 1<<20 {
		return nil, malformed("bad predictor parameters")
	}
	bpp := int((colors*bpc + 7) / 8)
	row := int((colors*bpc*cols + 7) / 8)
	out := make([]byte, 0, len(data))
	prev := make([]byte, row)
	cur := make([]byte, row)
	for len(data) > 0 {
		if len(data) < row+1 {
			return nil, malformed("predicted data ends in a partial row")
		}
		tag := data[0]
		copy(cur, data[1:row+1])
		data = data[row+1:]
		for i := range row {
			var a, b, c byte
			if i >= bpp {
				a, c = cur[i-bpp], prev[i-bpp]
			}
			b = prev[i]
			switch tag {
			case 0:
			case 1:
				cur[i] += a
			case 2:
				cur[i] += b
			case 3:
				cur[i] += byte((int(a) + int(b)) / 2)
			case 4:
				cur[i] += paeth(a, b, c)
			default:
				return nil, malformed("PNG filter type %d", tag)
			}
		}
		out = append(out, cur...)
		prev, cur = cur, prev
	}
	return out, nil
}

func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// readXrefStream parses a cross-reference stream object at off.
func (d *Document) readXrefStream(off int64) (*section, error) {
	_, o, err := d.indirectAt(off)
	if err != nil {
		return nil, err
	}
	s, ok := o.(*Stream)
	if !ok || s.Dict["Type"] != Name("XRef") {
		return nil, malformed("neither a cross-reference table nor stream at offset %d", off)
	}
	// The stream's own entries are not known yet: its /Length must be direct.
	data, err := d.StreamData(s, -1)
	if err != nil {
		return nil, err
	}
	sec := &section{offset: off, trailer: s.Dict, entries: map[int64]xrefEntry{}}
	if err := xrefStreamEntries(sec, data, int64(d.lim.MaxObjects)*8); err != nil {
		return nil, err
	}
	if n, ok := s.Dict["Length"].(int64); ok {
		sec.end = d.revisionEnd(s.Offset + n)
	}
	return sec, nil
}

func xrefStreamEntries(sec *section, data []byte, maxSize int64) error {
	wa, ok := sec.trailer["W"].(Array)
	if !ok || len(wa) != 3 {
		return malformed("cross-reference stream without a /W of three widths")
	}
	var w [3]int
	for i, x := range wa {
		v, ok := x.(int64)
		if !ok || v < 0 || v > 8 {
			return malformed("bad /W width")
		}
		w[i] = int(v)
	}
	size, ok := sec.trailer["Size"].(int64)
	if !ok || size < 0 || size > maxSize {
		return malformed("bad /Size in cross-reference stream")
	}
	index := Array{int64(0), size}
	if ia, ok := sec.trailer["Index"].(Array); ok {
		index = ia
	}
	if len(index)%2 != 0 {
		return malformed("odd /Index")
	}
	rec := w[0] + w[1] + w[2]
	if rec == 0 {
		return malformed("empty cross-reference records")
	}
	pos := 0
	for i := 0; i < len(index); i += 2 {
		first, ok1 := index[i].(int64)
		count, ok2 := index[i+1].(int64)
		if !ok1 || !ok2 || first < 0 || count < 0 || count > maxSize {
			return malformed("bad /Index entry")
		}
		for k := int64(0); k < count; k++ {
			if pos+rec > len(data) {
				return malformed("cross-reference stream shorter than its /Index")
			}
			f := [3]int64{1, 0, 0}
			for j := range 3 {
				if w[j] == 0 {
					continue
				}
				var v int64
				for _, b := range data[pos : pos+w[j]] {
					v = v<<8 | int64(b)
				}
				f[j] = v
				pos += w[j]
			}
			num := first + k
			if _, dup := sec.entries[num]; dup {
				continue
			}
			switch f[0] {
			case 0:
				sec.entries[num] = xrefEntry{kind: 0}
			case 1:
				sec.entries[num] = xrefEntry{kind: 1, offset: f[1], gen: f[2]}
			case 2:
				sec.entries[num] = xrefEntry{kind: 2, stream: f[1], index: f[2]}
			}
		}
	}
	return nil
}

// objStm is a decoded object stream: its data and where each object starts.
type objStm struct {
	data    []byte
	first   int64
	nums    []int64
	offsets []int64
}

const maxObjStmObjects = 100000

func (d *Document) compressed(num int64, e xrefEntry, limit int64) (Object, error) {
	os, err := d.objectStream(e.stream, limit)
	if err != nil {
		return nil, err
	}
	if e.index < 0 || e.index >= int64(len(os.nums)) || os.nums[e.index] != num {
		return nil, malformed("object %d not at index %d of object stream %d", num, e.index, e.stream)
	}
	start := os.first + os.offsets[e.index]
	if start < 0 || start > int64(len(os.data)) {
		return nil, malformed("object %d outside its object stream", num)
	}
	l := &lexer{buf: os.data[start:], atEOF: true, maxDepth: d.lim.MaxDepth}
	o, err := l.object(0)
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (d *Document) objectStream(num, limit int64) (*objStm, error) {
	e, ok := d.entry(num, limit)
	if !ok || e.kind != 1 {
		return nil, malformed("object stream %d not found", num)
	}
	if os, ok := d.objStms[e.offset]; ok {
		return os, nil
	}
	_, o, err := d.indirectAt(e.offset)
	if err != nil {
		return nil, err
	}
	s, ok := o.(*Stream)
	if !ok || s.Dict["Type"] != Name("ObjStm") {
		return nil, malformed("object %d is not an object stream", num)
	}
	n, ok1 := s.Dict["N"].(int64)
	first, ok2 := s.Dict["First"].(int64)
	if !ok1 || !ok2 || n < 0 || n > maxObjStmObjects || first < 0 {
		return nil, malformed("object stream %d: bad /N or /First", num)
	}
	data, err := d.StreamData(s, limit)
	if err != nil {
		return nil, err
	}
	if first > int64(len(data)) {
		return nil, malformed("object stream %d: /First past its data", num)
	}
	os := &objStm{data: data, first: first}
	l := &lexer{buf: data[:first], atEOF: true, maxDepth: 1}
	for range n {
		l.skip()
		a, ai, err := l.number()
		if err != nil {
			return nil, err
		}
		l.skip()
		b, bi, err := l.number()
		if err != nil {
			return nil, err
		}
		if !ai || !bi {
			return nil, malformed("object stream %d: bad header", num)
		}
		os.nums = append(os.nums, a.(int64))
		os.offsets = append(os.offsets, b.(int64))
	}
	d.objStms[e.offset] = os
	return os, nil
}
