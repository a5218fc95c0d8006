package asic_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/asic/asictest"
)

var (
	sigEntry = asictest.Entry{Name: "META-INF/signature.p7s", Data: []byte{0x30, 0}}
	doc      = asictest.Entry{Name: "antrag.txt", Data: []byte("Antrag\n")}
)

func TestOpenTypes(t *testing.T) {
	tests := []struct {
		name    string
		entries []asictest.Entry
		typ     string
		objects int
	}{
		{"ASiC-S by mimetype", []asictest.Entry{asictest.MimeType(asic.MimeTypeS), doc, sigEntry}, asic.TypeS, 1},
		{"ASiC-S without mimetype", []asictest.Entry{doc, sigEntry}, asic.TypeS, 1},
		{"ASiC-E", []asictest.Entry{asictest.MimeType(asic.MimeTypeE), doc, {Name: "anlage/plan.pdf", Data: []byte("%PDF")}, {Name: "META-INF/signatures001.xml", Data: []byte("<a/>")}}, asic.TypeE, 2},
		{"ASiC-E with manifest", []asictest.Entry{asictest.MimeType(asic.MimeTypeE), doc, {Name: "META-INF/ASiCManifest001.xml", Data: []byte("<a/>")}, {Name: "META-INF/signature001.p7s", Data: []byte{0x30}}}, asic.TypeE, 1},
		{"directory entries skipped", []asictest.Entry{asictest.MimeType(asic.MimeTypeE), {Name: "META-INF/"}, doc, {Name: "META-INF/signatures.xml", Data: []byte("<a/>")}}, asic.TypeE, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := asic.Open(context.Background(), asictest.Zip(t, tc.entries...), asic.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if c.Type != tc.typ || len(c.DataObjects) != tc.objects {
				t.Errorf("type %s with %d data objects, want %s with %d", c.Type, len(c.DataObjects), tc.typ, tc.objects)
			}
		})
	}
}

// TestOpenHostile: every archive here must be refused with a reason,
// before any large allocation.
func TestOpenHostile(t *testing.T) {
	zeros := bytes.Repeat([]byte{0}, 8<<20)
	tests := []struct {
		name    string
		entries []asictest.Entry
		lim     asic.Limits
		want    string
	}{
		{"path traversal", []asictest.Entry{{Name: "../../etc/passwd", Data: []byte("x")}, sigEntry}, asic.Limits{}, ".. segment"},
		{"absolute path", []asictest.Entry{{Name: "/etc/passwd", Data: []byte("x")}, sigEntry}, asic.Limits{}, "absolute"},
		{"drive letter", []asictest.Entry{{Name: "C:/x", Data: []byte("x")}, sigEntry}, asic.Limits{}, "absolute"},
		{"backslash", []asictest.Entry{{Name: `META-INF\..\x`, Data: []byte("x")}, sigEntry}, asic.Limits{}, "backslash"},
		{"duplicate names", []asictest.Entry{doc, {Name: "Antrag.txt", Data: []byte("y")}, sigEntry}, asic.Limits{}, "occurs twice"},
		{"mimetype not first", []asictest.Entry{doc, asictest.MimeType(asic.MimeTypeS), sigEntry}, asic.Limits{}, "not the first"},
		{"mimetype compressed", []asictest.Entry{{Name: "mimetype", Data: []byte(asic.MimeTypeS)}, doc, sigEntry}, asic.Limits{}, "compressed"},
		{"no signature", []asictest.Entry{asictest.MimeType(asic.MimeTypeE), doc}, asic.Limits{}, "no signature"},
		{"ASiC-S with two documents", []asictest.Entry{asictest.MimeType(asic.MimeTypeS), doc, {Name: "b.txt", Data: []byte("b")}, sigEntry}, asic.Limits{}, "exactly one"},
		{"zip bomb ratio", []asictest.Entry{{Name: "bomb.bin", Data: zeros}, sigEntry}, asic.Limits{}, "compression ratio"},
		{"entry too large", []asictest.Entry{{Name: "big.bin", Data: zeros, Store: true}, sigEntry}, asic.Limits{MaxEntrySize: 1 << 20}, "more than"},
		{"too many entries", []asictest.Entry{doc, {Name: "b", Data: nil}, {Name: "c", Data: nil}, sigEntry}, asic.Limits{MaxEntries: 3}, "4 entries"},
		{"total too large", []asictest.Entry{{Name: "a.bin", Data: zeros[:600<<10], Store: true}, {Name: "b.bin", Data: zeros[:600<<10], Store: true}, sigEntry}, asic.Limits{MaxTotalSize: 1 << 20}, "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := asic.Open(context.Background(), asictest.Zip(t, tc.entries...), tc.lim)
			if !errors.Is(err, asic.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrMalformed containing %q", err, tc.want)
			}
		})
	}
}

// TestOpenLyingSizes: an entry whose header understates its size is cut
// at the cap while inflating.
func TestOpenLyingSizes(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "x.bin", Method: zip.Store, CompressedSize64: 2 << 20, UncompressedSize64: 10, CRC32: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte{1}, 2<<20))
	w2, _ := zw.Create("META-INF/signature.p7s")
	w2.Write([]byte{0x30})
	zw.Close()
	if _, err := asic.Open(context.Background(), b.Bytes(), asic.Limits{MaxEntrySize: 1 << 20}); !errors.Is(err, asic.ErrMalformed) {
		t.Errorf("got %v", err)
	}
}

func TestManifestCheck(t *testing.T) {
	other := asictest.Entry{Name: "anlage.pdf", Data: []byte("%PDF-1.7")}
	m := asictest.Manifest("META-INF/signature001.p7s", doc, other)
	data := asictest.Zip(t, asictest.MimeType(asic.MimeTypeE), doc, asictest.Entry{Name: "anlage.pdf", Data: []byte("%PDF-1.4")},
		asictest.Entry{Name: "META-INF/ASiCManifest001.xml", Data: m}, asictest.Entry{Name: "META-INF/signature001.p7s", Data: []byte{0x30}})
	c, err := asic.Open(context.Background(), data, asic.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mf, err := c.ManifestFor("META-INF/signature001.p7s")
	if err != nil {
		t.Fatal(err)
	}
	got := mf.Check(c)
	if len(got) != 2 || got[0].Status != asic.RefOK || got[1].Status != asic.RefMismatch {
		t.Errorf("checked %+v", got)
	}
	if _, err := c.ManifestFor("META-INF/other.p7s"); err == nil {
		t.Error("a manifest for a signature it does not name")
	}
}

func TestResolve(t *testing.T) {
	c, err := asic.Open(context.Background(), asictest.Zip(t, asictest.Entry{Name: "dir/a b.txt", Data: []byte("x")}, asictest.Entry{Name: "META-INF/signatures.xml", Data: []byte("<a/>")}), asic.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"dir/a b.txt", "dir/a%20b.txt", "../dir/a%20b.txt", "./dir/a b.txt"} {
		if _, name, ok := c.Resolve(uri); !ok || name != "dir/a b.txt" {
			t.Errorf("%q: %q %v", uri, name, ok)
		}
	}
	for _, uri := range []string{"a b.txt", "META-INF/signatures.xml", "../../dir/a b.txt"} {
		if _, _, ok := c.Resolve(uri); ok {
			t.Errorf("%q resolved", uri)
		}
	}
}
