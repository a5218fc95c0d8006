package verify

import (
	"context"
	"testing"
	"time"
)

// FuzzVerify feeds hostile input through detection, the MIME walker and
// the CMS path: an error or a report, never a panic.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/signed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\nContent-Type: application/pkcs7-mime\nContent-Transfer-Encoding: base64\n\nMIIB\n--a--\n"))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00})
	f.Add([]byte("-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n"))
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(context.Background(), data, Options{Time: at, Detached: []byte("x"), MIMEContent: true})
		if err == nil && rep == nil {
			t.Fatal("no report and no error")
		}
	})
}
