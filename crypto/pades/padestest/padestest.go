// Package padestest writes small PDFs for the tests of crypto/pades and its
// users: a one-page document with an empty signature field, signed as an
// incremental update (the CMS comes from a callback, e.g. openssl cms via
// crypto/verify/verifytest), and further incremental updates that add an
// annotation, change the page content or rewrite the signature dictionary.
// The files are laid out as real producers lay them out: cross-reference
// tables, one revision per update, /Prev chains.
package padestest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
)

// Object numbers of the generated document.
const (
	ObjCatalog = 1
	ObjPages   = 2
	ObjPage    = 3
	ObjContent = 4
	ObjField   = 5
	ObjSig     = 6
	ObjFont    = 7
	ObjFiller  = 8
	// ObjField2 and ObjSig2 are the second signature field and its value.
	ObjField2 = 10
	ObjSig2   = 11
	// Size is the /Size of every revision's trailer (objects 0..11).
	Size = 12
)

// ContentsSize is the room reserved for the CMS in /Contents, in bytes.
const ContentsSize = 16 << 10

// Unsigned returns a one-page PDF showing text, with an unsigned signature
// field. filler adds an unreferenced-by-content stream of that many bytes,
// to make large documents for benchmarks.
func Unsigned(text string, filler int) []byte {
	objs := map[int]string{
		ObjCatalog: "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] /SigFlags 3 >> >>",
		ObjPages:   "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		ObjPage:    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] /Resources << /Font << /F1 7 0 R >> >> >>",
		ObjContent: stream("", fmt.Sprintf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)),
		ObjField:   "<< /FT /Sig /T (Signature1) /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /F 132 /P 3 0 R >>",
		ObjFont:    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	if filler > 0 {
		objs[ObjFiller] = stream("", string(bytes.Repeat([]byte("% filler line of the benchmark document\n"), filler/40+1)[:filler]))
	}
	return Update([]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), objs)
}

func stream(dict, data string) string {
	return fmt.Sprintf("<< %s/Length %d >>\nstream\n%s\nendstream", dict, len(data)+1, data)
}

// Update appends an incremental update defining objs (object number to
// body) with a cross-reference table and a trailer chained to the previous
// one; on a file without a startxref it writes the first revision.
func Update(pdf []byte, objs map[int]string) []byte {
	var b bytes.Buffer
	b.Write(pdf)
	nums := make([]int, 0, len(objs))
	for n := range objs {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	offsets := map[int]int{}
	for _, n := range nums {
		offsets[n] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, objs[n])
	}
	xref := b.Len()
	b.WriteString("xref\n")
	prev, hasPrev := lastStartXref(pdf)
	if !hasPrev {
		b.WriteString("0 1\n0000000000 65535 f\r\n")
	}
	for _, n := range nums {
		fmt.Fprintf(&b, "%d 1\n%010d 00000 n\r\n", n, offsets[n])
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R", Size)
	if hasPrev {
		fmt.Fprintf(&b, " /Prev %d", prev)
	}
	fmt.Fprintf(&b, " >>\nstartxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

func lastStartXref(pdf []byte) (int, bool) {
	i := bytes.LastIndex(pdf, []byte("startxref\n"))
	if i < 0 {
		return 0, false
	}
	rest := pdf[i+len("startxref\n"):]
	j := bytes.IndexByte(rest, '\n')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}

// Signer makes the CMS over the bytes a signature covers.
type Signer func(covered []byte) ([]byte, error)

// Sign adds a signature (subFilter ETSI.CAdES.detached, adbe.pkcs7.detached
// or, with typ "DocTimeStamp", ETSI.RFC3161) to the field as an incremental
// update, as a PDF signer does: the ByteRange is filled in, then the CMS
// over it is written into the reserved /Contents.
func Sign(pdf []byte, typ, subFilter string, sign Signer) ([]byte, error) {
	return signField(pdf, 1, typ, subFilter, "", sign)
}

// Certify signs as Sign does with a certification signature (ISO 32000-1
// section 12.8.2.2) granting DocMDP permission p (1, 2 or 3).
func Certify(pdf []byte, p int, sign Signer) ([]byte, error) {
	ref := fmt.Sprintf("/Reference [<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type /TransformParams /P %d /V /1.2 >> >>] ", p)
	return signField(pdf, 1, "Sig", "ETSI.CAdES.detached", ref, sign)
}

// SignSecond adds a second signature field to the page and signs it as
// Sign does: a further signature or a document timestamp after the first.
func SignSecond(pdf []byte, typ, subFilter string, sign Signer) ([]byte, error) {
	return signField(pdf, 2, typ, subFilter, "", sign)
}

func signField(pdf []byte, field int, typ, subFilter, extra string, sign Signer) ([]byte, error) {
	placeholder := "[0 0000000000 0000000000 0000000000]"
	sig := fmt.Sprintf("<< /Type /%s /Filter /Adobe.PPKLite /SubFilter /%s /M (D:20261202101500Z) %s/ByteRange %s /Contents <%s> >>",
		typ, subFilter, extra, placeholder, bytes.Repeat([]byte("0"), 2*ContentsSize))
	objs := map[int]string{
		ObjField: "<< /FT /Sig /T (Signature1) /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /F 132 /P 3 0 R /V 6 0 R >>",
		ObjSig:   sig,
	}
	if field == 2 {
		objs = map[int]string{
			ObjCatalog: "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R 10 0 R] /SigFlags 3 >> >>",
			ObjPage:    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R 10 0 R] /Resources << /Font << /F1 7 0 R >> >> >>",
			ObjField2:  "<< /FT /Sig /T (Signature2) /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /F 132 /P 3 0 R /V 11 0 R >>",
			ObjSig2:    sig,
		}
	}
	out := Update(pdf, objs)
	at := bytes.LastIndex(out, []byte(placeholder))
	gapStart := bytes.Index(out[at:], []byte("/Contents <")) + at + len("/Contents ")
	gapEnd := gapStart + 2*ContentsSize + 2
	br := fmt.Sprintf("[0 %010d %010d %010d]", gapStart, gapEnd, len(out)-gapEnd)
	copy(out[at:], br)
	covered := append(append([]byte(nil), out[:gapStart]...), out[gapEnd:]...)
	cms, err := sign(covered)
	if err != nil {
		return nil, err
	}
	if len(cms) > ContentsSize {
		return nil, fmt.Errorf("padestest: CMS of %d bytes does not fit the %d reserved", len(cms), ContentsSize)
	}
	hex.Encode(out[gapStart+1:], cms)
	return out, nil
}

// AddAnnotation appends an update with a text annotation on the page: a
// change permitted after signing.
func AddAnnotation(pdf []byte) []byte {
	return Update(pdf, map[int]string{
		ObjPage: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R 9 0 R] /Resources << /Font << /F1 7 0 R >> >> >>",
		9:       "<< /Type /Annot /Subtype /Text /Rect [100 100 120 120] /Contents (Eingangsvermerk) >>",
	})
}

// ChangeContent appends an update that replaces the page's text: a content
// change after signing.
func ChangeContent(pdf []byte, text string) []byte {
	return Update(pdf, map[int]string{
		ObjContent: stream("", fmt.Sprintf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)),
	})
}

// RewriteSignature appends an update that redefines the signature
// dictionary with another /M: the dictionary signed is no longer the one
// the final revision shows.
func RewriteSignature(pdf []byte) ([]byte, error) {
	start := bytes.LastIndex(pdf, []byte("6 0 obj\n"))
	if start < 0 {
		return nil, fmt.Errorf("padestest: no signature dictionary")
	}
	end := bytes.Index(pdf[start:], []byte("\nendobj"))
	body := bytes.Replace(pdf[start+len("6 0 obj\n"):start+end], []byte("(D:20261202101500Z)"), []byte("(D:20201202101500Z)"), 1)
	return Update(pdf, map[int]string{ObjSig: string(body)}), nil
}
