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
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/egvp"
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
//
// An answer to an EGVP message is an EGVP message itself (egvp.go's egvpAnswer):
// nachricht.xml, the authority's Visitenkarte and an XJustiz message in a
// project_coco container, addressed to the sender's SAFE-ID; an eEB answer
// (ReplyRequested.EEB) is the XJustiz nachricht.eeb.zuruecklaufend. Any other OSCI
// message is answered with the text and the attachments alone.
type Outbound struct {
	c      *core
	client *osci.Client
	// sender stores the answers: client, or with the VHN as its signature.
	sender    *osci.Client
	vhn       *KeyPair
	blobs     blob.Backend
	log       *slog.Logger
	card      *egvp.BusinessCard
	directory map[string]*cert.Certificate
	evidence  *gateway.EvidenceRecorder
	tenant    string
	now       func() time.Time
}

// OutboundDeps are the sender's collaborators.
type OutboundDeps struct {
	Blobs  blob.Backend
	Logger *slog.Logger
	// Evidence, when set, records the process cards of the answers sent as
	// delivery evidence (DeliveryEvidenceRecorded) in the answered message's stream.
	Evidence *gateway.EvidenceRecorder
	// Tenant is the authority the answers belong to (default gateway.DefaultTenant).
	Tenant string
	// Now is the clock of the XJustiz messages' creation time (default time.Now).
	Now func() time.Time
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
	if deps.Tenant == "" {
		deps.Tenant = gateway.DefaultTenant
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	c, err := newCore(cfg, gateway.IntakeDeps{Logger: deps.Logger})
	if err != nil {
		return nil, err
	}
	dir, err := cfg.loadDirectory()
	if err != nil {
		return nil, err
	}
	o := &Outbound{c: c, client: c.client(), blobs: deps.Blobs, log: deps.Logger.With("channel", "egvp", "role", "sender"),
		directory: dir, evidence: deps.Evidence, tenant: deps.Tenant, now: deps.Now}
	o.sender = o.client
	if cfg.VHN != nil {
		// The constructors take no context; opening a token is a local library call.
		if o.vhn, err = LoadKey(context.Background(), *cfg.VHN, deps.Logger); err != nil {
			return nil, fmt.Errorf("osci: VHN key: %w", err)
		}
		vc := *o.client
		vc.Signer, vc.SignatureCertificate = o.vhn.Key, o.vhn.Cert
		o.sender = &vc
	}
	if cfg.BusinessCard != nil {
		card := cfg.BusinessCard.Card()
		o.card = &card
	}
	return o, nil
}

// answer is what is sent: the container's files for the addressee.
type answer struct {
	addressee *cert.Certificate
	// container is the content container's Id: project_coco for EGVP.
	container string
	items     []file
	// xjustizID is the answer's XJustiz eigeneNachrichtenID, "" without XJustiz.
	xjustizID string
}

// file is one file of the container: inline (an osci:Base64Content) or an attachment,
// its bytes in data or in the blob store.
type file struct {
	name   string
	inline bool
	data   []byte
	ref    blob.Ref
}

func (it file) size() int64 {
	if it.data != nil {
		return int64(len(it.data))
	}
	return it.ref.Size
}

// Send implements replies.Outbound. A refusal the intermediary calls temporary (its
// internal errors) is retried; every other refusal is permanent, and so is an answer
// that cannot be composed (no cipher certificate, an eEB to a message that asks for
// none).
func (o *Outbound) Send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	ans, err := o.compose(ctx, req, orig)
	if err != nil {
		return replies.SentInfo{}, err
	}
	dir, err := os.MkdirTemp("", "osci-answer-*")
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("osci: answer %s: %w", req.ReplyID, err)
	}
	defer os.RemoveAll(dir)
	pkg, parts, err := o.content(ctx, req, ans, dir)
	if err != nil {
		return replies.SentInfo{}, err
	}
	id, err := o.sender.GetMessageID(ctx)
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
	d := &osci.Delivery{Addressee: ans.addressee, MessageID: id, Subject: subject, ContentPackage: pkg, Attachments: parts, Keep: kept}
	if o.vhn != nil {
		d.OtherAuthors = []*cert.Certificate{o.c.signature.Cert}
	}
	r, err := o.sender.StoreDelivery(ctx, d)
	if err != nil {
		return replies.SentInfo{}, classify(req, err)
	}
	stored := o.keepAnswer(ctx, req, id, r)
	r.Close()
	if _, err := kept.Seek(0, io.SeekStart); err != nil {
		return replies.SentInfo{}, err
	}
	sent, err := o.blobs.Put(ctx, kept, 0)
	if err != nil {
		// Delivered; the copy is lost, the evidence below is not.
		o.log.Error("keeping the sent answer", "replyId", req.ReplyID, "err", err)
	}
	fetched := o.processCard(ctx, req.ReplyID, id)
	o.recordEvidence(ctx, req, ans, id, stored, fetched)
	card := fetched.text
	o.log.Info("answer delivered", "replyId", req.ReplyID, "messageId", id, "xjustizId", ans.xjustizID, "processCard", card)
	return replies.SentInfo{ChannelMessageID: id, Response: "stored at the intermediary; " + card, Sent: sent}, nil
}

// cardAnswer is one answer of the intermediary that carries the answer's process
// card: the card, and the signed answer as received in the blob store.
type cardAnswer struct {
	bundle *osci.ProcessCardBundle
	raw    blob.Ref
	signer string
	valid  bool
	text   string
}

// keepAnswer keeps the storeDelivery's signed answer and the process card of message
// id in it (the only one, when it names none): the intermediary's word that the
// answer is in the addressee's mailbox.
func (o *Outbound) keepAnswer(ctx context.Context, req *gateway.ReplyRequested, id string, r *osci.Response) cardAnswer {
	out := cardAnswer{}
	cards := r.Envelope.ProcessCards()
	for _, b := range cards {
		if b.MessageID == id || len(cards) == 1 {
			out.bundle = &b
			break
		}
	}
	o.fill(ctx, req.ReplyID, r, &out)
	return out
}

func (o *Outbound) fill(ctx context.Context, replyID string, r *osci.Response, out *cardAnswer) {
	if s := r.Signer(); s != nil {
		out.signer = s.Subject.CommonName
	}
	out.valid = r.Signature != nil && r.Signature.Valid()
	if o.evidence == nil || r.Raw == nil {
		return
	}
	rc, err := r.Raw.Open()
	if err != nil {
		o.log.Warn("keeping the intermediary's answer", "replyId", replyID, "err", err)
		return
	}
	defer rc.Close()
	if out.raw, err = o.blobs.Put(ctx, rc, o.c.cfg.maxBytes()); err != nil {
		o.log.Warn("keeping the intermediary's answer", "replyId", replyID, "err", err)
	}
}

// processCard fetches the answer's process card: when the intermediary took it in,
// and whether the addressee has fetched it yet. It asks as the answer's originator
// (o.sender: with osci.vhn the VHN), since the intermediary shows a process card only
// to the delivery's originator.
func (o *Outbound) processCard(ctx context.Context, replyID, id string) cardAnswer {
	d, err := o.sender.InitDialog(ctx)
	if err != nil {
		return cardAnswer{text: "process card not fetched: " + err.Error()}
	}
	defer func() { _ = d.Exit(ctx) }()
	r, err := d.FetchProcessCard(ctx, &osci.Selection{MessageIDs: []string{id}}, 1)
	if err != nil {
		return cardAnswer{text: "process card not fetched: " + err.Error()}
	}
	defer r.Close()
	for _, b := range r.Envelope.ProcessCards() {
		if b.MessageID == id {
			out := cardAnswer{bundle: &b, text: "process card " + processCardText(b)}
			o.fill(ctx, replyID, r, &out)
			return out
		}
	}
	return cardAnswer{text: "no process card for " + id}
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

// compose decides what the answer is: an EGVP answer or eEB to an EGVP message with
// a sender SAFE-ID, a plain OSCI answer to anything else.
func (o *Outbound) compose(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*answer, error) {
	if orig == nil {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s: no message to answer", req.ReplyID))
	}
	if orig.EGVP != nil && orig.EGVP.SenderSafeID != "" {
		return o.egvpAnswer(ctx, req, orig)
	}
	if req.EEB != nil {
		return nil, replies.Permanent(fmt.Errorf("osci: answer %s: an eEB answers an EGVP message with a sender SAFE-ID, and this message is none", req.ReplyID))
	}
	addressee, err := addresseeOf(req, orig)
	if err != nil {
		return nil, replies.Permanent(err)
	}
	ans := &answer{addressee: addressee, container: "antwort"}
	ans.items = append(ans.items, textAndAttachments(req)...)
	return ans, nil
}

// textAndAttachments are the answer's own files: its text and its attachments, named
// by us (the attachments keep a safe extension).
func textAndAttachments(req *gateway.ReplyRequested) []file {
	items := []file{{name: "antwort.txt", ref: req.Body}}
	for i, a := range req.Attachments {
		items = append(items, file{name: fmt.Sprintf("anlage-%d%s", i+1, extension(a.Filename)), ref: a.Blob})
	}
	return items
}

// addresseeOf is the cipher certificate of the sender of orig, which the reply's
// address must name.
func addresseeOf(req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*cert.Certificate, error) {
	c, err := originatorCipher(req, orig)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("osci: answer %s: the message answered names no cipher certificate to encrypt for", req.ReplyID)
	}
	if req.To.Address != cipherAddress(c) {
		return nil, fmt.Errorf("osci: answer %s: address %.80q is not the originator's certificate", req.ReplyID, req.To.Address)
	}
	return c, nil
}

// originatorCipher is the originator cipher certificate recorded with orig, nil when
// none was.
func originatorCipher(req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*cert.Certificate, error) {
	if orig.Metadata[MetaOriginatorCipher] == "" {
		return nil, nil
	}
	der, err := base64.StdEncoding.DecodeString(orig.Metadata[MetaOriginatorCipher])
	if err != nil {
		return nil, fmt.Errorf("osci: answer %s: originator certificate: %w", req.ReplyID, err)
	}
	c, err := cert.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("osci: answer %s: originator certificate: %w", req.ReplyID, err)
	}
	return c, nil
}

// cipherAddress is the address of a mailbox by its cipher certificate: "osci:" and
// the certificate's SHA-256.
func cipherAddress(c *cert.Certificate) string {
	fp := c.Fingerprint()
	return "osci:" + hex.EncodeToString(fp[:])
}

// content builds the answer's content package: one container with the answer's
// files as its contents, signed by the authority and encrypted, the ciphertexts
// spooled in dir.
func (o *Outbound) content(ctx context.Context, req *gateway.ReplyRequested, ans *answer, dir string) ([]byte, []*osci.Part, error) {
	var total int64
	for _, it := range ans.items {
		total += it.size()
	}
	if total > maxAnswerBytes {
		return nil, nil, replies.Permanent(fmt.Errorf("osci: answer %s: %d bytes, over %d", req.ReplyID, total, maxAnswerBytes))
	}
	var container bytes.Buffer
	// The namespaces the envelope declares, declared on the container too: the
	// library canonicalizes the signed contents in the envelope's scope, so the
	// signature must be made in the same one.
	container.WriteString(`<osci:ContentContainer xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Id="` + ans.container + `">`)
	var cids []string
	byCID := map[string]file{}
	for i, it := range ans.items {
		if it.inline {
			fmt.Fprintf(&container, `<osci:Content Id="content%d"><osci:Base64Content Id="%s">%s</osci:Base64Content></osci:Content>`,
				i+1, it.name, base64.StdEncoding.EncodeToString(it.data))
			continue
		}
		fmt.Fprintf(&container, `<osci:Content Id="content%d" href="cid:%s"></osci:Content>`, i+1, it.name)
		cids = append(cids, it.name)
		byCID[it.name] = it
	}
	container.WriteString(`</osci:ContentContainer>`)
	open := func(ctx context.Context, cid string) (io.ReadCloser, error) {
		it := byCID[cid]
		if it.data != nil {
			return io.NopCloser(bytes.NewReader(it.data)), nil
		}
		return o.blobs.Open(ctx, it.ref)
	}
	// The author's certificate entry: the originator's, unless the VHN signs the
	// message as originator and the author is another.
	author := osci.CertificateID("originator", "signature", o.c.signature.Cert)
	if o.vhn != nil {
		author = osci.CertificateID("otherauthor", "signature", o.c.signature.Cert)
	}
	signed, err := osci.SignContainer(ctx, container.Bytes(), osci.SignOptions{Signer: o.c.signature.Key, Method: o.c.cfg.method(),
		CertificateID: author, Attachments: cids, Open: open})
	if err != nil {
		return nil, nil, fmt.Errorf("osci: answer %s: signing: %w", req.ReplyID, err)
	}
	to, err := x509.ParseCertificate(ans.addressee.Raw)
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
	pkg, err := retrievalMethods(enc.XML, osci.CertificateID("addressee", "cipher", ans.addressee), osci.CertificateID("originator", "cipher", o.c.cipher.Cert))
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
