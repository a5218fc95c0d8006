// Package asictest builds ASiC containers for tests: ZIP archives with a
// stored mimetype first, XAdESSignatures wrappers and ASiCManifest files.
// The signatures inside come from xmldsigtest and verifytest (openssl).
package asictest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/asic"
)

// Entry is one file of the archive; Store keeps it uncompressed.
type Entry struct {
	Name  string
	Data  []byte
	Store bool
}

// Zip writes the entries in order.
func Zip(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		var w io.Writer
		var err error
		if e.Store {
			// Stored entries carry their sizes in the local header, no
			// data descriptor: java.util.zip (DSS) cannot read a stored
			// entry with one, and EN 319 162-1 wants the mimetype readable
			// at a fixed offset.
			w, err = zw.CreateRaw(&zip.FileHeader{Name: e.Name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(e.Data),
				CompressedSize64: uint64(len(e.Data)), UncompressedSize64: uint64(len(e.Data))})
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Deflate})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// MimeType is the stored first entry of a container of type mt.
func MimeType(mt string) Entry {
	return Entry{Name: "mimetype", Data: []byte(mt), Store: true}
}

// XAdESSignatures wraps signature documents (each an XML document whose
// root is ds:Signature, as xmldsigtest makes them) into one
// asic:XAdESSignatures document. The signatures must use exclusive
// canonicalization, which the new ancestor does not change.
func XAdESSignatures(sigs ...[]byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<asic:XAdESSignatures xmlns:asic="%s">`, asic.NamespaceASiC)
	for _, s := range sigs {
		str := string(s)
		if strings.HasPrefix(str, "<?xml") {
			str = str[strings.Index(str, "?>")+2:]
		}
		b.WriteString(strings.TrimSpace(str))
	}
	b.WriteString(`</asic:XAdESSignatures>`)
	return []byte(b.String())
}

// Manifest writes an ASiCManifest naming sigRef and listing files with
// their SHA-256 digests.
func Manifest(sigRef string, files ...Entry) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<asic:ASiCManifest xmlns:asic="%s" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><asic:SigReference URI="%s" MimeType="application/x-pkcs7-signature"/>`, asic.NamespaceASiC, sigRef)
	for _, f := range files {
		sum := sha256.Sum256(f.Data)
		fmt.Fprintf(&b, `<asic:DataObjectReference URI="%s" MimeType="text/plain"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>%s</ds:DigestValue></asic:DataObjectReference>`,
			f.Name, base64.StdEncoding.EncodeToString(sum[:]))
	}
	b.WriteString(`</asic:ASiCManifest>`)
	return []byte(b.String())
}
