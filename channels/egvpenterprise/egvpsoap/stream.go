package egvpsoap

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// capReader reads at most left bytes and then fails with ErrTooLarge, remembering
// that it did (the XML decoder does not keep its reader's error).
type capReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			c.exceeded = true
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// zipTag is the start of the unqualified messageZIP element as the schema has it.
var zipTag = []byte("messageZIP")

// zipFilter passes a receiveMessage response through to the XML decoder but takes
// the text of its messageZIP element out on the way, decoding the base64 into out as
// it streams, so that the message is never held in memory. The decoder then sees the
// element empty. xs:base64Binary text is the alphabet and white space; an entity or
// CDATA section in it is refused (err), and so is a second messageZIP.
type zipFilter struct {
	br      *bufio.Reader
	out     io.Writer
	pending []byte
	inZIP   bool
	found   bool
	quantum []byte // base64 characters not yet decoded
	padded  bool
	buf     [3 * 1024]byte
	written int64
	err     error
}

func newZIPFilter(r io.Reader, out io.Writer) *zipFilter {
	return &zipFilter{br: bufio.NewReaderSize(r, 64<<10), out: out}
}

func (f *zipFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if err := f.step(); err != nil {
			if !errors.Is(err, io.EOF) {
				f.err = err
			}
			if len(f.pending) == 0 {
				return 0, err
			}
			break
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// step moves the next piece of input to pending (outside messageZIP) or to out
// (inside).
func (f *zipFilter) step() error {
	if f.inZIP {
		chunk, err := f.br.ReadSlice('<')
		text := chunk
		if err == nil {
			text = chunk[:len(chunk)-1]
		}
		if werr := f.decode(text); werr != nil {
			return werr
		}
		switch {
		case err == nil:
			// Only the end tag may follow: a CDATA section, comment or element inside
			// is not base64Binary as the service writes it.
			if next, _ := f.br.Peek(1); len(next) != 1 || next[0] != '/' {
				return fmt.Errorf("%w: markup inside messageZIP", ErrFormat)
			}
			f.inZIP = false
			if werr := f.finish(); werr != nil {
				return werr
			}
			f.pending = append(f.pending[:0], '<')
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			return nil
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: messageZIP not closed", ErrFormat)
		default:
			return err
		}
	}
	chunk, err := f.br.ReadSlice('<')
	f.pending = append(f.pending[:0], chunk...)
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil
		}
		return err
	}
	// After a '<': is this the start tag of messageZIP?
	peek, _ := f.br.Peek(len(zipTag) + 1)
	if len(peek) < len(zipTag)+1 || !bytes.Equal(peek[:len(zipTag)], zipTag) || !bytes.ContainsRune([]byte(" \t\r\n/>"), rune(peek[len(zipTag)])) {
		return nil
	}
	tag, err := f.br.ReadSlice('>')
	if err != nil {
		return fmt.Errorf("%w: the messageZIP start tag: %v", ErrFormat, err)
	}
	f.pending = append(f.pending, tag...)
	if bytes.HasSuffix(tag, []byte("/>")) {
		return nil
	}
	if f.found {
		return fmt.Errorf("%w: a second messageZIP", ErrFormat)
	}
	f.found, f.inZIP = true, true
	return nil
}

// decode feeds base64 text to out, whole quanta at a time; after a padded quantum
// only white space may follow.
func (f *zipFilter) decode(text []byte) error {
	buf := f.buf[:]
	for len(text) > 0 {
		for len(f.quantum) < 4*1024 && len(text) > 0 {
			c := text[0]
			text = text[1:]
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\n':
				continue
			case c == '&':
				return fmt.Errorf("%w: an entity reference in messageZIP", ErrFormat)
			case f.padded:
				return fmt.Errorf("%w: messageZIP: data after the base64 padding", ErrFormat)
			}
			f.quantum = append(f.quantum, c)
			if c == '=' && len(f.quantum)%4 == 0 {
				f.padded = true
			}
		}
		whole := len(f.quantum) / 4 * 4
		if whole == 0 {
			continue
		}
		n, err := base64.StdEncoding.Decode(buf, f.quantum[:whole])
		if err != nil {
			return fmt.Errorf("%w: messageZIP: %v", ErrFormat, err)
		}
		if _, err := f.out.Write(buf[:n]); err != nil {
			return fmt.Errorf("egvpsoap: writing the messageZIP: %w", err)
		}
		f.written += int64(n)
		f.quantum = append(f.quantum[:0], f.quantum[whole:]...)
	}
	return nil
}

func (f *zipFilter) finish() error {
	if len(f.quantum) != 0 {
		return fmt.Errorf("%w: messageZIP: %d base64 characters left over", ErrFormat, len(f.quantum))
	}
	return nil
}
