package osci

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// ErrNotSigned is wrapped when an element the package reads, or an attachment, is not
// covered by the message signature (feedback 9602); ErrSignatureInvalid when the value or
// a reference fails (9601).
var (
	ErrNotSigned        = errors.New("osci: not covered by the message signature")
	ErrSignatureInvalid = errors.New("osci: message signature invalid")
)

// SignatureCheck is the outcome of checking an envelope's ClientSignature or
// SupplierSignature.
type SignatureCheck struct {
	// Block is "ClientSignature" or "SupplierSignature".
	Block  string
	Result *xmldsig.Result
	// Signer is the certificate entry the signature's RetrievalMethod names, nil when
	// it names none of the envelope's signature certificates.
	Signer *CertificateEntry
	// Attachments holds the outcome of each cid: reference by Content-ID.
	Attachments map[string]xmldsig.RefStatus
	// Problems lists every failure: the value, each reference, each element or
	// attachment not covered. Empty exactly when the signature holds for everything
	// this package reads from the message.
	Problems []error
}

// Valid reports a signature that verified and covers the whole message as read.
func (c *SignatureCheck) Valid() bool { return len(c.Problems) == 0 }

// Code is the feedback code for the first problem, 0 when there is none.
func (c *SignatureCheck) Code() Code {
	switch {
	case len(c.Problems) == 0:
		return 0
	case errors.Is(c.Problems[0], ErrNotSigned):
		return CodeNotAllSigned
	}
	return CodeSignatureInvalid
}

// Err joins the problems, nil for a valid signature.
func (c *SignatureCheck) Err() error { return errors.Join(c.Problems...) }

// VerifySignature checks the envelope's signature block against m's attachments. The
// signer is the certificate the ds:KeyInfo/ds:RetrievalMethod points at, which must be
// one of the envelope's own signature certificates; trust in it is the caller's business.
//
// Against signature wrapping, a reference counts only when its target is the very
// element this package read a value from (resolved by a unique Id; xmldsig refuses
// duplicates), and every such element must be referenced: a signed copy elsewhere in
// the document covers nothing.
func (env *Envelope) VerifySignature(ctx context.Context, m *Multipart) (*SignatureCheck, error) {
	block := env.ClientSignature
	if block == nil {
		block = env.SupplierSignature
	}
	if block == nil {
		return nil, fmt.Errorf("%w: the message carries no signature", ErrNotSigned)
	}
	sigEl := block.Elements()[0]
	chk := &SignatureCheck{Block: block.Local, Attachments: map[string]xmldsig.RefStatus{}}
	var opts xmldsig.SignatureOptions
	signer, err := env.retrievalSigner(sigEl)
	if err != nil {
		chk.Problems = append(chk.Problems, err)
	} else {
		chk.Signer = signer
		opts.Certificates = append(opts.Certificates, signer.Cert)
	}
	chk.Result = xmldsig.VerifySignature(ctx, env.Doc, sigEl, opts)
	res := chk.Result
	if res.FormatErr != nil || res.AlgorithmErr != nil {
		chk.Problems = append(chk.Problems, fmt.Errorf("%w: %v", ErrSignatureInvalid, errors.Join(res.FormatErr, res.AlgorithmErr)))
		return chk, nil
	}
	if res.ValueErr != nil && signer != nil {
		chk.Problems = append(chk.Problems, fmt.Errorf("%w: value: %v", ErrSignatureInvalid, res.ValueErr))
	}
	covered, err := chk.checkReferences(ctx, env, sigEl, m)
	if err != nil {
		return nil, err
	}
	for _, e := range env.signedElements(block) {
		if !covered[e] {
			chk.Problems = append(chk.Problems, fmt.Errorf("%w: <%s Id=%q>", ErrNotSigned, e.Local, id(e)))
		}
	}
	if m != nil {
		for _, p := range m.Parts {
			if chk.Attachments[p.ContentID] != xmldsig.RefOK {
				chk.Problems = append(chk.Problems, fmt.Errorf("%w: attachment <%s>", ErrNotSigned, p.ContentID))
			}
		}
	}
	return chk, nil
}

// retrievalSigner resolves the OSCI way of naming the signer: a RetrievalMethod to the
// Id of a signature certificate entry in the envelope's certificate blocks.
func (env *Envelope) retrievalSigner(sigEl *xmldsig.Element) (*CertificateEntry, error) {
	ki := sigEl.Child(xmldsig.NamespaceDSig, "KeyInfo")
	rm := ki.Child(xmldsig.NamespaceDSig, "RetrievalMethod")
	if ki == nil || rm == nil {
		return nil, fmt.Errorf("%w: ds:KeyInfo has no ds:RetrievalMethod", ErrSignatureInvalid)
	}
	uri, _ := rm.Attr("URI")
	target, err := env.Doc.ElementByID(strings.TrimPrefix(uri, "#"))
	if err != nil || !strings.HasPrefix(uri, "#") {
		return nil, fmt.Errorf("%w: RetrievalMethod %.80q: %v", ErrSignatureInvalid, uri, err)
	}
	for _, c := range []*Certificates{env.IntermediaryCertificates, env.NonIntermediaryCertificates} {
		if c == nil {
			continue
		}
		for i := range c.Entries {
			if c.Entries[i].Element == target && strings.HasPrefix(c.Entries[i].Role, "Signature") {
				return &c.Entries[i], nil
			}
		}
	}
	return nil, fmt.Errorf("%w: RetrievalMethod %.80q names no signature certificate of the envelope", ErrSignatureInvalid, uri)
}

// checkReferences records each reference's outcome and returns the elements covered by
// a matching reference. cid: references are digested here, streaming the spooled part,
// since xmldsig wants detached content whole in memory.
func (chk *SignatureCheck) checkReferences(ctx context.Context, env *Envelope, sigEl *xmldsig.Element, m *Multipart) (map[*xmldsig.Element]bool, error) {
	covered := map[*xmldsig.Element]bool{}
	refEls := sigEl.Child(xmldsig.NamespaceDSig, "SignedInfo").Elements()[2:]
	for i, rr := range chk.Result.References {
		if cid, ok := strings.CutPrefix(rr.URI, "cid:"); ok {
			st, err := attachmentDigest(ctx, m, cid, rr, refEls[i])
			if err != nil && !errors.Is(err, ErrSignatureInvalid) {
				return nil, err
			}
			if prev, seen := chk.Attachments[cid]; !seen || prev == xmldsig.RefOK {
				chk.Attachments[cid] = st
			}
			if err != nil {
				chk.Problems = append(chk.Problems, err)
			}
			continue
		}
		if rr.Status != xmldsig.RefOK {
			chk.Problems = append(chk.Problems, fmt.Errorf("%w: reference %.80q: %v", ErrSignatureInvalid, rr.URI, rr.Err))
			continue
		}
		covered[rr.Target] = true
	}
	return covered, nil
}

func attachmentDigest(ctx context.Context, m *Multipart, cid string, rr xmldsig.ReferenceResult, refEl *xmldsig.Element) (xmldsig.RefStatus, error) {
	var p *Part
	if m != nil {
		p = m.Part(cid)
	}
	if p == nil {
		return xmldsig.RefNotFound, fmt.Errorf("%w: reference to missing attachment <%s>", ErrSignatureInvalid, cid)
	}
	if len(rr.Transforms) > 0 {
		return xmldsig.RefNotFound, fmt.Errorf("%w: transforms on attachment <%s>", ErrSignatureInvalid, cid)
	}
	dm := refEl.Child(xmldsig.NamespaceDSig, "DigestMethod")
	alg, _ := dm.Attr("Algorithm")
	h, err := xmldsig.DigestAlgorithm(alg)
	if err != nil {
		return xmldsig.RefNotFound, fmt.Errorf("%w: attachment <%s>: %v", ErrSignatureInvalid, cid, err)
	}
	want, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(refEl.Child(xmldsig.NamespaceDSig, "DigestValue").Text()), ""))
	if err != nil {
		return xmldsig.RefDigestMismatch, fmt.Errorf("%w: attachment <%s>: DigestValue: %v", ErrSignatureInvalid, cid, err)
	}
	got, err := partDigest(ctx, p, h)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return xmldsig.RefDigestMismatch, fmt.Errorf("%w: attachment <%s>: digest mismatch", ErrSignatureInvalid, cid)
	}
	return xmldsig.RefOK, nil
}

func partDigest(ctx context.Context, p *Part, h crypto.Hash) ([]byte, error) {
	if h == crypto.SHA256 {
		return p.SHA256[:], nil
	}
	r, err := p.Open()
	if err != nil {
		return nil, fmt.Errorf("osci: reading attachment <%s>: %w", p.ContentID, err)
	}
	defer r.Close()
	d := h.New()
	if _, err := io.Copy(d, ctxReader{ctx, r}); err != nil {
		return nil, fmt.Errorf("osci: reading attachment <%s>: %w", p.ContentID, err)
	}
	return d.Sum(nil), nil
}

// signedElements are the elements whose content the package reads and a message
// signature must therefore cover: every header block but the signature's own, and the
// body.
func (env *Envelope) signedElements(block *xmldsig.Element) []*xmldsig.Element {
	var out []*xmldsig.Element
	for _, e := range env.Doc.Root.Elements()[0].Elements() {
		if e != block {
			out = append(out, e)
		}
	}
	return append(out, env.Body)
}
