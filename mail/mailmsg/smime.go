package mailmsg

import (
	"bytes"
	"path"
	"strings"
)

// Kinds of parts, as gateway.Part.Kind documents them, plus KindSignedContent.
const (
	KindBody       = "body"
	KindAttachment = "attachment"
	KindSignature  = "signature"
	KindSignedData = "signed-data"
	KindEncrypted  = "encrypted"
	KindMessage    = "message"
	KindContainer  = "container"
	// KindSignedContent marks the entry of a multipart/signed entity: its
	// blob holds the first body part exactly as it appeared between the
	// boundaries (header section included), which is what the detached
	// signature in the second body part covers.
	KindSignedContent = "signed-content"
)

// DER encodings of the CMS content type OIDs (RFC 5652, RFC 5083, RFC 3274)
// that tell S/MIME objects apart.
var (
	oidSignedData     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
	oidEnvelopedData  = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}
	oidAuthEnveloped  = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17}
	oidCompressedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x09}
)

// cmsContentType reads the contentType OID at the start of a DER or BER
// ContentInfo (SEQUENCE { OID, [0] content }) and returns its kind, or ""
// when the bytes are not a ContentInfo this package recognises.
func cmsContentType(b []byte) string {
	if len(b) < 2 || b[0] != 0x30 {
		return ""
	}
	i := 2
	switch l := b[1]; {
	case l == 0x80: // BER indefinite length
	case l > 0x80 && l <= 0x84:
		i += int(l & 0x7f)
	case l > 0x84:
		return ""
	}
	if len(b) < i+2 || b[i] != 0x06 || b[i+1] >= 0x80 {
		return ""
	}
	oid := b[i+2:]
	if len(oid) < int(b[i+1]) {
		return ""
	}
	oid = oid[:b[i+1]]
	switch {
	case bytes.Equal(oid, oidSignedData):
		return KindSignedData
	case bytes.Equal(oid, oidEnvelopedData), bytes.Equal(oid, oidAuthEnveloped):
		return KindEncrypted
	case bytes.Equal(oid, oidCompressedData):
		return KindContainer
	}
	return ""
}

// classify decides a leaf part's kind from its declared media type, its
// parameters, its file name and the first bytes of its content.
func classify(mediaType string, params map[string]string, filename string, attachment bool, head []byte) (kind, problem string) {
	ext := strings.ToLower(path.Ext(filename))
	switch {
	case mediaType == "application/pkcs7-signature" || mediaType == "application/x-pkcs7-signature" || ext == ".p7s":
		if cmsContentType(head) != KindSignedData {
			problem = "signature part is not a DER CMS SignedData"
		}
		return KindSignature, problem
	case mediaType == "application/pkcs7-mime" || mediaType == "application/x-pkcs7-mime" || ext == ".p7m":
		return classifyPKCS7Mime(strings.ToLower(params["smime-type"]), head)
	case mediaType == "message/rfc822" || mediaType == "message/global":
		return KindMessage, ""
	case !attachment && filename == "" && (mediaType == "text/plain" || mediaType == "text/html"):
		return KindBody, ""
	}
	return KindAttachment, ""
}

// classifyPKCS7Mime trusts the content over the smime-type parameter, since
// the parameter is optional and senders get it wrong; a disagreement is
// reported.
func classifyPKCS7Mime(smimeType string, head []byte) (string, string) {
	declared := map[string]string{
		"signed-data":        KindSignedData,
		"enveloped-data":     KindEncrypted,
		"authenveloped-data": KindEncrypted,
		"compressed-data":    KindContainer,
		"certs-only":         KindSignedData,
	}[smimeType]
	found := cmsContentType(head)
	switch {
	case found == "" && declared == "":
		return KindSignedData, "S/MIME part is not a DER CMS object and declares no smime-type"
	case found == "":
		return declared, "S/MIME part is not a DER CMS object"
	case declared != "" && declared != found:
		return found, "smime-type " + smimeType + " does not match the CMS content"
	}
	return found, ""
}
