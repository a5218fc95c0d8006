package verify

import (
	"bytes"
)

// Format is what Detect recognised.
type Format string

// Formats Detect tells apart.
const (
	// FormatCMS is a DER/BER ContentInfo: CMS SignedData (CAdES, PKCS#7,
	// .p7s/.p7m), an RFC 3161 token (.tst) or TimeStampResp (.tsr).
	FormatCMS Format = "CMS"
	// FormatPEM is a PEM-wrapped CMS object.
	FormatPEM Format = "PEM"
	// FormatMIME is an Internet message or MIME entity (S/MIME).
	FormatMIME    Format = "MIME"
	FormatPDF     Format = "PDF"
	FormatXML     Format = "XML"
	FormatZIP     Format = "ZIP"
	FormatUnknown Format = "unknown"
)

// Detect recognises a file's format from its first bytes. It decides
// nothing about validity.
func Detect(data []byte) Format {
	head := data
	if len(head) > 4096 {
		head = head[:4096]
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(data) >= 2 && data[0] == 0x30:
		return FormatCMS
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN PKCS7-----")), bytes.HasPrefix(trimmed, []byte("-----BEGIN CMS-----")):
		return FormatPEM
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return FormatPDF
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return FormatZIP
	case bytes.HasPrefix(trimmed, []byte("<")), bytes.HasPrefix(head, []byte("\xef\xbb\xbf<")):
		return FormatXML
	case looksLikeMIME(head):
		return FormatMIME
	}
	return FormatUnknown
}

// looksLikeMIME accepts a header section whose first line is a header
// field and which declares a Content-Type.
func looksLikeMIME(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	end := bytes.Index(head, []byte("\n\n"))
	if e := bytes.Index(head, []byte("\r\n\r\n")); e >= 0 && (end < 0 || e < end) {
		end = e
	}
	if end < 0 {
		end = len(head)
	}
	return bytes.Contains(bytes.ToLower(head[:end]), []byte("content-type:"))
}
