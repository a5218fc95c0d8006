package pades

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
)

// Limits bound the work and memory spent on one PDF. The zero value of a
// field means its default.
type Limits struct {
	// MaxObjectBytes caps the bytes of one object outside stream data
	// (a signature dictionary holds the whole CMS as hex). Default 16 MiB.
	MaxObjectBytes int
	// MaxStreamBytes caps a decoded cross-reference or object stream, and
	// any stream read from the DSS dictionary. Default 16 MiB.
	MaxStreamBytes int
	// MaxDepth caps the nesting of arrays and dictionaries. Default 64.
	MaxDepth int
	// MaxSections caps the cross-reference sections (one or two per
	// revision). Default 1024.
	MaxSections int
	// MaxObjects caps the indirect objects resolved. Default 200000.
	MaxObjects int
	// MaxDecodedBytes caps all stream bytes decoded for one document.
	// Default 64 MiB.
	MaxDecodedBytes int64
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxObjectBytes, 16<<20)
	def(&l.MaxStreamBytes, 16<<20)
	def(&l.MaxDepth, 64)
	def(&l.MaxSections, 1024)
	def(&l.MaxObjects, 200000)
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = 64 << 20
	}
	return l
}

// maxNesting bounds recursive resolution (an object needed to read another).
const maxNesting = 16

// xrefEntry is one cross-reference entry: in use at an offset, compressed
// in an object stream, or free.
type xrefEntry struct {
	kind   byte // 0 free, 1 in use, 2 compressed
	offset int64
	gen    int64
	stream int64 // object stream number (kind 2)
	index  int64 // index in the object stream (kind 2)
}

// section is one cross-reference section (a table or a stream) with its
// trailer. Incremental updates append one per revision.
type section struct {
	offset  int64
	isTable bool
	trailer Dict
	entries map[int64]xrefEntry
	// end is where the revision this section closes ends: just past its
	// %%EOF marker (and end-of-line), or 0 when none was found.
	end int64
}

// Document is a PDF opened for signature verification: the cross-reference
// sections of every revision, with objects parsed lazily on demand.
type Document struct {
	r    io.ReaderAt
	size int64
	lim  Limits
	// Version is the header's version, e.g. "1.7".
	Version string
	// sections in chain order: the newest (from the last startxref) first.
	sections []*section
	cache    map[xrefEntry]Object
	objStms  map[int64]*objStm
	resolved int
	nesting  int
	// readBudget is what is left of the bytes the parser may read: objects
	// that never end, and repairs, must not cost more than a few passes.
	readBudget int64
	decoded    int64
	// Repaired is why the cross-reference data had to be rebuilt by
	// scanning the file; empty when it was readable.
	Repaired  string
	repaired  *section
	repairErr error
	// eofs are the ends of %%EOF markers a repair scan found.
	eofs []int64
}

// Open reads the header and the cross-reference chain of the PDF in r.
func Open(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (*Document, error) {
	d := &Document{r: r, size: size, lim: lim.withDefaults(), cache: map[xrefEntry]Object{}, objStms: map[int64]*objStm{}}
	d.readBudget = 16*size + 64<<20
	if err := d.header(); err != nil {
		return nil, err
	}
	start, err := d.lastStartXref()
	if err == nil {
		err = d.readChain(ctx, start)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		d.sections = nil
		if err := d.openRepaired(ctx, err); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Size is the file's length.
func (d *Document) Size() int64 { return d.size }

func (d *Document) readAt(off int64, n int) ([]byte, bool, error) {
	if off < 0 || off > d.size {
		return nil, false, malformed("offset %d outside the file", off)
	}
	atEOF := false
	if rem := d.size - off; int64(n) >= rem {
		n, atEOF = int(rem), true
	}
	if d.readBudget -= int64(n); d.readBudget < 0 {
		return nil, false, malformed("parsing needed more than %d passes over the file", 16)
	}
	buf := make([]byte, n)
	if _, err := d.r.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, false, fmt.Errorf("pades: read at %d: %w", off, err)
	}
	return buf, atEOF, nil
}

func (d *Document) header() error {
	buf, _, err := d.readAt(0, 1024)
	if err != nil {
		return err
	}
	i := bytes.Index(buf, []byte("%PDF-"))
	if i != 0 {
		return malformed("no %%PDF- header at the start of the file")
	}
	v := buf[5:]
	n := 0
	for n < len(v) && n < 8 && (v[n] == '.' || (v[n] >= '0' && v[n] <= '9')) {
		n++
	}
	d.Version = string(v[:n])
	return nil
}

// lastStartXref finds the offset after the last "startxref" keyword in the
// file's tail.
func (d *Document) lastStartXref() (int64, error) {
	const tail = 2048
	off := d.size - tail
	if off < 0 {
		off = 0
	}
	buf, _, err := d.readAt(off, tail)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndex(buf, []byte("startxref"))
	if i < 0 {
		return 0, malformed("no startxref in the last %d bytes", tail)
	}
	l := &lexer{buf: buf[i+len("startxref"):], base: off + int64(i+len("startxref")), atEOF: true, maxDepth: 1}
	l.skip()
	n, isInt, err := l.number()
	if err != nil || !isInt {
		return 0, malformed("startxref is not followed by an offset")
	}
	return n.(int64), nil
}

// readChain follows the cross-reference sections from start through /Prev
// (and a hybrid file's /XRefStm), refusing loops. Where a /Prev is broken
// (0, or no section there), the older revisions are found by the
// startxref marker each one ends with.
func (d *Document) readChain(ctx context.Context, start int64) error {
	seen := map[int64]bool{}
	next := start
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if seen[next] {
			return malformed("cross-reference chain loops back to offset %d", next)
		}
		if len(d.sections) >= d.lim.MaxSections {
			return malformed("more than %d cross-reference sections", d.lim.MaxSections)
		}
		seen[next] = true
		s, err := d.readSection(next, seen)
		if err != nil {
			if len(d.sections) == 0 {
				return fmt.Errorf("cross-reference section at %d: %w", next, err)
			}
			return d.olderByMarkers(ctx, seen, fmt.Sprintf("/Prev %d: %v", next, err))
		}
		d.sections = append(d.sections, s)
		prev, ok := s.trailer["Prev"]
		if !ok {
			return nil
		}
		p, ok := prev.(int64)
		if !ok {
			return malformed("/Prev is not an offset")
		}
		if p == 0 {
			// Offset 0 is the header, never a cross-reference section:
			// some producers write /Prev 0 in every update.
			return d.olderByMarkers(ctx, seen, "/Prev 0")
		}
		next = p
	}
}

// olderByMarkers adds the sections that the startxref markers before the
// oldest section read so far point to, newest first.
func (d *Document) olderByMarkers(ctx context.Context, seen map[int64]bool, why string) error {
	oldest := d.sections[len(d.sections)-1].offset
	marks, err := d.scanStartXrefs(ctx, oldest)
	if err != nil {
		return err
	}
	added := 0
	for i := len(marks) - 1; i >= 0; i-- {
		off := marks[i]
		if off >= oldest || seen[off] {
			continue
		}
		if len(d.sections) >= d.lim.MaxSections {
			return malformed("more than %d cross-reference sections", d.lim.MaxSections)
		}
		seen[off] = true
		s, err := d.readSection(off, seen)
		if err != nil {
			continue
		}
		d.sections = append(d.sections, s)
		oldest = off
		added++
	}
	if added > 0 {
		d.Repaired = "broken cross-reference chain (" + why + "); older revisions found by their startxref markers"
	}
	return nil
}

// scanStartXrefs returns the offsets named by "startxref N" markers before
// limit, in file order.
func (d *Document) scanStartXrefs(ctx context.Context, limit int64) ([]int64, error) {
	const chunk = 1 << 20
	var out []int64
	for off := int64(0); off < limit; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		buf, atEOF, err := d.readAt(off, chunk+32)
		if err != nil {
			return nil, err
		}
		for i := 0; i < min(chunk, len(buf)); {
			j := bytes.Index(buf[i:min(chunk, len(buf))], []byte("startxref"))
			if j < 0 {
				break
			}
			i += j + len("startxref")
			l := &lexer{buf: buf[i:], atEOF: atEOF, maxDepth: 1}
			l.skip()
			if n, isInt, err := l.number(); err == nil && isInt && n.(int64) < limit {
				out = append(out, n.(int64))
			}
			if len(out) > d.lim.MaxSections {
				return nil, malformed("more than %d startxref markers", d.lim.MaxSections)
			}
		}
	}
	return out, nil
}

// readSection reads the section at off and merges a hybrid file's
// /XRefStm into it (its entries rank below the table's).
func (d *Document) readSection(off int64, seen map[int64]bool) (*section, error) {
	buf, _, err := d.readAt(off, 16)
	if err != nil {
		return nil, err
	}
	l := &lexer{buf: buf, atEOF: true}
	l.skip()
	if !bytes.HasPrefix(buf[l.pos:], []byte("xref")) {
		return d.readXrefStream(off)
	}
	s, err := d.readTable(off)
	if err != nil {
		return nil, err
	}
	if stm, ok := s.trailer["XRefStm"].(int64); ok && !seen[stm] {
		seen[stm] = true
		hs, err := d.readXrefStream(stm)
		if err != nil {
			return nil, fmt.Errorf("hybrid cross-reference stream at %d: %w", stm, err)
		}
		for k, e := range hs.entries {
			if _, ok := s.entries[k]; !ok {
				s.entries[k] = e
			}
		}
	}
	return s, nil
}

// readTable parses a classic cross-reference table and its trailer.
func (d *Document) readTable(off int64) (*section, error) {
	s := &section{offset: off, isTable: true, entries: map[int64]xrefEntry{}}
	n := 64 << 10
	for {
		buf, atEOF, err := d.readAt(off, n)
		if err != nil {
			return nil, err
		}
		l := &lexer{buf: buf, base: off, atEOF: atEOF, maxDepth: d.lim.MaxDepth}
		err = d.tableBody(l, s)
		if err == errShort && n < d.lim.MaxStreamBytes {
			n *= 4
			clear(s.entries)
			continue
		}
		if err != nil {
			return nil, err
		}
		s.end = d.revisionEnd(off + int64(l.pos))
		return s, nil
	}
}

func (d *Document) tableBody(l *lexer, s *section) error {
	if err := l.expectKeyword("xref"); err != nil {
		return err
	}
	for {
		l.skip()
		if l.pos >= len(l.buf) {
			return l.short()
		}
		if l.buf[l.pos] == 't' {
			if err := l.expectKeyword("trailer"); err != nil {
				return err
			}
			t, err := l.object(0)
			if err != nil {
				return err
			}
			td, ok := t.(Dict)
			if !ok {
				return malformed("trailer is not a dictionary")
			}
			s.trailer = td
			return nil
		}
		first, fi, err := l.number()
		if err != nil {
			return err
		}
		l.skip()
		count, ci, err := l.number()
		if err != nil {
			return err
		}
		if !fi || !ci || first.(int64) < 0 || count.(int64) < 0 || count.(int64) > int64(d.lim.MaxObjects)*8 {
			return malformed("bad cross-reference subsection header")
		}
		for i := int64(0); i < count.(int64); i++ {
			if err := tableEntry(l, s, first.(int64)+i); err != nil {
				return err
			}
		}
	}
}

// tableEntry reads "oooooooooo ggggg n" (or f), tolerating odd spacing.
func tableEntry(l *lexer, s *section, num int64) error {
	l.skip()
	o, oi, err := l.number()
	if err != nil {
		return err
	}
	l.skip()
	g, gi, err := l.number()
	if err != nil {
		return err
	}
	l.skip()
	kw := l.keyword()
	if l.pos == len(l.buf) && !l.atEOF {
		return errShort
	}
	if !oi || !gi || len(kw) != 1 || (kw[0] != 'n' && kw[0] != 'f') {
		return malformed("bad cross-reference entry for object %d", num)
	}
	if _, dup := s.entries[num]; dup {
		return nil
	}
	e := xrefEntry{offset: o.(int64), gen: g.(int64)}
	if kw[0] == 'n' {
		e.kind = 1
	}
	s.entries[num] = e
	return nil
}

// revisionEnd finds the end of the revision whose cross-reference data ends
// at off: past "startxref N %%EOF" and its end-of-line.
func (d *Document) revisionEnd(off int64) int64 {
	buf, _, err := d.readAt(off, 1024)
	if err != nil {
		return 0
	}
	i := bytes.Index(buf, []byte("%%EOF"))
	if i < 0 || !bytes.Contains(buf[:i], []byte("startxref")) {
		return 0
	}
	end := i + 5
	if end < len(buf) && buf[end] == '\r' {
		end++
	}
	if end < len(buf) && buf[end] == '\n' {
		end++
	}
	return off + int64(end)
}

// entry finds object num in the sections that lie before limit (the end
// of a revision; 0 means the whole file), newest first.
func (d *Document) entry(num, limit int64) (xrefEntry, bool) {
	for _, s := range d.sections {
		if limit > 0 && s.offset >= limit {
			continue
		}
		if e, ok := s.entries[num]; ok {
			return e, true
		}
	}
	return xrefEntry{}, false
}

// Trailer returns the newest trailer among the sections before limit (0:
// the whole file).
func (d *Document) Trailer(limit int64) Dict {
	for _, s := range d.sections {
		if limit == 0 || s.offset < limit {
			return s.trailer
		}
	}
	return nil
}

// RevisionEnds lists the ends of the revisions found, in file order.
func (d *Document) RevisionEnds() []int64 {
	var out []int64
	for _, s := range d.sections {
		if s.end > 0 {
			out = append(out, s.end)
		}
	}
	out = append(out, d.eofs...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Resolve follows references (at most a few hops) to a direct object, as
// the file stood at limit (0: the final revision). A reference to a missing
// object is null, as ISO 32000 says.
func (d *Document) Resolve(o Object, limit int64) (Object, error) {
	for hops := 0; hops < 8; hops++ {
		r, ok := o.(Ref)
		if !ok {
			return o, nil
		}
		var err error
		o, err = d.object(r, limit)
		if err != nil {
			return nil, err
		}
	}
	return nil, malformed("reference chain too long")
}

// ResolveDict resolves o and wants a dictionary (a stream's dictionary
// counts); nil when it is none.
func (d *Document) ResolveDict(o Object, limit int64) (Dict, error) {
	o, err := d.Resolve(o, limit)
	if err != nil {
		return nil, err
	}
	switch v := o.(type) {
	case Dict:
		return v, nil
	case *Stream:
		return v.Dict, nil
	}
	return nil, nil
}

func (d *Document) object(r Ref, limit int64) (Object, error) {
	e, ok := d.entry(r.Num, limit)
	if !ok || e.kind == 0 {
		return nil, nil
	}
	if o, ok := d.cache[e]; ok {
		return o, nil
	}
	// Resolving may recurse (an object stream's /Length in an object
	// stream): hostile files make that a cycle.
	if d.nesting >= maxNesting {
		return nil, malformed("object %s: references nested deeper than %d", r, maxNesting)
	}
	d.nesting++
	defer func() { d.nesting-- }()
	d.resolved++
	if d.resolved > d.lim.MaxObjects {
		return nil, malformed("more than %d objects resolved", d.lim.MaxObjects)
	}
	var o Object
	var err error
	switch e.kind {
	case 1:
		if e.gen != r.Gen {
			return nil, nil
		}
		var num int64
		num, o, err = d.indirectAt(e.offset)
		if err == nil && num != r.Num {
			err = malformed("object %d expected at offset %d, found %d", r.Num, e.offset, num)
		}
		if err != nil {
			o, err = d.objectRepaired(r, err)
		}
	case 2:
		o, err = d.compressed(r.Num, e, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", r, err)
	}
	d.cache[e] = o
	return o, nil
}

// indirectAt parses "num gen obj ... endobj" at off, growing the window
// read until the object fits.
func (d *Document) indirectAt(off int64) (int64, Object, error) {
	n := 4 << 10
	for {
		buf, atEOF, err := d.readAt(off, n)
		if err != nil {
			return 0, nil, err
		}
		l := &lexer{buf: buf, base: off, atEOF: atEOF, maxDepth: d.lim.MaxDepth}
		num, o, err := d.indirect(l)
		if err == errShort {
			if n >= d.lim.MaxObjectBytes {
				return 0, nil, malformed("object at %d larger than %d bytes", off, d.lim.MaxObjectBytes)
			}
			n = min(n*8, d.lim.MaxObjectBytes)
			continue
		}
		return num, o, err
	}
}

func (d *Document) indirect(l *lexer) (int64, Object, error) {
	l.skip()
	num, ni, err := l.number()
	if err != nil {
		return 0, nil, err
	}
	l.skip()
	_, gi, err := l.number()
	if err != nil {
		return 0, nil, err
	}
	if !ni || !gi {
		return 0, nil, malformed("bad object header at offset %d", l.base)
	}
	if err := l.expectKeyword("obj"); err != nil {
		return 0, nil, err
	}
	o, err := l.object(0)
	if err != nil {
		return 0, nil, err
	}
	l.skip()
	if l.pos+6 > len(l.buf) && !l.atEOF {
		return 0, nil, errShort
	}
	if dict, ok := o.(Dict); ok && bytes.HasPrefix(l.buf[l.pos:], []byte("stream")) {
		l.pos += len("stream")
		if l.pos < len(l.buf) && l.buf[l.pos] == '\r' {
			l.pos++
		}
		if l.pos < len(l.buf) && l.buf[l.pos] == '\n' {
			l.pos++
		}
		return num.(int64), &Stream{Dict: dict, Offset: l.base + int64(l.pos)}, nil
	}
	return num.(int64), o, nil
}

// objectRepaired looks an object up by scanning the file when its
// cross-reference offset is wrong, and notes that the file was repaired.
func (d *Document) objectRepaired(r Ref, cause error) (Object, error) {
	s, err := d.repair(context.Background())
	if err != nil {
		return nil, cause
	}
	e, ok := s.entries[r.Num]
	if !ok || e.gen != r.Gen {
		return nil, cause
	}
	num, o, err := d.indirectAt(e.offset)
	if err != nil || num != r.Num {
		return nil, cause
	}
	if d.Repaired == "" {
		d.Repaired = cause.Error()
	}
	return o, nil
}
