package packblob

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// committer appends the puts of one store to its pack. Puts queue up while
// a batch is being written and synced; whoever finds no batch in flight
// writes the queue as the next one, so concurrent puts share an fsync.
type committer struct {
	s *Store

	mu       sync.Mutex
	queue    []*pending
	flushing bool
	closed   bool

	// Only the goroutine flushing touches these.
	f     *os.File
	name  string
	id    uint32
	off   int64 // the end of the last durable record
	alloc int64 // the pack's zeroed and synced length
	blobs int64
}

// prealloc is how far ahead of the records a pack is filled with zeros and
// synced. Records then overwrite blocks the file already has, and fdatasync
// makes them durable without a journal commit for the file's size: one
// device flush per batch instead of two. The zeros after the last record
// end the pack for every reader (a zero header fails its checksum).
const prealloc = 4 << 20

type pending struct {
	sum  [32]byte
	data []byte
	done chan error
}

var errClosed = errors.New("packblob: store closed")

func (c *committer) put(ctx context.Context, sum [32]byte, data []byte) error {
	p := &pending{sum: sum, data: data, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, p)
	lead := !c.flushing
	c.flushing = true
	c.mu.Unlock()
	if lead {
		c.flush()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The record may still become durable; a put that gave up is
		// repeated by its caller, which is harmless.
		return ctx.Err()
	}
}

// flush writes one batch and hands the next, if any, to a new goroutine,
// so that a put's latency is one batch, not the whole backlog.
func (c *committer) flush() {
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	err := c.write(batch)
	for _, p := range batch {
		p.done <- err
	}
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.flushing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.flush()
}

func (c *committer) write(batch []*pending) error {
	if c.f != nil && c.off >= c.s.cfg.PackSize {
		if err := c.seal(); err != nil {
			c.s.logger.Warn("packblob: pack not sealed; the next start recovers it", "pack", c.name, "err", err)
		}
	}
	if c.f == nil {
		if err := c.create(); err != nil {
			return err
		}
	}
	n := 0
	for _, p := range batch {
		n += headerSize + len(p.data)
	}
	buf := make([]byte, 0, n)
	recs := make([]record, 0, len(batch))
	off := c.off
	for _, p := range batch {
		recs = append(recs, record{sum: p.sum, off: off, size: int64(len(p.data))})
		buf = append(buf, encodeHeader(kindBlob, p.sum, int64(len(p.data)))...)
		buf = append(buf, p.data...)
		off += headerSize + int64(len(p.data))
	}
	if off > c.alloc {
		if err := c.extend(off); err != nil {
			c.abandon()
			return fmt.Errorf("extend pack %s: %w", c.name, err)
		}
	}
	if _, err := c.f.WriteAt(buf, c.off); err != nil {
		// What part of the batch reached the file is unknown: the next
		// start's recovery cuts the pack after its last good record.
		c.abandon()
		return fmt.Errorf("append to pack %s: %w", c.name, err)
	}
	if err := datasync(c.f); err != nil {
		// After a failed fsync the kernel may have dropped the pages:
		// nothing in this pack is trusted to this process any more.
		c.abandon()
		return fmt.Errorf("sync pack %s: %w", c.name, err)
	}
	c.off = off
	c.blobs += int64(len(batch))
	c.s.indexOwn(c.id, recs)
	return nil
}

// extend fills the pack with zeros up to prealloc (at most a pack's size)
// beyond end and syncs it with its new size.
func (c *committer) extend(end int64) error {
	target := end + min(prealloc, c.s.cfg.PackSize)
	zeros := make([]byte, 256<<10)
	for at := c.alloc; at < target; at += int64(len(zeros)) {
		n := min(int64(len(zeros)), target-at)
		if _, err := c.f.WriteAt(zeros[:n], at); err != nil {
			return err
		}
	}
	if err := c.f.Sync(); err != nil {
		return err
	}
	c.alloc = target
	return nil
}

// create starts a pack under a temporary name, locks it and only then
// gives it its name, so that no other store mistakes it for a crashed one.
func (c *committer) create() error {
	dir := c.s.packDir
	f, err := os.CreateTemp(dir, "tmp-*")
	if err != nil {
		return fmt.Errorf("create pack: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("lock new pack: %w", err)
	}
	name := newPackName()
	id := c.s.addOwn(name)
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("name new pack: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	c.f, c.name, c.id, c.off, c.alloc, c.blobs = f, name, id, 0, 0, 0
	return nil
}

// seal cuts the zeros after the last record, ends the pack with a seal
// record and lets it go.
func (c *committer) seal() error {
	f := c.f
	defer c.abandon()
	if err := f.Truncate(c.off); err != nil {
		return err
	}
	if _, err := f.WriteAt(sealRecord(c.blobs), c.off); err != nil {
		return err
	}
	return f.Sync()
}

// abandon closes the pack (releasing its lock) without sealing it.
func (c *committer) abandon() {
	if c.f == nil {
		return
	}
	c.f.Close()
	c.s.closeOwn(c.name)
	c.f = nil
}

// close waits for the batch in flight and seals the pack.
func (c *committer) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	for {
		c.mu.Lock()
		busy := c.flushing
		c.mu.Unlock()
		if !busy {
			break
		}
		waitBriefly()
	}
	if c.f == nil {
		return nil
	}
	name := c.name
	if err := c.seal(); err != nil {
		return fmt.Errorf("packblob: seal %s: %w", name, err)
	}
	return nil
}
