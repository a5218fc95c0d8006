package asic

import (
	"archive/zip"
	"bytes"
	"context"
	"testing"
)

// FuzzOpen feeds arbitrary archives to Open and the manifest checks: an
// error or a container, never a panic; seeds in testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "mimetype", Method: zip.Store})
	w.Write([]byte(MimeTypeE))
	w, _ = zw.Create("a.txt")
	w.Write([]byte("a"))
	w, _ = zw.Create("META-INF/ASiCManifest.xml")
	w.Write([]byte(`<asic:ASiCManifest xmlns:asic="http://uri.etsi.org/02918/v1.2.1#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><asic:SigReference URI="META-INF/signature.p7s"/><asic:DataObjectReference URI="a.txt"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=</ds:DigestValue></asic:DataObjectReference></asic:ASiCManifest>`))
	w, _ = zw.Create("META-INF/signature.p7s")
	w.Write([]byte{0x30, 0x00})
	zw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Open(context.Background(), data, Limits{MaxEntries: 50, MaxEntrySize: 1 << 20, MaxTotalSize: 4 << 20})
		if err != nil {
			return
		}
		for _, s := range c.CAdESSignatures {
			if m, err := c.ManifestFor(s.Name); err == nil {
				m.Check(c)
			}
		}
		c.Uncovered(map[string]bool{})
	})
}
