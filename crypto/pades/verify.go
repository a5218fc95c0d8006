// Package pades verifies the signatures of PDF documents (ETSI EN 319 142,
// ISO 32000-1 section 12.8): it reads the PDF with its own strict, bounded
// parser (cross-reference tables and streams, object streams, incremental
// updates), finds every signature and document timestamp of the form,
// checks that each ByteRange covers the whole signed revision except
// exactly its /Contents, verifies the CMS with crypto/cms and document
// timestamps with crypto/tsp over the covered bytes (streamed from the
// file, never copied), classifies what later revisions changed, and
// collects the validation data of the DSS dictionaries. Certificate
// validation and the verdict are crypto/verify's.
package pades

import (
	"context"
	"crypto"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// Options control one verification.
type Options struct {
	Limits Limits
}

// Result is what Verify found in a PDF.
type Result struct {
	// Version is the header's PDF version.
	Version string
	// Repaired says why the cross-reference data was rebuilt; empty when
	// it was intact.
	Repaired string
	// Signatures are the signatures and document timestamps, in the order
	// of the revisions they sign.
	Signatures []*Signature
	// DSS is the validation material of the final revision's DSS
	// dictionary; nil when there is none.
	DSS *DSS
	// DSSRevisions are the ends of the revisions whose DSS dictionary
	// differs from the one before (first appearance or extension).
	DSSRevisions []int64
	// Size is the file's length.
	Size int64
}

// Signature is one signature field's signature and its verification.
type Signature struct {
	*SignatureField
	// SignedData is the parsed CMS (also of a document timestamp); nil
	// with ParseErr set when unreadable.
	SignedData *cms.SignedData
	ParseErr   error
	// CMS is the verification of a /Sig's SignedData over the covered
	// bytes; nil for document timestamps or when the CMS is unreadable.
	CMS *cms.Result
	// Token and Timestamp are a document timestamp and its verification
	// against the covered bytes.
	Token     *tsp.Token
	Timestamp *tsp.Result
	// Changes are what the revisions after this signature's changed.
	Changes []Change
}

// DocumentTimestamp reports whether s is a document timestamp.
func (s *Signature) DocumentTimestamp() bool { return s.Type == TypeDocTimeStamp }

// Verify reads the PDF in r (size bytes) and verifies every signature in it.
// An error means the file is no PDF we can read; defects of single
// signatures are in their results.
func Verify(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Result, error) {
	d, err := Open(ctx, r, size, opts.Limits)
	if err != nil {
		return nil, err
	}
	fields, err := d.Signatures()
	if err != nil {
		return nil, fmt.Errorf("pades: signature fields: %w", err)
	}
	res := &Result{Version: d.Version, Size: size}
	for _, sf := range fields {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := &Signature{SignatureField: sf}
		d.verifySignature(s)
		s.Changes, err = d.Changes(sf.RevisionEnd)
		if err != nil {
			sf.problem("changes", "the revisions after this signature cannot be read: %v", err)
		}
		res.Signatures = append(res.Signatures, s)
	}
	res.DSS, res.DSSRevisions = d.dssDictionaries()
	res.Repaired = d.Repaired
	return res, nil
}

// hashable reports whether the ByteRange lies inside the file, so that the
// covered bytes can be hashed even when the range is otherwise wrong (the
// digest then shows whether the signed bytes are intact).
func (s *Signature) hashable() bool {
	return len(s.ByteRange) == 4 && s.RevisionEnd > 0
}

func (d *Document) verifySignature(s *Signature) {
	if len(s.Contents) == 0 {
		s.ParseErr = fmt.Errorf("%w: empty /Contents", ErrMalformed)
		return
	}
	if s.DocumentTimestamp() {
		tok, err := tsp.ParseToken(s.Contents)
		if err != nil {
			s.ParseErr = err
			return
		}
		s.Token, s.SignedData = tok, tok.SignedData
		vo := tsp.VerifyOptions{}
		if s.hashable() && tok.Info.Hash.Available() {
			if dg, err := digest(s.Covered(d), tok.Info.Hash); err == nil {
				vo.Digest = dg
			}
		}
		s.Timestamp = tok.Verify(vo)
		return
	}
	sd, err := cms.Parse(s.Contents)
	if err != nil {
		s.ParseErr = err
		return
	}
	s.SignedData = sd
	vo := cms.VerifyOptions{}
	if s.hashable() {
		vo.DetachedReader = s.Covered(d)
	}
	s.CMS = sd.Verify(vo)
}

func digest(open func() (io.ReadCloser, error), h crypto.Hash) ([]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	w := h.New()
	if _, err := io.Copy(w, rc); err != nil {
		return nil, fmt.Errorf("pades: hash the signed bytes: %w", err)
	}
	return w.Sum(nil), nil
}

// DSS is the validation material of a DSS dictionary (ETSI EN 319 142-1
// section 5.4): certificates, OCSP responses (raw OCSPResponse) and CRLs
// (raw CertificateList), and the number of VRI entries.
type DSS struct {
	Certificates []*cert.Certificate
	OCSPs        [][]byte
	CRLs         [][]byte
	VRI          int
	// Problems are entries that could not be read; they do not stop the rest.
	Problems []string
}

// maxDSSItems bounds the entries read from each array of a DSS dictionary.
const maxDSSItems = 4096

// dssDictionaries reads the final revision's DSS and lists the revisions
// whose catalog changed it.
func (d *Document) dssDictionaries() (*DSS, []int64) {
	var revs []int64
	var prev Object
	for _, end := range d.RevisionEnds() {
		root, err := d.ResolveDict(d.Trailer(end)["Root"], end)
		if err != nil || root == nil {
			continue
		}
		cur := root["DSS"]
		if cur != nil && !equalObjects(cur, prev) {
			revs = append(revs, end)
		}
		prev = cur
	}
	root, err := d.ResolveDict(d.Trailer(0)["Root"], 0)
	if err != nil || root == nil {
		return nil, revs
	}
	dict, err := d.ResolveDict(root["DSS"], 0)
	if err != nil || dict == nil {
		return nil, revs
	}
	out := &DSS{}
	for i, raw := range d.dssStreams(dict, "Certs", out) {
		c, err := cert.Parse(raw)
		if err != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("DSS certificate %d: %v", i+1, err))
			continue
		}
		out.Certificates = append(out.Certificates, c)
	}
	out.OCSPs = d.dssStreams(dict, "OCSPs", out)
	out.CRLs = d.dssStreams(dict, "CRLs", out)
	if vri, err := d.ResolveDict(dict["VRI"], 0); err == nil {
		out.VRI = len(vri)
	}
	return out, revs
}

func (d *Document) dssStreams(dict Dict, key Name, out *DSS) [][]byte {
	o, err := d.Resolve(dict[key], 0)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("DSS /%s: %v", key, err))
		return nil
	}
	arr, _ := o.(Array)
	var items [][]byte
	for i, item := range arr {
		if i >= maxDSSItems {
			out.Problems = append(out.Problems, fmt.Sprintf("DSS /%s: more than %d entries, the rest ignored", key, maxDSSItems))
			break
		}
		so, err := d.Resolve(item, 0)
		if err != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("DSS /%s %d: %v", key, i+1, err))
			continue
		}
		st, ok := so.(*Stream)
		if !ok {
			out.Problems = append(out.Problems, fmt.Sprintf("DSS /%s %d: not a stream", key, i+1))
			continue
		}
		data, err := d.StreamData(st, 0)
		if err != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("DSS /%s %d: %v", key, i+1, err))
			continue
		}
		items = append(items, data)
	}
	return items
}
