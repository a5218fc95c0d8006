package mailmsg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// maxProblems caps the problems one list keeps, so that a hostile message
// cannot inflate its receipt event beyond the log's payload limit.
const maxProblems = 50

// problemList collects problem reports up to maxProblems and counts the rest.
type problemList struct {
	items   []string
	dropped int
}

func (p *problemList) add(s string) {
	if len(p.items) >= maxProblems {
		p.dropped++
		return
	}
	p.items = append(p.items, s)
}

func (p *problemList) list() []string {
	if p.dropped == 0 {
		return p.items
	}
	return append(p.items[:len(p.items):len(p.items)], fmt.Sprintf("%d further problems not listed", p.dropped))
}

// splitter cuts a multipart body into its body parts as a stream. It
// follows RFC 2046 section 5.1.1: a delimiter is "--boundary" at the start
// of a line, optionally followed by "--" (the close delimiter) and
// whitespace; the line break before a delimiter belongs to the delimiter.
// Lines longer than the reader's buffer are passed through as content, which
// is safe because no delimiter line can be that long.
type splitter struct {
	br   *bufio.Reader
	dash []byte // "--" + boundary

	started    bool // the first delimiter was seen
	closed     bool // the close delimiter was seen
	eof        bool // the input ended
	atLineHead bool // the next chunk starts a line
	partDone   bool // the current part ended at a delimiter or EOF
	parts      int

	pendingEOL [2]byte // line ending held back until the next line is known
	nEOL       int
	buf        []byte // backing store of rest, reused
	rest       []byte // content not yet returned to the reader
}

func newSplitter(br *bufio.Reader, boundary string) *splitter {
	return &splitter{br: br, dash: []byte("--" + boundary), atLineHead: true}
}

// next advances to the next body part and returns a reader of it (its
// header section and content, exactly as in the message). It returns
// io.EOF after the last part. A read error of the input is returned as is.
func (s *splitter) next() (io.Reader, error) {
	if s.parts > 0 && !s.partDone {
		// Skip what the caller left of the previous part.
		if _, err := io.Copy(io.Discard, partReader{s}); err != nil {
			return nil, err
		}
	}
	if !s.started {
		if err := s.skipPreamble(); err != nil {
			return nil, err
		}
	}
	if s.closed || s.eof {
		return nil, io.EOF
	}
	s.parts++
	s.partDone = false
	s.nEOL = 0
	s.rest = nil
	return partReader{s}, nil
}

// skipPreamble discards lines up to and including the first delimiter.
func (s *splitter) skipPreamble() error {
	for {
		line, head, err := s.readChunk()
		if head && s.isDelimiter(line) {
			s.started = true
			return nil
		}
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readChunk returns the next piece of input: a whole line with its ending,
// or a buffer-full piece of a longer line, and whether it starts a line.
func (s *splitter) readChunk() (chunk []byte, head bool, err error) {
	head = s.atLineHead
	chunk, err = s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		err = nil
	}
	s.atLineHead = len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
	return chunk, head, err
}

// isDelimiter reports whether a chunk that starts a line is a delimiter,
// and records a close delimiter.
func (s *splitter) isDelimiter(line []byte) bool {
	if !bytes.HasPrefix(line, s.dash) {
		return false
	}
	rest := line[len(s.dash):]
	final := false
	if bytes.HasPrefix(rest, []byte("--")) {
		final = true
		rest = rest[2:]
	}
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return false
	}
	if final {
		s.closed = true
	}
	return true
}

type partReader struct{ s *splitter }

func (p partReader) Read(b []byte) (int, error) {
	s := p.s
	for len(s.rest) == 0 {
		if s.partDone {
			return 0, io.EOF
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(b, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

// fill reads the next chunk of the current part into s.rest, or ends the
// part at a delimiter or at the end of input.
func (s *splitter) fill() error {
	chunk, head, err := s.readChunk()
	if err != nil && err != io.EOF {
		return err
	}
	if head && s.isDelimiter(chunk) {
		s.nEOL = 0
		s.partDone = true
		return nil
	}
	content := chunk
	var eol []byte
	if s.atLineHead {
		content = trimEOL(chunk)
		eol = chunk[len(content):]
	}
	// The reader's buffer behind chunk is reused by its next read, so the
	// content is copied, after the line ending held back before it.
	s.buf = append(append(s.buf[:0], s.pendingEOL[:s.nEOL]...), content...)
	s.nEOL = copy(s.pendingEOL[:], eol)
	if err == io.EOF {
		s.eof = true
		s.partDone = true
		s.buf = append(s.buf, s.pendingEOL[:s.nEOL]...)
		s.nEOL = 0
	}
	s.rest = s.buf
	return nil
}
