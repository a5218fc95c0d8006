// Package asic reads Associated Signature Containers (ETSI EN 319 162-1):
// ASiC-S (one data object and its CAdES or XAdES signature or timestamp)
// and ASiC-E (several data objects, XAdES signatures in
// META-INF/*signatures*.xml, CAdES signatures over ASiCManifest files).
//
// The ZIP is read with caps on entry count, sizes, total size and
// compression ratio before anything is inflated, and every name is checked
// (no absolute paths, no "..", no duplicates). Open only takes the
// container apart; crypto/verify verifies the signatures, and Coverage
// tells which data objects no signature covers.
package asic

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// Container MIME types (EN 319 162-1 A.1).
const (
	MimeTypeS = "application/vnd.etsi.asic-s+zip"
	MimeTypeE = "application/vnd.etsi.asic-e+zip"
)

// Container types.
const (
	TypeS = "ASiC-S"
	TypeE = "ASiC-E"
)

// ErrMalformed is wrapped for archives that are no container we read.
var ErrMalformed = errors.New("asic: malformed container")

// Limits bound the work on a hostile archive. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// MaxEntries caps the central directory.
	MaxEntries int
	// MaxEntrySize caps one inflated entry, MaxTotalSize all of them.
	MaxEntrySize int64
	MaxTotalSize int64
	// MaxRatio caps inflated size / compressed size of an entry (zip bombs
	// reach thousands; real documents rarely pass 20).
	MaxRatio int64
}

// DefaultLimits suit containers that arrive by mail or upload.
func DefaultLimits() Limits {
	return Limits{MaxEntries: 1000, MaxEntrySize: 64 << 20, MaxTotalSize: 128 << 20, MaxRatio: 200}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEntries > 0 {
		d.MaxEntries = l.MaxEntries
	}
	if l.MaxEntrySize > 0 {
		d.MaxEntrySize = l.MaxEntrySize
	}
	if l.MaxTotalSize > 0 {
		d.MaxTotalSize = l.MaxTotalSize
	}
	if l.MaxRatio > 0 {
		d.MaxRatio = l.MaxRatio
	}
	return d
}

// File is one entry of the container.
type File struct {
	Name string
	Data []byte
}

// Container is an opened ASiC container.
type Container struct {
	// Type is TypeS or TypeE; MimeType the content of the mimetype entry
	// ("" when absent).
	Type     string
	MimeType string
	// DataObjects are the entries outside META-INF/, in archive order.
	DataObjects []File
	// CAdESSignatures are META-INF/*signature*.p7s, XAdESSignatures
	// META-INF/*signatures*.xml, Timestamps META-INF/*timestamp*.tst,
	// Manifests META-INF/ASiCManifest*.xml.
	CAdESSignatures []File
	XAdESSignatures []File
	Timestamps      []File
	Manifests       []File
	// Other are further META-INF entries (manifest.xml of OpenDocument,
	// container.xml, ...), kept so nothing goes unnoticed.
	Other []File
}

// Open reads a container from data.
func Open(ctx context.Context, data []byte, lim Limits) (*Container, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxTotalSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(data), lim.MaxTotalSize)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, more than %d", ErrMalformed, len(zr.File), lim.MaxEntries)
	}
	if len(zr.File) == 0 {
		return nil, fmt.Errorf("%w: empty archive", ErrMalformed)
	}
	c := &Container{}
	seen := map[string]bool{}
	var total int64
	for i, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := checkName(zf.Name); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrMalformed, i+1, err)
		}
		key := strings.ToLower(zf.Name)
		if seen[key] {
			return nil, fmt.Errorf("%w: entry %q occurs twice", ErrMalformed, zf.Name)
		}
		seen[key] = true
		if strings.HasSuffix(zf.Name, "/") {
			continue
		}
		b, err := readEntry(zf, lim, &total)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %q: %v", ErrMalformed, zf.Name, err)
		}
		if err := c.add(i, zf, b); err != nil {
			return nil, err
		}
	}
	if err := c.decideType(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkName refuses names that could escape an extraction directory or
// be read differently by other tools.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case !utf8.ValidString(name):
		return errors.New("name is not UTF-8")
	case strings.ContainsAny(name, "\\\x00"):
		return fmt.Errorf("name %q contains a backslash or NUL", name)
	case strings.HasPrefix(name, "/") || (len(name) > 1 && name[1] == ':'):
		return fmt.Errorf("absolute name %q", name)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("name %q has an empty, . or .. segment", name)
		}
	}
	return nil
}

// readEntry inflates one entry within the caps: the declared sizes are
// checked first, and the reader is cut at the cap in case they lie.
func readEntry(zf *zip.File, lim Limits, total *int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(lim.MaxEntrySize) {
		return nil, fmt.Errorf("declares %d bytes, more than %d", zf.UncompressedSize64, lim.MaxEntrySize)
	}
	if zf.Method != zip.Store && zf.Method != zip.Deflate {
		return nil, fmt.Errorf("compression method %d", zf.Method)
	}
	if zf.UncompressedSize64 > 1<<20 && zf.UncompressedSize64/max(zf.CompressedSize64, 1) > uint64(lim.MaxRatio) {
		return nil, fmt.Errorf("compression ratio above %d", lim.MaxRatio)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	remaining := min(lim.MaxEntrySize, lim.MaxTotalSize-*total)
	b, err := io.ReadAll(io.LimitReader(rc, remaining+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > remaining {
		return nil, fmt.Errorf("inflates beyond the size limits")
	}
	if uint64(len(b)) > 1<<20 && uint64(len(b))/max(zf.CompressedSize64, 1) > uint64(lim.MaxRatio) {
		return nil, fmt.Errorf("compression ratio above %d", lim.MaxRatio)
	}
	*total += int64(len(b))
	return b, nil
}

func (c *Container) add(i int, zf *zip.File, b []byte) error {
	f := File{Name: zf.Name, Data: b}
	if zf.Name == "mimetype" {
		// EN 319 162-1 A.1: first entry, stored, so that the type can be
		// read at a fixed offset.
		if i != 0 {
			return fmt.Errorf("%w: mimetype is not the first entry", ErrMalformed)
		}
		if zf.Method != zip.Store {
			return fmt.Errorf("%w: mimetype entry is compressed", ErrMalformed)
		}
		c.MimeType = string(b)
		return nil
	}
	dir, base := path.Split(zf.Name)
	if dir != "META-INF/" {
		if strings.HasPrefix(zf.Name, "META-INF/") {
			c.Other = append(c.Other, f)
			return nil
		}
		c.DataObjects = append(c.DataObjects, f)
		return nil
	}
	lower := strings.ToLower(base)
	switch {
	case strings.Contains(lower, "signature") && strings.HasSuffix(lower, ".p7s"):
		c.CAdESSignatures = append(c.CAdESSignatures, f)
	case strings.Contains(lower, "signatures") && strings.HasSuffix(lower, ".xml"):
		c.XAdESSignatures = append(c.XAdESSignatures, f)
	case strings.Contains(lower, "timestamp") && strings.HasSuffix(lower, ".tst"):
		c.Timestamps = append(c.Timestamps, f)
	case strings.HasPrefix(lower, "asicmanifest") && strings.HasSuffix(lower, ".xml"),
		strings.HasPrefix(lower, "asicarchivemanifest") && strings.HasSuffix(lower, ".xml"):
		c.Manifests = append(c.Manifests, f)
	default:
		c.Other = append(c.Other, f)
	}
	return nil
}

// decideType takes the type from the mimetype entry, or (absent, as
// ASiC-S allows) from the content: one data object and no ASiCManifest is
// ASiC-S.
func (c *Container) decideType() error {
	if len(c.CAdESSignatures)+len(c.XAdESSignatures)+len(c.Timestamps) == 0 {
		return fmt.Errorf("%w: no signature or timestamp in META-INF/", ErrMalformed)
	}
	switch c.MimeType {
	case MimeTypeE:
		c.Type = TypeE
	case MimeTypeS:
		c.Type = TypeS
	case "":
		c.Type = TypeE
		if len(c.DataObjects) == 1 && len(c.Manifests) == 0 {
			c.Type = TypeS
		}
	default:
		// Other ASiC-E profiles (OpenDocument, EPUB, BDOC) carry their own
		// type; their signatures are ASiC-E signatures.
		c.Type = TypeE
	}
	if c.Type == TypeS && len(c.DataObjects) != 1 {
		return fmt.Errorf("%w: ASiC-S with %d data objects, want exactly one", ErrMalformed, len(c.DataObjects))
	}
	return nil
}

// DataObject returns the data object called name.
func (c *Container) DataObject(name string) ([]byte, bool) {
	for _, f := range c.DataObjects {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Resolve maps a reference URI of a signature inside META-INF/ to a data
// object: relative URIs are relative to META-INF/ in ASiC-E ("../doc.pdf")
// but written from the root by most producers ("doc.pdf"); both are
// accepted, percent-encoding decoded.
func (c *Container) Resolve(uri string) ([]byte, string, bool) {
	name := unescape(uri)
	if rest, ok := strings.CutPrefix(name, "../"); ok {
		name = rest
	} else {
		name = strings.TrimPrefix(name, "./")
	}
	b, ok := c.DataObject(name)
	return b, name, ok
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// Uncovered returns the names of the data objects not in covered, sorted.
func (c *Container) Uncovered(covered map[string]bool) []string {
	var out []string
	for _, f := range c.DataObjects {
		if !covered[f.Name] {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}
