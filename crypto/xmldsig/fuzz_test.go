package xmldsig

import (
	"context"
	"testing"
)

// FuzzVerify drives the parser, both canonicalizations and the signature
// checks with arbitrary documents; seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(excSpecDoc))
	f.Add([]byte(`<a xmlns="urn:x" Id="i"><b xmlns="">t&amp;<![CDATA[x]]></b>` + withRef("#i") + `</a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data, Limits{MaxBytes: 1 << 20, MaxNodes: 10000})
		if err != nil {
			return
		}
		C14N{Exclusive: true}.CanonicalizeDocument(doc, nil)
		C14N{Comments: true}.Canonicalize(doc.Root, nil)
		_, _ = Verify(doc, Options{})
	})
}

// FuzzVerifySignature drives the general verifier (every shape, XAdES
// properties, archive timestamp input) with arbitrary documents; seeds are
// in testdata/fuzz/FuzzVerifySignature.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(excSpecDoc))
	f.Add([]byte(`<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="s"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="#o"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#base64"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference><ds:Reference URI="d.txt"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue><ds:Object Id="o">SGFsbG8=</ds:Object><ds:Object><xades:QualifyingProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Target="#s"><xades:SignedProperties Id="p"/><xades:UnsignedProperties><xades:UnsignedSignatureProperties><xades:SignatureTimeStamp><xades:EncapsulatedTimeStamp>MAA=</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp><xa:ArchiveTimeStamp xmlns:xa="http://uri.etsi.org/01903/v1.4.1#"><xades:EncapsulatedTimeStamp>MAA=</xades:EncapsulatedTimeStamp></xa:ArchiveTimeStamp></xades:UnsignedSignatureProperties></xades:UnsignedProperties></xades:QualifyingProperties></ds:Object></ds:Signature>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data, Limits{MaxBytes: 1 << 20, MaxNodes: 10000})
		if err != nil {
			return
		}
		sigs, err := FindSignatures(doc)
		if err != nil {
			return
		}
		det := func(string) ([]byte, bool) { return []byte("<a/>"), true }
		for _, s := range sigs {
			res := VerifySignature(context.Background(), doc, s, SignatureOptions{Detached: det})
			res.Intact()
			if res.XAdES != nil && res.FormatErr == nil {
				for k := range res.XAdES.ArchiveTimestamps {
					res.ArchiveTimestampData(k)
				}
				for _, ts := range res.XAdES.SignatureTimestamps {
					res.SignatureTimestampData(ts)
				}
				res.AllDataObjectsTimestampData()
			}
		}
	})
}
