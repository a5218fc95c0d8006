package pades

import (
	"bytes"
	"fmt"
	"sort"
)

// ChangeKind classifies an object a later revision added or changed, after
// the permitted changes of ISO 32000-1 section 12.8.2.2 (DocMDP) and the
// additions of PAdES (EN 319 142-1 section 5.4).
type ChangeKind string

// Kinds of change. Content is anything not permitted after signing: page
// contents, resources, the page tree, or an object we cannot place.
const (
	ChangeSignature      ChangeKind = "signature"       // a further signature or document timestamp
	ChangeValidationData ChangeKind = "validation-data" // DSS and VRI dictionaries and their streams
	ChangeFormFill       ChangeKind = "form-fill"       // field values, the form dictionary
	ChangeAnnotation     ChangeKind = "annotation"      // annotations and their appearances
	ChangeMetadata       ChangeKind = "metadata"        // the XMP metadata stream
	ChangeContent        ChangeKind = "content"
)

// Change is one object a later revision added or changed.
type Change struct {
	Object Ref
	Kind   ChangeKind
	Detail string
}

// maxChanges bounds the objects compared per signature.
const maxChanges = 20000

// Changes compares every object the revisions after end define with its
// state at end, and classifies the differences. end 0 or the file's end
// means there are none.
func (d *Document) Changes(end int64) ([]Change, error) {
	if end <= 0 || end >= d.size {
		return nil, nil
	}
	nums := map[int64]bool{}
	for _, s := range d.sections {
		if s.offset < end {
			continue
		}
		for n := range s.entries {
			if n != 0 {
				nums[n] = true
			}
		}
		if len(nums) > maxChanges {
			return nil, malformed("more than %d objects changed after the signature", maxChanges)
		}
	}
	sorted := make([]int64, 0, len(nums))
	for n := range nums {
		sorted = append(sorted, n)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	dssRefs := d.dssObjects()
	var out []Change
	for _, n := range sorted {
		e, _ := d.entry(n, 0)
		ref := Ref{Num: n, Gen: e.gen}
		if e.kind == 1 && d.misplaced(n, e) {
			// The shadow attacks point an entry at another object, which
			// a lax reader then shows in its place.
			out = append(out, Change{Object: ref, Kind: ChangeContent, Detail: fmt.Sprintf("cross-reference entry points at another object (offset %d)", e.offset)})
			continue
		}
		if e.kind == 0 {
			if old, err := d.Resolve(Ref{Num: n, Gen: e.gen - 1}, end); err == nil && old != nil {
				out = append(out, Change{Object: ref, Kind: ChangeContent, Detail: "object deleted"})
			} else if old, err := d.Resolve(Ref{Num: n}, end); err == nil && old != nil {
				out = append(out, Change{Object: ref, Kind: ChangeContent, Detail: "object deleted"})
			}
			continue
		}
		now, err := d.Resolve(ref, 0)
		if err != nil {
			return nil, err
		}
		before, err := d.Resolve(ref, end)
		if err != nil {
			return nil, err
		}
		if d.sameObject(before, now) {
			continue
		}
		if c, ok := d.classify(ref, before, now, dssRefs, end); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// misplaced reports whether the object at e's offset is not object n.
func (d *Document) misplaced(n int64, e xrefEntry) bool {
	num, _, err := d.indirectAt(e.offset)
	return err != nil || num != n
}

// sameObject compares objects by value; streams by dictionary and raw data.
func (d *Document) sameObject(a, b Object) bool {
	sa, ok1 := a.(*Stream)
	sb, ok2 := b.(*Stream)
	if !ok1 || !ok2 {
		return equalObjects(a, b)
	}
	if sa.Offset == sb.Offset {
		return true
	}
	if !equalObjects(sa.Dict, sb.Dict) {
		return false
	}
	ra, err1 := d.rawStream(sa)
	rb, err2 := d.rawStream(sb)
	return err1 == nil && err2 == nil && bytes.Equal(ra, rb)
}

func (d *Document) rawStream(s *Stream) ([]byte, error) {
	n, ok := s.Dict["Length"].(int64)
	if !ok || n < 0 || n > int64(d.lim.MaxStreamBytes) || s.Offset+n > d.size {
		return nil, malformed("stream length")
	}
	b, _, err := d.readAt(s.Offset, int(n))
	return b, err
}

// dssObjects lists the objects the final DSS dictionary refers to (its
// arrays, their streams, the VRI dictionary and entries).
func (d *Document) dssObjects() map[int64]bool {
	out := map[int64]bool{}
	root, err := d.ResolveDict(d.Trailer(0)["Root"], 0)
	if err != nil || root == nil {
		return out
	}
	var mark func(o Object, depth int)
	mark = func(o Object, depth int) {
		if depth > 4 || len(out) > maxChanges {
			return
		}
		if r, ok := o.(Ref); ok {
			if out[r.Num] {
				return
			}
			out[r.Num] = true
			var err error
			if o, err = d.Resolve(r, 0); err != nil {
				return
			}
		}
		switch v := o.(type) {
		case Array:
			for _, x := range v {
				mark(x, depth+1)
			}
		case Dict:
			for _, x := range v {
				mark(x, depth+1)
			}
		}
	}
	mark(root["DSS"], 0)
	return out
}

func dictOf(o Object) Dict {
	switch v := o.(type) {
	case Dict:
		return v
	case *Stream:
		return v.Dict
	}
	return nil
}

// classify says what kind of change now (formerly before, nil when new)
// is. Internal structure (cross-reference and object streams) is no change
// of its own.
func (d *Document) classify(ref Ref, before, now Object, dss map[int64]bool, end int64) (Change, bool) {
	c := Change{Object: ref}
	nd, bd := dictOf(now), dictOf(before)
	typ, _ := nd["Type"].(Name)
	sub, _ := nd["Subtype"].(Name)
	switch {
	case typ == "XRef" || typ == "ObjStm":
		return c, false
	case dss[ref.Num] || typ == "DSS":
		c.Kind = ChangeValidationData
	case typ == "Sig" || typ == "DocTimeStamp" || nd["ByteRange"] != nil:
		c.Kind = ChangeSignature
	case nd["FT"] == Name("Sig"):
		c.Kind = ChangeSignature
	case nd["FT"] != nil || nd["Fields"] != nil:
		c.Kind = ChangeFormFill
	case typ == "Annot" || (sub != "" && nd["Rect"] != nil):
		c.Kind = ChangeAnnotation
	case typ == "XObject" && sub == "Form" && before == nil:
		c.Kind = ChangeAnnotation
		c.Detail = "appearance stream"
	case typ == "Metadata":
		c.Kind = ChangeMetadata
	case typ == "Catalog":
		c.Kind, c.Detail = catalogChange(bd, nd)
	case typ == "Page":
		c.Kind, c.Detail = d.pageChange(bd, nd, end)
	case before == nil && typ == "Font":
		c.Kind, c.Detail = ChangeAnnotation, "font for an appearance"
	case before == nil:
		// A new object changes nothing until a changed object refers to
		// it, and that one is classified on its own.
		return c, false
	case extends(before, now):
		c.Kind, c.Detail = ChangeFormFill, "array extended (fields or annotations)"
	default:
		c.Kind = ChangeContent
	}
	if c.Detail == "" {
		c.Detail = describe(typ, sub)
	}
	return c, true
}

func describe(typ, sub Name) string {
	switch {
	case typ != "" && sub != "":
		return fmt.Sprintf("/%s /%s", typ, sub)
	case typ != "":
		return "/" + string(typ)
	case sub != "":
		return "/" + string(sub)
	}
	return "object"
}

// catalogChange permits the catalog to gain a DSS, a form or an updated
// form and metadata; anything else is a content change.
func catalogChange(before, now Dict) (ChangeKind, string) {
	if equalExcept(before, now, "DSS") {
		return ChangeValidationData, "catalog /DSS"
	}
	if equalExcept(before, now, "DSS", "AcroForm", "Metadata", "Perms") {
		return ChangeFormFill, "catalog form entries"
	}
	return ChangeContent, "document catalog"
}

// equalExcept compares two dictionaries ignoring the keys given.
func equalExcept(a, b Dict, keys ...Name) bool {
	if a == nil || b == nil {
		return false
	}
	skip := func(k Name) bool {
		for _, x := range keys {
			if x == k {
				return true
			}
		}
		return false
	}
	for k, v := range a {
		if !skip(k) && !equalObjects(v, b[k]) {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !skip(k) {
			return false
		}
	}
	return true
}

// extends reports whether now is the array before with elements appended.
func extends(before, now Object) bool {
	a, ok1 := before.(Array)
	b, ok2 := now.(Array)
	if !ok1 || !ok2 || len(b) <= len(a) {
		return false
	}
	return equalObjects(a, b[:len(a)])
}

// pageChange permits a page to gain annotations and resources (names a
// new appearance uses); changed contents or a resource name that now means
// something else are content changes.
func (d *Document) pageChange(before, now Dict, end int64) (ChangeKind, string) {
	if equalExcept(before, now, "Annots") {
		return ChangeAnnotation, "page annotations list"
	}
	if !equalExcept(before, now, "Annots", "Resources") {
		return ChangeContent, "page dictionary"
	}
	old, err1 := d.ResolveDict(before["Resources"], end)
	cur, err2 := d.ResolveDict(now["Resources"], 0)
	if err1 != nil || err2 != nil || !d.resourcesExtend(old, cur, end) {
		return ChangeContent, "page resources changed"
	}
	return ChangeAnnotation, "page resources extended"
}

// resourcesExtend reports whether every resource name of old means the same
// in cur.
func (d *Document) resourcesExtend(old, cur Dict, end int64) bool {
	if old == nil {
		return true
	}
	for cat, v := range old {
		ov, err1 := d.Resolve(v, end)
		nv, err2 := d.Resolve(cur[cat], 0)
		if err1 != nil || err2 != nil {
			return false
		}
		od, ok1 := ov.(Dict)
		nd, ok2 := nv.(Dict)
		if !ok1 || !ok2 {
			if !equalObjects(ov, nv) {
				return false
			}
			continue
		}
		for name, x := range od {
			if !equalObjects(x, nd[name]) {
				return false
			}
		}
	}
	return true
}
