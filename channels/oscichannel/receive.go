package oscichannel

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// Metadata keys of the OSCI channel's receipts.
const (
	// MetaOriginatorCipher is the originator's cipher certificate (base64 DER): an
	// answer is encrypted for it.
	MetaOriginatorCipher = "osci.originatorCipherCertificate"
	// MetaOriginatorSignature is the originator's signature certificate (base64 DER).
	MetaOriginatorSignature = "osci.originatorSignatureCertificate"
	// MetaMessageType is the OSCI message the delivery came in.
	MetaMessageType = "osci.messageType"
	// MetaContentSignatures summarizes the authors' content signatures, one
	// "container: valid|invalid (signer)" per signature, joined by "; ".
	MetaContentSignatures = "osci.contentSignatures"
	// MetaProcessCard is the intermediary's process card: creation, forwarding and
	// reception times as it stated them.
	MetaProcessCard = "osci.processCard"
)

// core is what every role of the channel shares: the keys, the intermediary's
// certificates and the intake.
type core struct {
	cfg         Config
	deps        gateway.IntakeDeps
	cipher      *KeyPair
	signature   *KeyPair
	interCipher *x509.Certificate
	interSig    *cert.Certificate
	vhnAnchors  []*cert.Certificate
	lim         osci.Limits
}

func newCore(cfg Config, deps gateway.IntakeDeps) (*core, error) {
	c := &core{cfg: cfg, deps: deps}
	var err error
	// The constructors take no context; opening a token is a local library call.
	ctx := context.Background()
	if c.cipher, err = LoadKey(ctx, cfg.Cipher, deps.Logger); err != nil {
		return nil, fmt.Errorf("osci: cipher key: %w", err)
	}
	if c.signature, err = LoadKey(ctx, cfg.Signature, deps.Logger); err != nil {
		return nil, fmt.Errorf("osci: signature key: %w", err)
	}
	if c.interCipher, err = LoadCertificate(cfg.Intermediary.CipherCertFile); err != nil {
		return nil, fmt.Errorf("osci: intermediary cipher certificate: %w", err)
	}
	x, err := LoadCertificate(cfg.Intermediary.SignatureCertFile)
	if err != nil {
		return nil, fmt.Errorf("osci: intermediary signature certificate: %w", err)
	}
	if c.interSig, err = cert.Parse(x.Raw); err != nil {
		return nil, fmt.Errorf("osci: intermediary signature certificate: %w", err)
	}
	if c.vhnAnchors, err = LoadAnchors(cfg.VHNAnchors); err != nil {
		return nil, err
	}
	c.lim = osci.Limits{MaxMessageBytes: cfg.maxBytes(), MaxAttachmentBytes: cfg.maxBytes()}
	return c, nil
}

func (c *core) decrypter() osci.Decrypter {
	d, _ := c.cipher.Key.(crypto.Decrypter)
	return osci.Decrypter{Key: d, Certificate: c.cipher.X509, Policy: xmlenc.OSCIPolicy()}
}

func (c *core) spool() blobSpool { return blobSpool{blobs: c.deps.Blobs, max: c.cfg.maxBytes()} }

// verdict is what became of one delivery, for the peer's answer.
type verdict int

const (
	recorded verdict = iota
	retryLater
	refusedByLog
)

// opened is a delivery as read from the raw message: the request (nil when the bytes
// could not be opened) and why not.
type opened struct {
	req     *osci.Request
	openErr error
	remote  string
	tls     string
}

// record builds the MessageReceived of a delivery whose raw bytes are stored, records
// it, and says what the peer may be told. Whatever cannot be opened, decrypted or
// verified is listed in Problems and recorded all the same.
func (c *core) record(ctx context.Context, raw blob.Ref, o opened) (verdict, gateway.Receipt, error) {
	msg, key, eeb := c.receipt(ctx, raw, o)
	rc, err := c.deps.Intake.Record(ctx, c.deps.Tenant, key, msg)
	switch {
	case errors.Is(err, eventstore.ErrInvalidEvent):
		return refusedByLog, rc, err
	case err != nil:
		return retryLater, rc, err
	}
	c.linkReturningEEB(ctx, eeb)
	if c.deps.AfterRecord != nil {
		c.deps.AfterRecord(rc)
	}
	return recorded, rc, nil
}

// receipt builds the MessageReceived of a delivery and its message key; for a
// returning eEB of one of our answers also the evidence that links it there.
func (c *core) receipt(ctx context.Context, raw blob.Ref, o opened) (*gateway.MessageReceived, string, *gateway.DeliveryEvidenceRecorded) {
	msg := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, Raw: raw, ReceivedAt: c.deps.Now().UTC(),
		Transport: gateway.TransportEvidence{RemoteAddr: o.remote, TLS: o.tls}}
	key := gateway.MessageKey(gateway.ChannelEGVP, "sha256:"+raw.SHA256)
	if o.openErr != nil || o.req == nil {
		msg.Problems = append(msg.Problems, fmt.Sprintf("osci: not opened: %v", o.openErr))
		return msg, key, nil
	}
	env := o.req.Envelope
	msg.Metadata = map[string]string{MetaMessageType: string(env.Type)}
	if pc := env.ProcessCards(); len(pc) > 0 {
		b := pc[0]
		if b.MessageID != "" {
			msg.SenderMessageID = b.MessageID
			msg.Transport.Coordinates = b.MessageID
			key = gateway.MessageKey(gateway.ChannelEGVP, b.MessageID)
		}
		msg.Subject = b.Card.Subject
		// The Zugang is when the delivery reached the mailbox at the intermediary:
		// the process card's creation time, the intermediary's word.
		if b.Card.Creation != nil && !b.Card.Creation.Plain.IsZero() {
			msg.ReceivedAt = b.Card.Creation.Plain.UTC()
		}
		msg.Metadata[MetaProcessCard] = processCardText(b)
	} else {
		msg.Problems = append(msg.Problems, "osci: no process card, so no message id")
	}
	if s := env.Operation.Subject; s != "" {
		msg.Subject = s
	}
	if o.req.Signer() == nil || !o.req.Signer().Equal(c.interSig) {
		msg.Problems = append(msg.Problems, "osci: the message is not signed by the configured intermediary")
	}
	c.originator(o.req, msg)
	eeb := c.contents(ctx, o.req, msg)
	return msg, key, eeb
}

func processCardText(b osci.ProcessCardBundle) string {
	var parts []string
	for _, t := range []struct {
		name string
		ts   *osci.Timestamp
	}{{"creation", b.Card.Creation}, {"forwarding", b.Card.Forwarding}, {"reception", b.Card.Reception}} {
		if t.ts == nil {
			continue
		}
		v := t.ts.Plain.UTC().Format("2006-01-02T15:04:05Z")
		if t.ts.IsCryptographic() {
			v = "cryptographic"
		}
		parts = append(parts, t.name+"="+v)
	}
	return strings.Join(parts, " ")
}

// originator records who sent the delivery: its signature certificate's name, and the
// cipher certificate an answer is encrypted for, whose fingerprint is the address.
func (c *core) originator(req *osci.Request, msg *gateway.MessageReceived) {
	if sig := req.Certificate("SignatureCertificateOriginator"); sig != nil {
		msg.From.Name = sig.Subject.CommonName
		msg.Metadata[MetaOriginatorSignature] = base64.StdEncoding.EncodeToString(sig.Raw)
	}
	ciph := req.Certificate("CipherCertificateOriginator")
	if ciph == nil {
		msg.Problems = append(msg.Problems, "osci: no originator cipher certificate, so no way to answer")
		return
	}
	fp := ciph.Fingerprint()
	msg.From.Address = "osci:" + hex.EncodeToString(fp[:])
	msg.Metadata[MetaOriginatorCipher] = base64.StdEncoding.EncodeToString(ciph.Raw)
	if addr := req.Certificate("CipherCertificateAddressee"); addr != nil {
		fpa := addr.Fingerprint()
		msg.To = []gateway.Address{{Address: "osci:" + hex.EncodeToString(fpa[:]), Name: addr.Subject.CommonName}}
	}
}

// contents decrypts the content package with the authority's key, checks the authors'
// signatures and lists every content as a part whose blob holds its plaintext.
func (c *core) contents(ctx context.Context, req *osci.Request, msg *gateway.MessageReceived) *gateway.DeliveryEvidenceRecorded {
	env := req.Envelope
	if env.ContentPackage == nil {
		msg.Problems = append(msg.Problems, "osci: no content package")
		return nil
	}
	var certs []*osci.Certificates
	for _, b := range []*osci.Certificates{env.NonIntermediaryCertificates, env.IntermediaryCertificates} {
		if b != nil {
			certs = append(certs, b)
		}
	}
	var sigs []string
	var read []*osci.ContentContainer
	decrypted := map[string]*osci.Part{}
	for i, enc := range env.ContentPackage.Encrypted {
		dc, err := osci.DecryptContainer(ctx, enc, req.Message, c.decrypter(), c.lim, c.spool())
		if err != nil {
			msg.Problems = append(msg.Problems, fmt.Sprintf("osci: encrypted container %d: %v", i+1, err))
			continue
		}
		parts := func(cid string) *osci.Part { return dc.Attachments[cid] }
		sigs = append(sigs, c.signatures(ctx, dc.Doc, dc.Container, certs, parts, msg)...)
		c.listContents(ctx, fmt.Sprintf("e%d", i+1), dc.Container, parts, msg)
		read = append(read, dc.Container)
		for cid, p := range dc.Attachments {
			decrypted[cid] = p
		}
	}
	for i, cc := range env.ContentPackage.Containers {
		parts := func(cid string) *osci.Part { return req.Message.Part(cid) }
		sigs = append(sigs, c.signatures(ctx, env.Doc, cc, certs, parts, msg)...)
		c.listContents(ctx, fmt.Sprintf("c%d", i+1), cc, parts, msg)
		read = append(read, cc)
	}
	if len(sigs) > 0 {
		msg.Metadata[MetaContentSignatures] = strings.Join(sigs, "; ")
	}
	attachment := func(cid string) *osci.Part {
		if p, ok := decrypted[cid]; ok {
			return p
		}
		return req.Message.Part(cid)
	}
	return c.readEGVP(ctx, req, read, attachment, msg)
}

func (c *core) signatures(ctx context.Context, doc *xmldsig.Document, cc *osci.ContentContainer, certs []*osci.Certificates, parts func(string) *osci.Part, msg *gateway.MessageReceived) []string {
	if len(cc.Signatures) == 0 {
		return []string{containerName(cc) + ": unsigned"}
	}
	checks, err := osci.VerifyContainer(ctx, doc, cc, certs, parts)
	if err != nil {
		msg.Problems = append(msg.Problems, fmt.Sprintf("osci: content signature of %s: %v", containerName(cc), err))
		return []string{containerName(cc) + ": indeterminate"}
	}
	var out []string
	for _, ch := range checks {
		signer := ""
		if ch.Signer != nil && ch.Signer.Cert != nil {
			signer = " (" + ch.Signer.Cert.Subject.CommonName + ")"
		}
		if ch.Valid() {
			out = append(out, containerName(cc)+": valid"+signer)
			continue
		}
		out = append(out, containerName(cc)+": invalid"+signer)
		msg.Problems = append(msg.Problems, fmt.Sprintf("osci: content signature of %s invalid: %v", containerName(cc), ch.Err()))
	}
	return out
}

func containerName(cc *osci.ContentContainer) string {
	if cc.ID != "" {
		return cc.ID
	}
	return "container"
}

func (c *core) listContents(ctx context.Context, path string, cc *osci.ContentContainer, parts func(string) *osci.Part, msg *gateway.MessageReceived) {
	for i, ct := range cc.Contents {
		p := gateway.Part{Path: fmt.Sprintf("%s.%d", path, i+1), MediaType: "application/octet-stream", Kind: "attachment"}
		switch {
		case ct.Href != "":
			cid := strings.TrimPrefix(ct.Href, "cid:")
			part := parts(cid)
			ref, ok := blob.Ref{}, false
			if part != nil {
				ref, ok = refOf(part.Data)
			}
			if !ok {
				p.Problems = append(p.Problems, fmt.Sprintf("osci: attachment <%.80s> missing", cid))
			}
			p.Blob, p.Filename = ref, cid
			if part != nil && part.ContentType != "" {
				p.MediaType = part.ContentType
			}
		case ct.Base64 != nil:
			ref, err := c.deps.Blobs.Put(ctx, bytesReader(ct.Base64), c.cfg.maxBytes())
			if err != nil {
				p.Problems = append(p.Problems, fmt.Sprintf("osci: storing content: %v", err))
			}
			p.Blob, p.Filename = ref, ct.Base64ID
		case ct.Container != nil:
			c.listContents(ctx, p.Path, ct.Container, parts, msg)
			continue
		default:
			p.Kind, p.MediaType = "body", "text/plain"
			ref, err := c.deps.Blobs.Put(ctx, strings.NewReader(ct.Text), c.cfg.maxBytes())
			if err != nil {
				p.Problems = append(p.Problems, fmt.Sprintf("osci: storing content: %v", err))
			}
			p.Blob = ref
		}
		msg.Parts = append(msg.Parts, p)
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
