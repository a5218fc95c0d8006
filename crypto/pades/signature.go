package pades

import (
	"bytes"
	"fmt"
	"io"
	"sort"
)

// Signature dictionary types and the sub-filters PAdES knows.
const (
	TypeSig          Name = "Sig"
	TypeDocTimeStamp Name = "DocTimeStamp"

	SubFilterPKCS7Detached Name = "adbe.pkcs7.detached"
	SubFilterPKCS7SHA1     Name = "adbe.pkcs7.sha1"
	SubFilterCAdES         Name = "ETSI.CAdES.detached"
	SubFilterRFC3161       Name = "ETSI.RFC3161"
)

// maxFields bounds the form fields walked; maxSignatures the signatures
// verified (each hashes most of the file).
const (
	maxFields     = 10000
	maxSignatures = 64
)

// Problem is a structural defect of a signature in the PDF; any makes the
// signature's format fail.
type Problem struct {
	// ID is stable, e.g. "byterange".
	ID     string
	Detail string
}

// SignatureField is a signature dictionary found through a signature field
// of the form (ISO 32000-1 section 12.7.4.5), checked for structure.
type SignatureField struct {
	// Field is the field's fully qualified name.
	Field string
	// Ref is the signature dictionary's object.
	Ref       Ref
	Type      Name
	Filter    Name
	SubFilter Name
	// ByteRange as written; valid only when no "byterange" problem.
	ByteRange []int64
	// Contents is the CMS (or timestamp token) of /Contents, with the
	// zero padding after its DER element removed.
	Contents []byte
	// M is the signing time the dictionary claims (a PDF date string).
	M string
	// DocMDP is the certification signature's permission (/P of its
	// DocMDP transform: 1 no changes, 2 form filling and signing, 3 also
	// annotations); 0 when the signature sets none.
	DocMDP int
	// RevisionEnd is where the signed revision ends: ByteRange[2]+[3].
	RevisionEnd int64
	Problems    []Problem
}

// Covered opens the bytes the ByteRange covers as one stream, read from
// the file as it is consumed.
func (sf *SignatureField) Covered(d *Document) func() (io.ReadCloser, error) {
	br := sf.ByteRange
	return func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(
			io.NewSectionReader(d.r, br[0], br[1]),
			io.NewSectionReader(d.r, br[2], br[3]),
		)), nil
	}
}

func (sf *SignatureField) problem(id, format string, args ...any) {
	sf.Problems = append(sf.Problems, Problem{ID: id, Detail: fmt.Sprintf(format, args...)})
}

// Signatures finds every signature field with a value in the final
// revision's form and checks each signature dictionary's structure. They
// come in the order of the revisions they sign.
func (d *Document) Signatures() ([]*SignatureField, error) {
	root, err := d.ResolveDict(d.Trailer(0)["Root"], 0)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if root == nil {
		return nil, malformed("no document catalog")
	}
	form, err := d.ResolveDict(root["AcroForm"], 0)
	if err != nil || form == nil {
		return nil, err
	}
	w := &fieldWalker{d: d, seen: map[Ref]bool{}}
	if err := w.walk(form["Fields"], "", "", 0); err != nil {
		return nil, err
	}
	sort.SliceStable(w.out, func(i, j int) bool { return w.out[i].RevisionEnd < w.out[j].RevisionEnd })
	return w.out, nil
}

type fieldWalker struct {
	d     *Document
	seen  map[Ref]bool
	count int
	out   []*SignatureField
}

// walk visits the fields in o (an array of field references), passing the
// inheritable field type and the name prefix down the /Kids.
func (w *fieldWalker) walk(o Object, prefix string, ft Name, depth int) error {
	if depth > 32 {
		return malformed("form fields nested deeper than 32")
	}
	o, err := w.d.Resolve(o, 0)
	if err != nil {
		return err
	}
	arr, _ := o.(Array)
	for _, item := range arr {
		ref, isRef := item.(Ref)
		if isRef {
			if w.seen[ref] {
				continue
			}
			w.seen[ref] = true
		}
		w.count++
		if w.count > maxFields {
			return malformed("more than %d form fields", maxFields)
		}
		field, err := w.d.ResolveDict(item, 0)
		if err != nil {
			return err
		}
		if field == nil {
			continue
		}
		name := prefix
		if t, ok := field["T"].(String); ok {
			if name != "" {
				name += "."
			}
			name += string(t.Value)
		}
		fft := ft
		if t, ok := field["FT"].(Name); ok {
			fft = t
		}
		if _, ok := field["Kids"]; ok {
			if err := w.walk(field["Kids"], name, fft, depth+1); err != nil {
				return err
			}
		}
		if fft != "Sig" {
			continue
		}
		if len(w.out) >= maxSignatures {
			return malformed("more than %d signatures", maxSignatures)
		}
		vref, ok := field["V"].(Ref)
		if !ok {
			if _, direct := field["V"].(Dict); direct {
				// Its revision cannot be told apart from the field's: refuse
				// rather than skip a signature.
				sf := &SignatureField{Field: name, Type: TypeSig}
				sf.problem("dictionary", "the signature dictionary is not an indirect object")
				w.out = append(w.out, sf)
			}
			continue
		}
		sf, err := w.d.signatureField(name, vref)
		if err != nil {
			return err
		}
		w.out = append(w.out, sf)
	}
	return nil
}

// signatureField reads the signature dictionary ref and checks its
// ByteRange against the file and its /Contents string.
func (d *Document) signatureField(name string, ref Ref) (*SignatureField, error) {
	sf := &SignatureField{Field: name, Ref: ref}
	sig, err := d.ResolveDict(ref, 0)
	if err != nil {
		// One unreadable signature fails, not the document.
		sf.problem("dictionary", "the signature dictionary %s cannot be read: %v", ref, err)
		return sf, nil
	}
	if sig == nil {
		sf.problem("dictionary", "the signature value %s is not a dictionary", ref)
		return sf, nil
	}
	sf.Type, _ = sig["Type"].(Name)
	sf.Filter, _ = sig["Filter"].(Name)
	sf.SubFilter, _ = sig["SubFilter"].(Name)
	if m, ok := sig["M"].(String); ok {
		sf.M = string(m.Value)
	}
	if sf.Type == "" {
		sf.Type = TypeSig // optional for /Sig in ISO 32000-1
	}
	if sf.SubFilter == SubFilterRFC3161 {
		sf.Type = TypeDocTimeStamp
	}
	sf.DocMDP = d.docMDP(sig)
	contents, ok := sig["Contents"].(String)
	if !ok {
		sf.problem("contents", "/Contents is missing or not a direct string")
		return sf, nil
	}
	sf.Contents = trimDER(contents.Value)
	if !d.readByteRange(sf, sig) {
		return sf, nil
	}
	// What counts is the dictionary as signed: a later revision may have
	// replaced it (the spoofing attacks do).
	signed, err := d.ResolveDict(ref, sf.RevisionEnd)
	if err != nil || signed == nil {
		sf.problem("dictionary", "the signature dictionary %s is not part of the revision it signs", ref)
		return sf, nil
	}
	for _, k := range []Name{"Type", "Filter", "SubFilter", "ByteRange", "Contents", "Cert", "Reference", "M"} {
		if !equalObjects(signed[k], sig[k]) {
			sf.problem("dictionary", "/%s of the signature dictionary differs between the signed revision and the final one", k)
		}
	}
	sc, _ := signed["Contents"].(String)
	br := sf.ByteRange
	if !sc.Hex || sc.Start != br[1] || sc.End != br[2] {
		sf.problem("byterange", "the gap %d..%d is not exactly the /Contents hex string (at %d..%d)", br[1], br[2], sc.Start, sc.End)
	}
	if !d.isRevisionEnd(sf.RevisionEnd) {
		sf.problem("byterange", "the signed bytes end at %d, which is not the end of a revision", sf.RevisionEnd)
	}
	return sf, nil
}

// docMDP reads the /P of a DocMDP signature reference (ISO 32000-1 section
// 12.8.2.2; default 2).
func (d *Document) docMDP(sig Dict) int {
	refs, err := d.Resolve(sig["Reference"], 0)
	if err != nil {
		return 0
	}
	arr, _ := refs.(Array)
	for i, r := range arr {
		if i >= 8 {
			break
		}
		ref, err := d.ResolveDict(r, 0)
		if err != nil || ref == nil || ref["TransformMethod"] != Name("DocMDP") {
			continue
		}
		params, err := d.ResolveDict(ref["TransformParams"], 0)
		if err != nil {
			return 0
		}
		if p, ok := params["P"].(int64); ok && p >= 1 && p <= 3 {
			return int(p)
		}
		return 2
	}
	return 0
}

// readByteRange wants [0 a b c] with a <= b and both ranges inside the
// file; the gap's match with /Contents is checked by the caller.
func (d *Document) readByteRange(sf *SignatureField, sig Dict) bool {
	arr, ok := sig["ByteRange"].(Array)
	if !ok || len(arr) != 4 {
		sf.problem("byterange", "/ByteRange is not a direct array of four integers")
		return false
	}
	br := make([]int64, 4)
	for i, x := range arr {
		v, ok := x.(int64)
		if !ok || v < 0 {
			sf.problem("byterange", "/ByteRange entry %d is not a non-negative integer", i+1)
			return false
		}
		br[i] = v
	}
	sf.ByteRange = br
	switch {
	case br[0] != 0:
		sf.problem("byterange", "the first range starts at %d, not at the start of the file", br[0])
	case br[1] > br[2]:
		sf.problem("byterange", "the ranges overlap or are out of order (%d > %d)", br[1], br[2])
	case br[2] > d.size || br[3] > d.size-br[2]:
		sf.problem("byterange", "the second range %d+%d runs past the end of the file (%d bytes)", br[2], br[3], d.size)
	default:
		sf.RevisionEnd = br[2] + br[3]
		return true
	}
	return false
}

// isRevisionEnd accepts the end of the file and a revision's end, also
// without the end-of-line that follows %%EOF.
func (d *Document) isRevisionEnd(end int64) bool {
	if end == d.size {
		return true
	}
	for _, e := range d.RevisionEnds() {
		if e < 7 || end > e || end < e-2 {
			continue
		}
		tail, _, err := d.readAt(e-7, 7)
		if err != nil {
			continue
		}
		i := bytes.LastIndex(tail, []byte("%%EOF"))
		if i >= 0 && end >= e-7+int64(i)+5 {
			return true
		}
	}
	return false
}

// trimDER cuts the zero padding after the first DER/BER element; input
// that is not one is returned as it is, for the CMS parser to refuse.
func trimDER(b []byte) []byte {
	if n, ok := elementLength(b, 0); ok {
		return b[:n]
	}
	return b
}

// elementLength measures the BER element at the start of b.
func elementLength(b []byte, depth int) (int, bool) {
	if depth > 32 || len(b) < 2 || b[0]&0x1f == 0x1f {
		return 0, false
	}
	l := int(b[1])
	hdr := 2
	switch {
	case l < 0x80:
	case l == 0x80:
		if b[0]&0x20 == 0 {
			return 0, false
		}
		pos := 2
		for {
			if pos+2 <= len(b) && b[pos] == 0 && b[pos+1] == 0 {
				return pos + 2, true
			}
			n, ok := elementLength(b[pos:], depth+1)
			if !ok {
				return 0, false
			}
			pos += n
		}
	default:
		k := l & 0x7f
		if k > 4 || len(b) < 2+k {
			return 0, false
		}
		l = 0
		for _, c := range b[2 : 2+k] {
			l = l<<8 | int(c)
		}
		hdr += k
	}
	if l < 0 || hdr+l > len(b) {
		return 0, false
	}
	return hdr + l, true
}

// equalObjects compares two direct objects by value (strings by content,
// not position); references by identity.
func equalObjects(a, b Object) bool {
	switch x := a.(type) {
	case String:
		y, ok := b.(String)
		return ok && bytes.Equal(x.Value, y.Value)
	case Array:
		y, ok := b.(Array)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalObjects(x[i], y[i]) {
				return false
			}
		}
		return true
	case Dict:
		y, ok := b.(Dict)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalObjects(v, w) {
				return false
			}
		}
		return true
	case *Stream:
		y, ok := b.(*Stream)
		return ok && x.Offset == y.Offset
	}
	return a == b
}
