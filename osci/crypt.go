package osci

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
)

// TransportContentID is the part that holds the encrypted inner message of a
// soapMessageEncrypted envelope, as the reference library names it.
const TransportContentID = "osci_enc"

// Decrypter is the party that opens encrypted messages and contents: the
// intermediary's or the authority's cipher key and certificate, and the policy for
// algorithms older senders still use.
type Decrypter struct {
	Key         crypto.Decrypter
	Certificate *x509.Certificate
	// Policy decides which algorithms are accepted; xmlenc.OSCIPolicy() reads what
	// the OSCI libraries since 1.9 send, the zero value refuses every legacy one.
	Policy xmlenc.Policy
}

func (d Decrypter) options(m *Multipart) xmlenc.DecryptOptions {
	return xmlenc.DecryptOptions{
		Policy:    d.Policy,
		Recipient: xmlenc.Recipient{Key: d.Key, Certificate: d.Certificate},
		Resolver:  partResolver(m),
	}
}

// partResolver opens cid: references on spooled parts. Whether a part is base64 is
// read from its MIME headers, as the reference library does: it writes a base64
// transform into the transport envelope whatever it sends.
func partResolver(m *Multipart) xmldsig.Resolver {
	return func(ctx context.Context, uri string) (io.ReadCloser, error) {
		cid, ok := strings.CutPrefix(uri, "cid:")
		var p *Part
		if ok && m != nil {
			p = m.Part(cid)
		}
		if p == nil {
			return nil, fmt.Errorf("%w: no part for %.80q", ErrFormat, uri)
		}
		r, err := p.Open()
		if err != nil {
			return nil, err
		}
		if !p.base64() {
			return r, nil
		}
		return readCloser{base64.NewDecoder(base64.StdEncoding, r), r}, nil
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (p *Part) base64() bool {
	mt, _, _ := parseMediaType(p.ContentType)
	return strings.EqualFold(p.TransferEncoding, "base64") || mt == "text/base64"
}

// ErrDecrypt is wrapped when a message or content cannot be decrypted (feedback 9202);
// xmlenc's error, wrapped too, says why.
var ErrDecrypt = errors.New("osci: cannot decrypt")

func decryptErr(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrDecrypt, what, err)
}

// DecryptTransport opens a soapMessageEncrypted message (env.Type == Encrypted) and
// reads the inner message, whose attachments stream to spool like any message's. The
// plaintext streams from the cipher into the framing; the inner message is returned
// only once the cipher's tag has checked, so nothing of a tampered message is kept.
func DecryptTransport(ctx context.Context, env *Envelope, m *Multipart, d Decrypter, lim Limits, spool Spool) (*Multipart, *xmlenc.Result, error) {
	if env.Type != Encrypted {
		return nil, nil, fmt.Errorf("%w: %s is not transport encrypted", ErrFormat, env.Type)
	}
	ed, err := xmlenc.ParseEncryptedData(env.EncryptedData, d.Policy)
	if err != nil {
		return nil, nil, decryptErr("transport envelope", err)
	}
	if !strings.HasPrefix(ed.CipherReference, "cid:") {
		return nil, nil, fmt.Errorf("%w: transport ciphertext not in a MIME part", ErrFormat)
	}
	ed.Base64 = false // partResolver decodes by the part's headers
	pr, pw := io.Pipe()
	done := make(chan decryptOutcome, 1)
	go func() {
		res, err := decryptBuffered(ctx, ed, pw, d.options(m))
		done <- decryptOutcome{res, err}
	}()
	inner, rerr := ReadMessage(ctx, pr, lim, spool)
	// The framing may stop at the closing boundary; the tag comes after.
	_, _ = io.Copy(io.Discard, pr)
	out := <-done
	switch {
	case out.err != nil:
		removeSpooled(spool, inner)
		return nil, out.res, decryptErr("transport encryption", out.err)
	case rerr != nil:
		return nil, out.res, fmt.Errorf("osci: the decrypted message: %w", rerr)
	}
	return inner, out.res, nil
}

// decryptBuffered decrypts into the pipe in large writes: an unbuffered pipe hands
// over every small write of the cipher to the reader's goroutine.
func decryptBuffered(ctx context.Context, ed *xmlenc.EncryptedData, pw *io.PipeWriter, opts xmlenc.DecryptOptions) (*xmlenc.Result, error) {
	bw := bufio.NewWriterSize(pw, 64<<10)
	res, err := xmlenc.DecryptTo(ctx, ed, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	pw.CloseWithError(err)
	return res, err
}

type decryptOutcome struct {
	res *xmlenc.Result
	err error
}

// Remover is implemented by spools that can delete what they kept, which they are
// asked to do for the parts of a message that failed its check.
type Remover interface {
	Remove(parts ...Spooled) error
}

func removeSpooled(spool Spool, m *Multipart) {
	if r, ok := spool.(Remover); ok && m != nil {
		_ = r.Remove(m.Spooled()...)
	}
}

// DecryptedContainer is an encrypted content container opened.
type DecryptedContainer struct {
	Doc       *xmldsig.Document
	Container *ContentContainer
	// Attachments are the container's encrypted attachments decrypted, by
	// Content-ID; the message's parts still hold the ciphertext.
	Attachments map[string]*Part
	Result      *xmlenc.Result
}

// nsWrapper declares the namespaces a decrypted container may use without declaring:
// the reference library writes containers out of the envelope's context.
const nsWrapper = `<w xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`

// DecryptContainer opens an xenc:EncryptedData of a content package: the plaintext is
// an osci:ContentContainer; the attachments it encrypted (each an EncryptedData with
// a CipherReference to its part and its key in ds:MgmtData, inside the container and
// so protected by its encryption) are decrypted into spool.
func DecryptContainer(ctx context.Context, encrypted *xmldsig.Element, m *Multipart, d Decrypter, lim Limits, spool Spool) (*DecryptedContainer, error) {
	lim = lim.withDefaults()
	ed, err := xmlenc.ParseEncryptedData(encrypted, d.Policy)
	if err != nil {
		return nil, decryptErr("content", err)
	}
	ed.Base64 = false
	opts := d.options(m)
	opts.Policy.MaxCipherValue = lim.MaxEnvelopeBytes
	plain, res, err := xmlenc.Decrypt(ctx, ed, opts)
	if err != nil {
		return nil, decryptErr("content", err)
	}
	dc := &DecryptedContainer{Result: res, Attachments: map[string]*Part{}}
	if dc.Doc, dc.Container, err = parseDecryptedContainer(plain, lim); err != nil {
		return nil, err
	}
	for _, enc := range allEncrypted(dc.Container) {
		p, err := decryptAttachment(ctx, enc, m, d, lim, spool)
		if err != nil {
			for _, done := range dc.Attachments {
				removeSpooled(spool, &Multipart{Parts: []*Part{done}})
			}
			return nil, err
		}
		if p != nil {
			dc.Attachments[p.ContentID] = p
		}
	}
	return dc, nil
}

func parseDecryptedContainer(plain []byte, lim Limits) (*xmldsig.Document, *ContentContainer, error) {
	plain = bytes.TrimPrefix(plain, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(plain, []byte("<?xml")) {
		if i := bytes.Index(plain, []byte("?>")); i > 0 {
			plain = plain[i+2:]
		}
	}
	el, doc, err := parseWrapped(plain, lim)
	if err != nil {
		return nil, nil, err
	}
	c, err := ParseContainer(el)
	return doc, c, err
}

// parseWrapped parses one element written outside the envelope's namespace context.
func parseWrapped(fragment []byte, lim Limits) (*xmldsig.Element, *xmldsig.Document, error) {
	doc, err := xmldsig.Parse(append(append([]byte(nsWrapper), fragment...), "</w>"...), lim.XML)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decrypted content: %v", ErrFormat, err)
	}
	if err := uniqueIDs(doc); err != nil {
		return nil, nil, err
	}
	kids, err := onlyElements(doc.Root)
	if err != nil || len(kids) != 1 {
		return nil, nil, fmt.Errorf("%w: decrypted content is not one element", ErrFormat)
	}
	return kids[0], doc, nil
}

// allEncrypted lists the EncryptedData of a container and its nested containers.
func allEncrypted(c *ContentContainer) []*xmldsig.Element {
	out := append([]*xmldsig.Element(nil), c.Encrypted...)
	for _, ct := range c.Contents {
		if ct.Container != nil {
			out = append(out, allEncrypted(ct.Container)...)
		}
	}
	return out
}

// decryptAttachment decrypts one attachment reference; an EncryptedData that is not
// one (inline ciphertext) gives nil.
func decryptAttachment(ctx context.Context, enc *xmldsig.Element, m *Multipart, d Decrypter, lim Limits, spool Spool) (*Part, error) {
	ed, err := xmlenc.ParseEncryptedData(enc, d.Policy)
	if err != nil {
		return nil, decryptErr("attachment", err)
	}
	cid, ok := strings.CutPrefix(ed.CipherReference, "cid:")
	if !ok {
		return nil, nil
	}
	ed.Base64 = false
	key, err := mgmtKey(enc)
	if err != nil {
		return nil, err
	}
	opts := d.options(m)
	opts.Key = key
	pr, pw := io.Pipe()
	done := make(chan decryptOutcome, 1)
	go func() {
		res, err := decryptBuffered(ctx, ed, pw, opts)
		done <- decryptOutcome{res, err}
	}()
	hashed := &countWriter{w: newSHA256()}
	body := &capReader{r: io.TeeReader(pr, hashed), left: lim.MaxAttachmentBytes}
	data, perr := spool.Put(ctx, cid, body)
	_, _ = io.Copy(io.Discard, pr)
	out := <-done
	if out.err != nil {
		return nil, decryptErr("attachment <"+cid+">", out.err)
	}
	if perr != nil {
		return nil, fmt.Errorf("osci: spooling decrypted attachment <%s>: %w", cid, perr)
	}
	p := &Part{ContentID: cid, ContentType: "application/octet-stream", Size: hashed.n, Data: data}
	copy(p.SHA256[:], hashed.w.(hashSum).Sum(nil))
	return p, nil
}

// mgmtKey reads the attachment key the library puts into ds:KeyInfo/ds:MgmtData.
func mgmtKey(enc *xmldsig.Element) ([]byte, error) {
	mgmt := enc.Child(xmldsig.NamespaceDSig, "KeyInfo").Child(xmldsig.NamespaceDSig, "MgmtData")
	if mgmt == nil {
		return nil, fmt.Errorf("%w: encrypted attachment without its key (ds:MgmtData)", ErrFormat)
	}
	key, err := base64Text(mgmt, 64)
	if err != nil {
		return nil, err
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%w: attachment key of %d bytes", ErrFormat, n)
	}
	return key, nil
}

// Encryptor makes encrypted contents and messages for recipients by their cipher
// certificates, with xmlenc's defaults (those of the reference library 2.4.1:
// AES-256-GCM, RSA-OAEP with SHA-256) unless Options says otherwise.
type Encryptor struct {
	Recipients []*x509.Certificate
	Options    xmlenc.EncryptOptions
}

// EncryptedContent is a container encrypted for a content package, with its attachments'
// ciphertexts.
type EncryptedContent struct {
	// XML is the xenc:EncryptedData to put into the osci:ContentPackage.
	XML []byte
	// Key is the data key, shared by the container and its attachments.
	Key []byte
}

// AttachmentPlain is an attachment to encrypt with its container.
type AttachmentPlain struct {
	ContentID string
	Body      io.Reader
	// Out receives the ciphertext (IV, ciphertext, tag), the bytes of the part.
	Out io.Writer
}

// EncryptContainer encrypts a container, given as the XML of an osci:ContentContainer
// whose Content elements reference the attachments by cid:, and the attachments
// themselves; it inserts one EncryptedData per attachment (key in ds:MgmtData) at the
// end of the container before encrypting it, as the reference library expects.
func (e Encryptor) EncryptContainer(ctx context.Context, container []byte, attachments []AttachmentPlain) (*EncryptedContent, error) {
	opts := e.Options
	if opts.Key == nil {
		key, err := newDataKey(opts)
		if err != nil {
			return nil, err
		}
		opts.Key = key
	}
	end := bytes.LastIndex(container, []byte("</"))
	if end < 0 || !bytes.Contains(container[end:], []byte("ContentContainer>")) {
		return nil, errors.New("osci: encrypting: the container does not end with its end tag")
	}
	var encs bytes.Buffer
	for _, a := range attachments {
		ao := opts
		ao.Recipients = nil
		ao.ID = "Attachment" + a.ContentID
		ao.MimeType = "application/octet-stream"
		enc, err := xmlenc.EncryptStream(ctx, a.Body, a.Out, "cid:"+a.ContentID, ao)
		if err != nil {
			return nil, fmt.Errorf("osci: encrypting attachment <%s>: %w", a.ContentID, err)
		}
		xml, err := withMgmtData(enc.XML, opts.Key)
		if err != nil {
			return nil, err
		}
		encs.Write(xml)
	}
	plain := append(append(append([]byte(nil), container[:end]...), encs.Bytes()...), container[end:]...)
	co := opts
	co.Recipients = e.Recipients
	co.Type = "http://www.w3.org/2001/04/xmlenc#Element"
	co.MimeType = "text/xml"
	enc, err := xmlenc.Encrypt(ctx, plain, co)
	if err != nil {
		return nil, fmt.Errorf("osci: encrypting a container: %w", err)
	}
	return &EncryptedContent{XML: enc.XML, Key: enc.Key}, nil
}

func withMgmtData(xml, key []byte) ([]byte, error) {
	const at = "<xenc:CipherData>"
	i := bytes.Index(xml, []byte(at))
	if i < 0 || bytes.Contains(xml, []byte("<ds:KeyInfo")) {
		return nil, errors.New("osci: encrypting: unexpected EncryptedData form")
	}
	ki := `<ds:KeyInfo xmlns:ds="` + xmldsig.NamespaceDSig + `"><ds:MgmtData>` + b64(key) + `</ds:MgmtData></ds:KeyInfo>`
	return append(append(append([]byte(nil), xml[:i]...), ki...), xml[i:]...), nil
}

// EncryptTransport wraps a whole message for the intermediary (or a passive recipient):
// inner is the complete inner message with its MIME headers (WriteMessage with
// headers), written base64 into the osci_enc part of out, a soapMessageEncrypted
// message with boundary. Base64 keeps the part's content and the envelope's base64
// transform in agreement, as the library's base64 mode does.
func (e Encryptor) EncryptTransport(ctx context.Context, inner io.Reader, out io.Writer, boundary string, headers bool) error {
	if len(e.Recipients) != 1 {
		return errors.New("osci: transport encryption is for exactly one recipient")
	}
	var ct bytes.Buffer
	b64w := base64.NewEncoder(base64.StdEncoding, &ct)
	opts := e.Options
	opts.Recipients = e.Recipients
	opts.MimeType = "Multipart/Related"
	enc, err := xmlenc.EncryptStream(ctx, inner, b64w, "cid:"+TransportContentID, opts)
	if err != nil {
		return fmt.Errorf("osci: transport encryption: %w", err)
	}
	if err := b64w.Close(); err != nil {
		return err
	}
	ref := `<xenc:CipherReference URI="cid:` + TransportContentID + `"/>`
	withTransform := `<xenc:CipherReference URI="cid:` + TransportContentID + `"><xenc:Transforms><ds:Transform xmlns:ds="` + xmldsig.NamespaceDSig + `" Algorithm="http://www.w3.org/2000/09/xmldsig#base64"></ds:Transform></xenc:Transforms></xenc:CipherReference>`
	if !bytes.Contains(enc.XML, []byte(ref)) {
		return errors.New("osci: transport encryption: unexpected EncryptedData form")
	}
	encXML := bytes.Replace(enc.XML, []byte(ref), []byte(withTransform), 1)
	envelope := append(append([]byte(envelopeOpen(Encrypted)+`<soap:Body>`), encXML...), `</soap:Body></soap:Envelope>`...)
	return WriteMessage(out, boundary, headers, envelope, []OutPart{{
		ContentID: TransportContentID, ContentType: "text/base64", TransferEncoding: "7bit",
		Size: int64(ct.Len()), Body: &ct,
	}})
}
