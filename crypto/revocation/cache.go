package revocation

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/trust"
)

// entryOverhead approximates the memory a parsed CRL needs per revoked
// entry beyond its DER, for the byte cap.
const entryOverhead = 96

// crlEntry is one cached CRL.
type crlEntry struct {
	url       string
	der       []byte
	crl       *trust.CRL
	fetchedAt time.Time
	expires   time.Time
}

func (e *crlEntry) size() int64 {
	return int64(2*len(e.der)) + int64(len(e.crl.Entries))*entryOverhead
}

// crlCache keeps CRLs by URL in memory under a byte cap (least recently used
// out first) and, with a directory, on disk. The disk copy is parsed again
// when read; its signature is checked by the caller on every use.
type crlCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List // of *crlEntry, most recent first
	byURL map[string]*list.Element
	dir   string
}

func newCRLCache(max int64, dir string) *crlCache {
	return &crlCache{max: max, lru: list.New(), byURL: map[string]*list.Element{}, dir: dir}
}

// get returns the entry for url if it has not expired at now.
func (c *crlCache) get(url string, now time.Time) *crlEntry {
	c.mu.Lock()
	if el, ok := c.byURL[url]; ok {
		e := el.Value.(*crlEntry)
		if now.Before(e.expires) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e
		}
		c.removeLocked(el)
	}
	c.mu.Unlock()
	e := c.readDisk(url)
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	c.putMemory(e)
	return e
}

func (c *crlCache) put(e *crlEntry) {
	c.putMemory(e)
	c.writeDisk(e)
}

func (c *crlCache) putMemory(e *crlEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byURL[e.url]; ok {
		c.removeLocked(el)
	}
	if e.size() > c.max {
		return // larger than the whole cache: used once, not kept
	}
	c.byURL[e.url] = c.lru.PushFront(e)
	c.used += e.size()
	for c.used > c.max {
		c.removeLocked(c.lru.Back())
	}
}

func (c *crlCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*crlEntry)
	delete(c.byURL, e.url)
	c.used -= e.size()
}

// diskMeta is stored next to each CRL file.
type diskMeta struct {
	URL       string    `json:"url"`
	FetchedAt time.Time `json:"fetched_at"`
	Expires   time.Time `json:"expires"`
}

func (c *crlCache) files(url string) (crlPath, metaPath string) {
	sum := sha256.Sum256([]byte(url))
	base := filepath.Join(c.dir, hex.EncodeToString(sum[:16]))
	return base + ".crl", base + ".json"
}

func (c *crlCache) readDisk(url string) *crlEntry {
	if c.dir == "" {
		return nil
	}
	crlPath, metaPath := c.files(url)
	mb, err := readFileCapped(metaPath, 4<<10)
	if err != nil {
		return nil
	}
	var m diskMeta
	if json.Unmarshal(mb, &m) != nil || m.URL != url {
		return nil
	}
	der, err := readFileCapped(crlPath, trust.MaxCRLSize)
	if err != nil {
		return nil
	}
	crl, err := trust.ParseCRL(der)
	if err != nil {
		return nil
	}
	return &crlEntry{url: url, der: crl.Raw, crl: crl, fetchedAt: m.FetchedAt, expires: m.Expires}
}

// writeDisk is best effort: a cache that cannot be written only costs a
// fetch later.
func (c *crlCache) writeDisk(e *crlEntry) {
	if c.dir == "" {
		return
	}
	if err := os.MkdirAll(c.dir, 0o750); err != nil {
		return
	}
	crlPath, metaPath := c.files(e.url)
	mb, _ := json.Marshal(diskMeta{URL: e.url, FetchedAt: e.fetchedAt, Expires: e.expires})
	if writeAtomic(crlPath, e.der) == nil {
		_ = writeAtomic(metaPath, mb)
	}
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func readFileCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, os.ErrInvalid
	}
	return b, nil
}
