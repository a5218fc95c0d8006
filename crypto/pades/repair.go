package pades

import (
	"bytes"
	"context"
	"fmt"
)

// repair rebuilds the cross-reference data by scanning the whole file for
// "num gen obj" headers, as PDF readers do when offsets are wrong (a file
// shortened or edited in place). Later definitions win. The trailer is the
// last "trailer" dictionary found, else the last cross-reference stream's
// dictionary. It reads the file once in chunks: bounded memory.
func (d *Document) repair(ctx context.Context) (*section, error) {
	if d.repaired != nil || d.repairErr != nil {
		return d.repaired, d.repairErr
	}
	s, err := d.scanObjects(ctx)
	if err != nil {
		d.repairErr = err
		return nil, err
	}
	d.repaired = s
	return s, nil
}

// scanObjects is repair's scan.
func (d *Document) scanObjects(ctx context.Context) (*section, error) {
	s := &section{offset: 0, entries: map[int64]xrefEntry{}}
	const chunk = 1 << 20
	const overlap = 64
	var trailerAt, xrefStmAt []int64
	for off := int64(0); off < d.size; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		buf, _, err := d.readAt(off, chunk+overlap)
		if err != nil {
			return nil, err
		}
		limit := min(chunk, len(buf))
		for i := 0; i < limit; i++ {
			switch buf[i] {
			case 'o':
				if num, gen, start, ok := objHeaderBefore(buf, i); ok {
					if len(s.entries) >= d.lim.MaxObjects*2 {
						return nil, malformed("more than %d objects while repairing", d.lim.MaxObjects*2)
					}
					s.entries[num] = xrefEntry{kind: 1, offset: off + int64(start), gen: gen}
				}
			case 't':
				if bytes.HasPrefix(buf[i:], []byte("trailer")) {
					trailerAt = append(trailerAt, off+int64(i))
				}
			case '%':
				if bytes.HasPrefix(buf[i:], []byte("%%EOF")) {
					end := off + int64(i) + 5
					if rest := buf[i+5:]; len(rest) > 0 && rest[0] == '\r' {
						end++
						rest = rest[1:]
						if len(rest) > 0 && rest[0] == '\n' {
							end++
						}
					} else if len(rest) > 0 && rest[0] == '\n' {
						end++
					}
					d.eofs = append(d.eofs, end)
				}
			case '/':
				if bytes.HasPrefix(buf[i:], []byte("/XRef")) && (i+5 >= len(buf) || !isRegular(buf[i+5])) {
					xrefStmAt = append(xrefStmAt, off+int64(i))
				}
			}
		}
	}
	for k := len(trailerAt) - 1; k >= 0 && s.trailer == nil; k-- {
		buf, atEOF, err := d.readAt(trailerAt[k]+7, 1<<16)
		if err != nil {
			return nil, err
		}
		l := &lexer{buf: buf, base: trailerAt[k] + 7, atEOF: atEOF, maxDepth: d.lim.MaxDepth}
		if t, err := l.object(0); err == nil {
			if td, ok := t.(Dict); ok && td["Root"] != nil {
				s.trailer = td
			}
		}
	}
	if s.trailer == nil {
		s.trailer = d.xrefStreamTrailer(s, xrefStmAt)
	}
	if s.trailer == nil {
		return nil, malformed("no trailer found while repairing the cross-reference data")
	}
	return s, nil
}

// xrefStreamTrailer looks for the dictionary of the last cross-reference
// stream among the objects found.
func (d *Document) xrefStreamTrailer(s *section, marks []int64) Dict {
	var best Dict
	var bestOff int64 = -1
	for _, e := range s.entries {
		if e.offset <= bestOff {
			continue
		}
		near := false
		for _, m := range marks {
			if m > e.offset && m-e.offset < 4096 {
				near = true
				break
			}
		}
		if !near {
			continue
		}
		_, o, err := d.indirectAt(e.offset)
		if err != nil {
			continue
		}
		if st, ok := o.(*Stream); ok && st.Dict["Type"] == Name("XRef") && st.Dict["Root"] != nil {
			best, bestOff = st.Dict, e.offset
		}
	}
	return best
}

// objHeaderBefore recognises "num gen obj" ending with the "obj" at i,
// starting a line or after whitespace.
func objHeaderBefore(buf []byte, i int) (num, gen int64, start int, ok bool) {
	if !bytes.HasPrefix(buf[i:], []byte("obj")) || (i+3 < len(buf) && isRegular(buf[i+3])) {
		return 0, 0, 0, false
	}
	j := i
	digits := func() (int64, bool) {
		for j > 0 && isWhite(buf[j-1]) {
			j--
		}
		end := j
		for j > 0 && buf[j-1] >= '0' && buf[j-1] <= '9' && end-j < 12 {
			j--
		}
		if j == end || end == i {
			return 0, false
		}
		var v int64
		for _, c := range buf[j:end] {
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	g, ok1 := digits()
	if !ok1 || j == i {
		return 0, 0, 0, false
	}
	n, ok2 := digits()
	if !ok2 || (j > 0 && !isWhite(buf[j-1])) || g > 65535 {
		return 0, 0, 0, false
	}
	return n, g, j, true
}

// openRepaired replaces the cross-reference chain by the repaired table.
func (d *Document) openRepaired(ctx context.Context, cause error) error {
	s, err := d.repair(ctx)
	if err != nil {
		return fmt.Errorf("%w (after %v)", err, cause)
	}
	d.sections = []*section{s}
	d.Repaired = cause.Error()
	return nil
}
