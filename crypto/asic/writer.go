package asic

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"strings"
	"time"
)

// Sealer makes the detached CAdES signature (a CMS SignedData without
// encapsulated content, DER) over the bytes of an ASiCManifest. The
// production sealer is crypto/cms's signer with the seal certificate; the
// writer only needs the signature bytes.
type Sealer interface {
	Seal(ctx context.Context, manifest []byte) ([]byte, error)
}

// SealerFunc adapts a function to Sealer.
type SealerFunc func(ctx context.Context, manifest []byte) ([]byte, error)

// Seal calls f.
func (f SealerFunc) Seal(ctx context.Context, manifest []byte) ([]byte, error) {
	return f(ctx, manifest)
}

// Entry names the writer puts into META-INF/.
const (
	ManifestName  = "META-INF/ASiCManifest.xml"
	SignatureName = "META-INF/signature001.p7s"
)

// ErrWriterLimit is wrapped when a container would outgrow the writer's
// limits.
var ErrWriterLimit = errors.New("asic: container exceeds the writer's limits")

// Written is one data object as the writer stored it.
type Written struct {
	Name      string
	MediaType string
	Size      int64
	SHA256    [32]byte
}

// Writer streams an ASiC-E container with one CAdES signature over an
// ASiCManifest (EN 319 162-1 clause 4.4.3.2): the stored mimetype entry
// first, then the data objects as they are added, each hashed while it is
// compressed, and at Seal the manifest listing them and the signature.
// Nothing but the current entry's buffers is held in memory.
//
// The limits are those Open applies to what it reads, so that a container
// the writer finishes is one Open accepts.
type Writer struct {
	zw      *zip.Writer
	lim     Limits
	names   map[string]bool
	objects []Written
	total   int64
	done    bool
	// modified dates every entry: the time the container was begun (a
	// zero time would be written as the invalid DOS date 1980-00-00).
	modified time.Time
}

// NewWriter starts a container on w and writes the mimetype entry. Zero
// fields of lim take DefaultLimits.
func NewWriter(w io.Writer, lim Limits) (*Writer, error) {
	zw := zip.NewWriter(w)
	// The mimetype is stored, first, and carries its sizes in the local
	// header (no data descriptor): EN 319 162-1 A.1 wants it readable at a
	// fixed offset, and java.util.zip (DSS) cannot read a stored entry that
	// has a data descriptor.
	mt := []byte(MimeTypeE)
	now := time.Now().UTC().Truncate(time.Second)
	fw, err := zw.CreateRaw(&zip.FileHeader{Name: "mimetype", Method: zip.Store, CRC32: crc32.ChecksumIEEE(mt),
		CompressedSize64: uint64(len(mt)), UncompressedSize64: uint64(len(mt)), Modified: now})
	if err != nil {
		return nil, fmt.Errorf("asic: write mimetype: %w", err)
	}
	if _, err := fw.Write(mt); err != nil {
		return nil, fmt.Errorf("asic: write mimetype: %w", err)
	}
	return &Writer{zw: zw, lim: lim.withDefaults(), names: map[string]bool{"mimetype": true}, modified: now}, nil
}

// Add writes one data object, read from r to its end. name is the path in
// the container (outside META-INF/, checked as Open checks names);
// mediaType goes into the manifest.
func (w *Writer) Add(ctx context.Context, name, mediaType string, r io.Reader) (Written, error) {
	if w.done {
		return Written{}, errors.New("asic: Add after Seal")
	}
	if err := checkName(name); err != nil {
		return Written{}, fmt.Errorf("asic: data object: %w", err)
	}
	if strings.HasSuffix(name, "/") || strings.HasPrefix(name, "META-INF/") || name == "mimetype" {
		return Written{}, fmt.Errorf("asic: %q cannot be a data object", name)
	}
	if w.names[strings.ToLower(name)] {
		return Written{}, fmt.Errorf("asic: data object %q added twice", name)
	}
	// Two entries for META-INF and the room for them are kept free.
	if len(w.names)+1 > w.lim.MaxEntries-2 {
		return Written{}, fmt.Errorf("%w: more than %d entries", ErrWriterLimit, w.lim.MaxEntries)
	}
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	w.names[strings.ToLower(name)] = true
	fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: w.modified})
	if err != nil {
		return Written{}, fmt.Errorf("asic: add %s: %w", name, err)
	}
	h := sha256.New()
	room := min(w.lim.MaxEntrySize, w.lim.MaxTotalSize-w.total)
	n, err := io.Copy(io.MultiWriter(fw, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, room+1)})
	if err != nil {
		return Written{}, fmt.Errorf("asic: add %s: %w", name, err)
	}
	if n > room {
		return Written{}, fmt.Errorf("%w: %s passes the size limits", ErrWriterLimit, name)
	}
	w.total += n
	out := Written{Name: name, MediaType: mediaType, Size: n}
	h.Sum(out.SHA256[:0])
	w.objects = append(w.objects, out)
	return out, nil
}

// Objects returns the data objects written so far.
func (w *Writer) Objects() []Written { return append([]Written(nil), w.objects...) }

// Seal writes the manifest over every data object and the sealer's
// signature over the manifest, and finishes the archive. It does not close
// the underlying writer.
func (w *Writer) Seal(ctx context.Context, s Sealer) error {
	if w.done {
		return errors.New("asic: Seal called twice")
	}
	w.done = true
	if len(w.objects) == 0 {
		return errors.New("asic: a container needs at least one data object")
	}
	manifest := BuildManifest(SignatureName, w.objects)
	sig, err := s.Seal(ctx, manifest)
	if err != nil {
		return fmt.Errorf("asic: seal the manifest: %w", err)
	}
	for _, e := range []struct {
		name string
		data []byte
	}{{ManifestName, manifest}, {SignatureName, sig}} {
		fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: w.modified})
		if err != nil {
			return fmt.Errorf("asic: write %s: %w", e.name, err)
		}
		if _, err := fw.Write(e.data); err != nil {
			return fmt.Errorf("asic: write %s: %w", e.name, err)
		}
	}
	if err := w.zw.Close(); err != nil {
		return fmt.Errorf("asic: finish the archive: %w", err)
	}
	return nil
}

// BuildManifest returns the ASiCManifest naming the CAdES signature sigRef
// and listing objects with their SHA-256 digests, in order.
func BuildManifest(sigRef string, objects []Written) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>` + "\n")
	fmt.Fprintf(&b, `<asic:ASiCManifest xmlns:asic="%s" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">`+"\n", NamespaceASiC)
	fmt.Fprintf(&b, `<asic:SigReference URI="%s" MimeType="application/x-pkcs7-signature"/>`+"\n", attr(uriOf(sigRef)))
	for _, o := range objects {
		fmt.Fprintf(&b, `<asic:DataObjectReference URI="%s" MimeType="%s">`+
			`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>`+
			`<ds:DigestValue>%s</ds:DigestValue></asic:DataObjectReference>`+"\n",
			attr(uriOf(o.Name)), attr(o.MediaType), base64.StdEncoding.EncodeToString(o.SHA256[:]))
	}
	b.WriteString(`</asic:ASiCManifest>` + "\n")
	return []byte(b.String())
}

// uriOf percent-encodes each path segment of an entry name (Resolve
// decodes it again).
func uriOf(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
