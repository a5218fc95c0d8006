package oscichannel

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/osci"
)

// Outbound is the sender: an answer goes to the addressee's mailbox at the
// intermediary by storeDelivery, its content signed with the authority's signature key
// and encrypted for the addressee's cipher certificate (and the authority's own, so
// that the kept copy stays readable); the process card fetched afterwards is the
// evidence it arrived.
type Outbound struct {
	c      *core
	client *osci.Client
	blobs  blob.Backend
	log    *slog.Logger
}

// OutboundDeps are the sender's collaborators.
type OutboundDeps struct {
	Blobs  blob.Backend
	Logger *slog.Logger
}

// maxAnswerBytes caps what an answer's body and attachments may add up to.
const maxAnswerBytes = 256 << 20

// NewOutbound builds the sender of cfg; nil when cfg does not enable it.
func NewOutbound(cfg Config, deps OutboundDeps) (*Outbound, error) {
	if !cfg.Outbound {
		return nil, nil
	}
	if deps.Blobs == nil {
		return nil, errors.New("osci: outbound without a blob store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	c, err := newCore(cfg, gateway.IntakeDeps{Logger: deps.Logger})
	if err != nil {
		return nil, err
	}
	return &Outbound{c: c, client: c.client(), blobs: deps.Blobs, log: deps.Logger.With("channel", "egvp", "role", "sender")}, nil
}

// Send implements replies.Outbound. A refusal the intermediary calls temporary (its
// internal errors) is retried; every other refusal is permanent.
func (o *Outbound) Send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	addressee, err := addresseeOf(req, orig)
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(err)
	}
	dir, err := os.MkdirTemp("", "osci-answer-*")
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("osci: answer %s: %w", req.ReplyID, err)
	}
	defer os.RemoveAll(dir)
	pkg, parts, err := o.content(ctx, req, addressee, dir)
	if err != nil {
		return replies.SentInfo{}, err
	}
	id, err := o.client.GetMessageID(ctx)
	if err != nil {
		return replies.SentInfo{}, classify(req, err)
	}
	kept, err := os.CreateTemp(dir, "sent-*")
	if err != nil {
		return replies.SentInfo{}, err
	}
	defer kept.Close()
	subject := req.Subject
	if len(subject) > 1024 {
		subject = subject[:1024]
	}
	r, err := o.client.StoreDelivery(ctx, &osci.Delivery{Addressee: addressee, MessageID: id, Subject: subject,
		ContentPackage: pkg, Attachments: parts, Keep: kept})
	if err != nil {
		return replies.SentInfo{}, classify(req, err)
	}
	r.Close()
	if _, err := kept.Seek(0, io.SeekStart); err != nil {
		return replies.SentInfo{}, err
	}
	sent, err := o.blobs.Put(ctx, kept, 0)
	if err != nil {
		// Delivered; the copy is lost, the evidence below is not.
		o.log.Error("keeping the sent answer", "replyId", req.ReplyID, "err", err)
	}
	card := o.processCard(ctx, id)
	o.log.Info("answer delivered", "replyId", req.ReplyID, "messageId", id, "processCard", card)
	return replies.SentInfo{ChannelMessageID: id, Response: "stored at the intermediary; " + card, Sent: sent}, nil
}

// processCard fetches the answer's process card: when the intermediary took it in,
// and whether the addressee has fetched it yet.
func (o *Outbound) processCard(ctx context.Context, id string) string {
	d, err := o.client.InitDialog(ctx)
	if err != nil {
		return "process card not fetched: " + err.Error()
	}
	defer func() { _ = d.Exit(ctx) }()
	r, err := d.FetchProcessCard(ctx, &osci.Selection{MessageIDs: []string{id}}, 1)
	if err != nil {
		return "process card not fetched: " + err.Error()
	}
	defer r.Close()
	for _, b := range r.Envelope.ProcessCards() {
		if b.MessageID == id {
			return "process card " + processCardText(b)
		}
	}
	return "no process card for " + id
}

// classify maps the client's errors to the outbox's: permanent unless the
// intermediary said to retry, or the exchange itself failed.
func classify(req *gateway.ReplyRequested, err error) error {
	err = fmt.Errorf("osci: answer %s: %w", req.ReplyID, err)
	var fe *osci.FeedbackError
	if errors.As(err, &fe) && !fe.Temporary() {
		return replies.Permanent(err)
	}
	return err
}

// addresseeOf is the cipher certificate of the sender of orig, which the reply's
// address must name.
func addresseeOf(req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*cert.Certificate, error) {
	if orig == nil || orig.Metadata[MetaOriginatorCipher] == "" {
		return nil, fmt.Errorf("osci: answer %s: the message answered names no cipher certificate to encrypt for", req.ReplyID)
	}
	der, err := base64.StdEncoding.DecodeString(orig.Metadata[MetaOriginatorCipher])
	if err != nil {
		return nil, fmt.Errorf("osci: answer %s: originator certificate: %w", req.ReplyID, err)
	}
	c, err := cert.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("osci: answer %s: originator certificate: %w", req.ReplyID, err)
	}
	fp := c.Fingerprint()
	if req.To.Address != "osci:"+hex.EncodeToString(fp[:]) {
		return nil, fmt.Errorf("osci: answer %s: address %.80q is not the originator's certificate", req.ReplyID, req.To.Address)
	}
	return c, nil
}

// content builds the answer's content package: one container with the body and the
// attachments as parts, signed by the authority and encrypted, the ciphertexts
// spooled in dir.
func (o *Outbound) content(ctx context.Context, req *gateway.ReplyRequested, addressee *cert.Certificate, dir string) ([]byte, []*osci.Part, error) {
	type item struct {
		cid string
		ref blob.Ref
	}
	items := []item{{"antwort.txt", req.Body}}
	var total int64 = req.Body.Size
	for i, a := range req.Attachments {
		items = append(items, item{fmt.Sprintf("anlage-%d%s", i+1, extension(a.Filename)), a.Blob})
		total += a.Blob.Size
	}
	if total > maxAnswerBytes {
		return nil, nil, replies.Permanent(fmt.Errorf("osci: answer %s: %d bytes, over %d", req.ReplyID, total, maxAnswerBytes))
	}
	var container bytes.Buffer
	// The namespaces the envelope declares, declared on the container too: the
	// library canonicalizes the signed contents in the envelope's scope, so the
	// signature must be made in the same one.
	container.WriteString(`<osci:ContentContainer xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Id="antwort">`)
	cids := make([]string, len(items))
	byCID := map[string]blob.Ref{}
	for i, it := range items {
		fmt.Fprintf(&container, `<osci:Content Id="content%d" href="cid:%s"></osci:Content>`, i+1, it.cid)
		cids[i], byCID[it.cid] = it.cid, it.ref
	}
	container.WriteString(`</osci:ContentContainer>`)
	open := func(ctx context.Context, cid string) (io.ReadCloser, error) { return o.blobs.Open(ctx, byCID[cid]) }
	signed, err := osci.SignContainer(ctx, container.Bytes(), osci.SignOptions{Signer: o.c.signature.Key, Method: o.c.cfg.method(),
		CertificateID: osci.CertificateID("originator", "signature", o.c.signature.Cert), Attachments: cids, Open: open})
	if err != nil {
		return nil, nil, fmt.Errorf("osci: answer %s: signing: %w", req.ReplyID, err)
	}
	to, err := x509.ParseCertificate(addressee.Raw)
	if err != nil {
		return nil, nil, replies.Permanent(fmt.Errorf("osci: answer %s: addressee certificate: %w", req.ReplyID, err))
	}
	var plains []osci.AttachmentPlain
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, cid := range cids {
		rc, err := open(ctx, cid)
		if err != nil {
			return nil, nil, fmt.Errorf("osci: answer %s: %w", req.ReplyID, err)
		}
		closers = append(closers, rc)
		f, err := os.CreateTemp(dir, "part-*")
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		plains = append(plains, osci.AttachmentPlain{ContentID: cid, Body: rc, Out: f})
	}
	enc, err := osci.Encryptor{Recipients: []*x509.Certificate{to, o.c.cipher.X509}}.EncryptContainer(ctx, signed, plains)
	if err != nil {
		return nil, nil, fmt.Errorf("osci: answer %s: encrypting: %w", req.ReplyID, err)
	}
	pkg, err := retrievalMethods(enc.XML, osci.CertificateID("addressee", "cipher", addressee), osci.CertificateID("originator", "cipher", o.c.cipher.Cert))
	if err != nil {
		return nil, nil, fmt.Errorf("osci: answer %s: %w", req.ReplyID, err)
	}
	parts := make([]*osci.Part, len(cids))
	for i, f := range files {
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, nil, err
		}
		// Labelled as the OSCI library labels its attachments.
		parts[i] = &osci.Part{ContentID: cids[i], ContentType: "application/octet-stream", TransferEncoding: "8-bit", Size: size, Data: fileSpool(f.Name())}
	}
	return pkg, parts, nil
}

// retrievalMethods names each EncryptedKey's recipient by a ds:RetrievalMethod to its
// cipher certificate entry in the envelope, in the order of ids, instead of the
// certificate itself: the OSCI library reads no other form (it fails on a KeyInfo
// without RetrievalMethod).
func retrievalMethods(xml []byte, ids ...string) ([]byte, error) {
	const key, open, end = "<xenc:EncryptedKey>", "<ds:KeyInfo>", "</ds:KeyInfo>"
	var out bytes.Buffer
	rest := xml
	for _, id := range ids {
		k := bytes.Index(rest, []byte(key))
		if k < 0 {
			return nil, fmt.Errorf("encrypted content without the EncryptedKey for %s", id)
		}
		i := bytes.Index(rest[k:], []byte(open))
		j := bytes.Index(rest[k:], []byte(end))
		if i < 0 || j < i {
			return nil, fmt.Errorf("EncryptedKey for %s without KeyInfo", id)
		}
		i, j = k+i, k+j+len(end)
		out.Write(rest[:i])
		out.WriteString(`<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2000/09/xmldsig#X509Data" URI="#` + id + `"></ds:RetrievalMethod></ds:KeyInfo>`)
		rest = rest[j:]
	}
	if bytes.Contains(rest, []byte(key)) {
		return nil, errors.New("encrypted content with more EncryptedKeys than recipients")
	}
	out.Write(rest)
	return out.Bytes(), nil
}

// extension keeps a safe file name extension of an attachment, for the addressee's
// software to recognise the type; the name itself stays ours.
func extension(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || len(name)-i > 6 {
		return ""
	}
	ext := name[i:]
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return ext
}

type fileSpool string

func (f fileSpool) Open() (io.ReadCloser, error) { return os.Open(string(f)) }
