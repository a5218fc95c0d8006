package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

var refType = reflect.TypeFor[blob.Ref]()

// fillRefs sets every blob.Ref reachable from v (through structs, slices of
// two elements and pointers) to a distinct reference and returns them.
func fillRefs(v reflect.Value, n *int) []blob.Ref {
	switch {
	case v.Type() == refType:
		*n++
		r := blob.Ref{SHA256: fmt.Sprintf("%064x", *n), Size: int64(*n)}
		v.Set(reflect.ValueOf(r))
		return []blob.Ref{r}
	case v.Kind() == reflect.Struct:
		var out []blob.Ref
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, fillRefs(v.Field(i), n)...)
			}
		}
		return out
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		return append(fillRefs(v.Index(0), n), fillRefs(v.Index(1), n)...)
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		return fillRefs(v.Elem(), n)
	case v.Kind() == reflect.Map && v.Type().Elem().Kind() == reflect.Struct:
		panic(fmt.Sprintf("fillRefs: maps of structs (%s) are not walked; extend the test", v.Type()))
	}
	return nil
}

// notVouched are the payloads whose references name blobs that need not be
// there: ContentErased lists the blobs it erased, and `log verify --blobs`
// must not look for them.
var notVouched = map[string]struct{}{"ContentErased": {}}

// TestBlobRefsListsEveryRef walks every registered payload type, so that a
// new event type with a blob reference cannot be left out of log verify --blobs.
func TestBlobRefsListsEveryRef(t *testing.T) {
	r := NewRegistry()
	if len(r.types) < 11 {
		t.Fatalf("registry has %d types", len(r.types))
	}
	withRefs := 0
	for name, f := range r.types {
		p := f()
		var n int
		want := fillRefs(reflect.ValueOf(p).Elem(), &n)
		got := p.BlobRefs()
		if _, ok := notVouched[name]; ok {
			// The payload names blobs it does not vouch for.
			if len(got) != 0 {
				t.Errorf("%s.BlobRefs() = %v, want none", name, got)
			}
			continue
		}
		cmp := func(a, b blob.Ref) int { return int(a.Size - b.Size) }
		slices.SortFunc(got, cmp)
		if !slices.Equal(got, want) {
			t.Errorf("%s.BlobRefs() = %v, want every reference field %v", name, got, want)
		}
		if len(want) > 0 {
			withRefs++
		}
		// Unset references are not listed.
		if zero := f(); len(zero.BlobRefs()) != 0 {
			t.Errorf("%s lists unset references: %v", name, zero.BlobRefs())
		}
	}
	if withRefs != 7 {
		t.Errorf("%d payload types with blob references, want 7 (MessageReceived, ReplyRequested, ReplySent, SignaturesVerified, TimestampApplied, DeliveryEvidenceRecorded, EvidenceRecordSaved)", withRefs)
	}
}
