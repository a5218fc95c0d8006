package xmldsig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"sync"
	"testing"
)

var (
	fuzzSignerOnce sync.Once
	fuzzSigner     *ecdsa.PrivateKey
)

// FuzzSign signs arbitrary documents (the whole document, and the first
// element with an Id) and wants every signature Sign returns to verify
// intact in the document it returns: the insertion by offsets must keep
// the document well-formed and the digests right, whatever the input's
// CDATA, comments, self-closing elements or byte order mark.
func FuzzSign(f *testing.F) {
	f.Add([]byte(excSpecDoc))
	f.Add([]byte("\xef\xbb\xbf<?xml version=\"1.0\"?><!--c--><a xmlns=\"urn:x\"><b Id=\"i\"/><![CDATA[<x>]]></a><!--e-->"))
	f.Add([]byte(`<p:a xmlns:p="urn:p" xml:lang="de"><p:b Id="x">t</p:b ></p:a >`))
	fuzzSignerOnce.Do(func() {
		fuzzSigner, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data, Limits{MaxBytes: 1 << 16, MaxNodes: 2000})
		if err != nil {
			return
		}
		refs := []SignReference{{URI: ""}}
		for id := range doc.ids {
			if !doc.dupIDs[id] {
				refs = append(refs, SignReference{URI: "#" + id})
				break
			}
		}
		for _, c14n := range []string{AlgExcC14N, AlgC14N10} {
			out, err := Sign(context.Background(), data, SignOptions{Signer: fuzzSigner, C14N: c14n, References: refs, Limits: Limits{MaxBytes: 1 << 17}})
			if err != nil {
				continue
			}
			d, err := Parse(out, Limits{})
			if err != nil {
				t.Fatalf("signed document does not parse: %v\n%q", err, out)
			}
			sigs, err := FindSignatures(d)
			if err != nil || len(sigs) == 0 {
				t.Fatalf("signature lost: %v", err)
			}
			res := VerifySignature(context.Background(), d, sigs[len(sigs)-1], SignatureOptions{})
			res.Signer = nil
			if res.FormatErr != nil || res.AlgorithmErr != nil {
				t.Fatalf("signed document: %v %v", res.FormatErr, res.AlgorithmErr)
			}
			for _, r := range res.References {
				if r.Status != RefOK {
					t.Fatalf("reference %s: %v\n%q", r.URI, r.Err, out)
				}
			}
		}
	})
}
