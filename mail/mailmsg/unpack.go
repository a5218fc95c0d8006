package mailmsg

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/gateway"
)

// oidData is id-data, the content type of signed MIME entities and files.
var oidData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}

// unpackSignedData opens an enveloping CMS SignedData part and walks what it
// signs, below the part's path: for S/MIME (application/pkcs7-mime) a MIME
// entity, for a .p7m file the signed document, stored as part p.1. The
// signature itself is verified elsewhere; this only makes the content
// visible. The content is streamed out of the stored part (cms.ContentReader),
// so memory does not grow with its size; Limits.MaxUnpackBytes still bounds
// the work.
func (w *walker) unpackSignedData(part gateway.Part, mimeInside bool, depth int) error {
	p := part.Path
	if depth >= w.lim.MaxDepth {
		w.problemf("part %s: nested deeper than %d levels; signed content not unpacked", p, w.lim.MaxDepth)
		return nil
	}
	if part.Blob.Size > w.lim.MaxUnpackBytes {
		w.problemf("part %s: signed-data of %d bytes is over the %d byte unpacking limit; stored, not unpacked", p, part.Blob.Size, w.lim.MaxUnpackBytes)
		return nil
	}
	rc, err := w.store.Open(w.ctx, part.Blob)
	if err != nil {
		return fmt.Errorf("open part %s: %w", p, err)
	}
	defer rc.Close()
	src := sourceReader{rc}
	cr, err := cms.NewContentReader(src)
	switch {
	case errors.Is(err, cms.ErrFormat):
		w.problemf("part %s: signed-data not unpacked: %v", p, err)
		return nil
	case err != nil:
		return fmt.Errorf("read part %s: %w", p, err)
	case !cr.HasContent:
		w.problemf("part %s: signed-data carries no content", p)
		return nil
	case !cr.EContentType.Equal(oidData):
		w.problemf("part %s: signed content of type %v not unpacked", p, cr.EContentType)
		return nil
	}
	// Damage further in ends the content early and is reported; a failing
	// store stays an error.
	content := &softReader{r: cr, what: "signed-data", problem: w.partProblem(p)}
	if mimeInside {
		err = w.signedEntity(content, p, depth)
	} else {
		err = w.signedDocument(part, content, depth)
	}
	if err != nil {
		return err
	}
	// Read the rest, so that the store checks the part's digest at its end.
	if _, err := io.Copy(io.Discard, content); err != nil {
		return fmt.Errorf("read part %s: %w", p, err)
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("read part %s: %w", p, err)
	}
	return nil
}

// signedEntity walks the MIME entity inside an S/MIME signed-data part.
func (w *walker) signedEntity(content io.Reader, p string, depth int) error {
	hdr, br, ok, err := w.header(sourceReader{content}, "signed content "+p)
	if err != nil || !ok {
		return err
	}
	return w.entity(hdr, br, p, depth+1, true)
}

// signedDocument stores the document inside a .p7m file as part p.1, named
// after the file without its .p7m ending.
func (w *walker) signedDocument(part gateway.Part, content io.Reader, depth int) error {
	cp := join(part.Path, "1")
	head := &headReader{r: content}
	ref, ok, err := w.put(head, cp)
	if err != nil || !ok {
		return err
	}
	name := strings.TrimSuffix(part.Filename, path.Ext(part.Filename))
	mt := "application/octet-stream"
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		if m, _, err := mime.ParseMediaType(t); err == nil {
			mt = m
		}
	}
	kind, problem := classify(mt, nil, name, true, head.head)
	inner := gateway.Part{Path: cp, MediaType: mt, Filename: name, Blob: ref, Kind: kind}
	if problem != "" {
		inner.Problems = []string{problem}
	}
	if !w.add(inner) {
		return nil
	}
	if kind == KindSignedData {
		// A document signed more than once (file.pdf.p7m.p7m).
		return w.unpackSignedData(inner, false, depth+1)
	}
	return nil
}
