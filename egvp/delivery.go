package egvp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/osci"
	"github.com/poststelle/poststelle/xjustiz"
)

// The names EGVP gives the parts it reads.
const (
	ContainerProject = "project_coco"
	ContainerClient  = "govello_coco"
	FileCard         = "visitenkarte.xml"
	FileDescription  = "nachricht.xml"
	FileXJustiz      = "xjustiz_nachricht.xml"
	FileInfo         = "additional_infos"
)

// ErrNotEGVP is wrapped when a delivery has no EGVP structure at all.
var ErrNotEGVP = errors.New("egvp: not an EGVP delivery")

// Limits bound what is read of a delivery.
type Limits struct {
	// MaxXJustizBytes caps the xjustiz_nachricht.xml attachment read into memory;
	// 0 takes 4 MiB.
	MaxXJustizBytes int64
	XJustiz         xjustiz.Limits
}

func (l Limits) withDefaults() Limits {
	if l.MaxXJustizBytes <= 0 {
		l.MaxXJustizBytes = 4 << 20
	}
	return l
}

// Delivery is an OSCI delivery as the OSCI channel hands it over: the parsed (and, by
// the caller, decrypted and verified) envelope and a way to its attachments.
type Delivery struct {
	Envelope *osci.Envelope
	// Attachment returns the part with the Content-ID, nil when there is none.
	Attachment func(contentID string) *osci.Part
	// IntermediaryVerified tells that the caller verified the intermediary's
	// SupplierSignature over the envelope, and with it the process card the proof of
	// origin relies on.
	IntermediaryVerified bool
	// Enterprise, when set, is EGVP Enterprise's check of a delivery it received and
	// exported (ReadExport): the proof of origin rests on it instead of the process
	// card.
	Enterprise *EnterpriseCheck
}

// Config is what the site configures for EGVP.
type Config struct {
	// VHNAnchors are the VHN issuing CAs (BNotK's beBPo VHN CA, Justiz VHN CA, ...)
	// whose signature on a transport certificate is checked; without them the
	// intermediary's inspection is relied on, and Origin says so.
	VHNAnchors []*cert.Certificate
}

// Message is the EGVP view of one delivery.
type Message struct {
	// MessageID is the OSCI message id (decoded), Received the intermediary's entry
	// time (the process card's creation, the Eingangszeitpunkt).
	MessageID string
	Received  time.Time
	// OSCISubject is the OSCI subject, which EGVP fills with the message type
	// ("Allgemeine Nachricht").
	OSCISubject string
	// Subject is the Betreff: nachricht.xml's, else the client's additional_infos.
	Subject string
	// Text is nachricht.xml's Freitext.
	Text string
	// SenderSafeID is the Visitenkarte's Nutzer_ID, RecipientSafeID the addressed
	// mailbox (nachricht.xml's Empfaengerkennung; "" when the message names none, then
	// the receiving mailbox is the recipient).
	SenderSafeID, RecipientSafeID string
	// SenderFileNumber and RecipientFileNumber are the Aktenzeichen: the XJustiz
	// header's, else nachricht.xml's.
	SenderFileNumber, RecipientFileNumber string
	// MessageType is the XJustiz message type (nachricht.gds.uebermittlungSchriftgutobjekte,
	// nachricht.eeb.zuruecklaufend, ...) or, without XJustiz, nachricht.xml's Nachrichtentyp.
	MessageType string
	// RecipientCode is the court code of the XJustiz recipient (GDS.Gerichte).
	RecipientCode string
	EEB           EEBRequest
	// Receipt is the fachdaten of a returning eEB (an XJustiz
	// nachricht.eeb.zuruecklaufend), nil for other messages; AnswersXJustizID is the
	// id of the request it answers.
	Receipt          *xjustiz.Receipt
	AnswersXJustizID string
	Card             *BusinessCard
	Description      *Description
	XJustiz          *xjustiz.Message
	Info             map[string]string
	Parts            []Part
	Origin           Origin
	// Problems are what does not fit, in reading order; the message is kept.
	Problems []string
}

// EEBRequest is a request for an electronic acknowledgement of receipt.
type EEBRequest struct {
	Requested bool
	// Documents are the ids of the XJustiz documents the request is for.
	Documents []string
	// Deadline stays zero: neither XJustiz 2.x nor 3.x carries a deadline for the eEB
	// (the court sets it, if at all, in the served document).
	Deadline time.Time
	// ForeignMessageID is the XJustiz id the answer must name (the request's
	// eigene Nachrichten-ID).
	ForeignMessageID string
}

// Part is one file of the delivery.
type Part struct {
	// Name is the file name: the attachment's Content-ID, the inline content's Id.
	Name      string
	Container string
	// Inline is set for the contents carried in the envelope (visitenkarte.xml, ...);
	// attachments have ContentID, Size and SHA256.
	Inline    bool
	ContentID string
	Size      int64
	SHA256    [32]byte
	// SignatureOf is set for a detached signature (*.p7s, *.pkcs7, *.sig): the name
	// of the file it signs; Signatures lists a file's detached signatures.
	SignatureOf string
	Signatures  []string
}

// Read gives a delivery its EGVP meaning.
func Read(ctx context.Context, d Delivery, cfg Config, lim Limits) (*Message, error) {
	if d.Envelope == nil || d.Envelope.ContentPackage == nil {
		return nil, fmt.Errorf("%w: no content package", ErrNotEGVP)
	}
	if d.Attachment == nil {
		d.Attachment = func(string) *osci.Part { return nil }
	}
	lim = lim.withDefaults()
	r := &reader{ctx: ctx, d: d, lim: lim, m: &Message{}}
	if err := r.containers(); err != nil {
		return nil, err
	}
	r.processCard()
	r.fields()
	pairSignatures(r.m.Parts)
	r.m.Origin = checkOrigin(d, r.m, cfg)
	r.m.Problems = append(r.m.Problems, r.m.Origin.Problems...)
	return r.m, nil
}

type reader struct {
	ctx context.Context
	d   Delivery
	lim Limits
	m   *Message
}

func (r *reader) problem(format string, args ...any) {
	r.m.Problems = append(r.m.Problems, fmt.Sprintf(format, args...))
}

func (r *reader) containers() error {
	var project bool
	for _, c := range r.d.Envelope.ContentPackage.Containers {
		project = project || c.ID == ContainerProject
		for _, ct := range c.Contents {
			if err := r.content(c.ID, ct); err != nil {
				return err
			}
		}
	}
	if !project {
		return fmt.Errorf("%w: no %s container", ErrNotEGVP, ContainerProject)
	}
	return nil
}

func (r *reader) content(container string, ct *osci.Content) error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("reading the EGVP delivery: %w", err)
	}
	if id := ct.AttachmentID(); id != "" {
		return r.attachment(container, id)
	}
	if ct.Base64ID == "" {
		r.problem("container %s: a content that is neither a file nor an attachment", container)
		return nil
	}
	r.inline(container, ct.Base64ID, ct.Base64)
	return nil
}

// inline reads one inline file of a container.
func (r *reader) inline(container, name string, data []byte) {
	r.m.Parts = append(r.m.Parts, Part{Name: name, Container: container, Inline: true, Size: int64(len(data))})
	var problems []string
	var err error
	switch name {
	case FileCard:
		r.m.Card, problems, err = parseBusinessCard(data)
	case FileDescription:
		r.m.Description, problems, err = parseDescription(data)
	case FileInfo:
		r.m.Info, err = parseInfo(data)
	}
	r.m.Problems = append(r.m.Problems, problems...)
	if err != nil {
		r.problem("%s: %v", name, err)
	}
}

func (r *reader) attachment(container, id string) error {
	p := r.d.Attachment(id)
	if p == nil {
		r.problem("container %s: attachment %s is missing", container, id)
		r.m.Parts = append(r.m.Parts, Part{Name: id, Container: container, ContentID: id})
		return nil
	}
	r.m.Parts = append(r.m.Parts, Part{Name: id, Container: container, ContentID: id, Size: p.Size, SHA256: p.SHA256})
	if id != FileXJustiz || container != ContainerProject {
		return nil
	}
	if p.Size > r.lim.MaxXJustizBytes {
		r.problem("%s: %d bytes exceed the %d byte limit; not read", id, p.Size, r.lim.MaxXJustizBytes)
		return nil
	}
	data, err := readPart(p, r.lim.MaxXJustizBytes)
	if err != nil {
		return fmt.Errorf("reading %s: %w", id, err)
	}
	r.xjustiz(data)
	return nil
}

func (r *reader) xjustiz(data []byte) {
	m, err := xjustiz.Parse(data, r.lim.XJustiz)
	if err != nil {
		r.problem("%s: %v", FileXJustiz, err)
		return
	}
	r.m.XJustiz = m
	for _, p := range m.Problems {
		r.problem("%s: %s", FileXJustiz, p)
	}
}

// ReadFiles gives the files of a message received earlier their EGVP meaning again,
// as Read gave it from the delivery: visitenkarte.xml, nachricht.xml and
// additional_infos inline, xjustiz_nachricht.xml as an attachment of project_coco;
// other files are listed. The sender uses it to answer a message recorded with its
// decrypted files. There is no delivery, so Origin is not checked again (LevelNone,
// Reason saying so) and MessageID and Received stay empty.
func ReadFiles(files []File, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	r := &reader{lim: lim, m: &Message{}}
	for _, f := range files {
		switch {
		case f.Inline:
			r.inline(ContainerProject, f.Name, f.Data)
		case f.Name == FileXJustiz:
			r.m.Parts = append(r.m.Parts, Part{Name: f.Name, Container: ContainerProject, ContentID: f.Name, Size: int64(len(f.Data)), SHA256: sha256.Sum256(f.Data)})
			if int64(len(f.Data)) > lim.MaxXJustizBytes {
				r.problem("%s: %d bytes exceed the %d byte limit; not read", f.Name, len(f.Data), lim.MaxXJustizBytes)
				continue
			}
			r.xjustiz(f.Data)
		default:
			r.m.Parts = append(r.m.Parts, Part{Name: f.Name, Container: ContainerProject, ContentID: f.Name, Size: int64(len(f.Data)), SHA256: sha256.Sum256(f.Data)})
		}
	}
	if r.m.Card == nil && r.m.Description == nil && r.m.XJustiz == nil {
		return nil, fmt.Errorf("%w: none of %s, %s, %s", ErrNotEGVP, FileCard, FileDescription, FileXJustiz)
	}
	r.fields()
	pairSignatures(r.m.Parts)
	r.m.Origin = Origin{Level: LevelNone, Reason: "not checked: read from the files kept, not from the delivery"}
	return r.m, nil
}

func readPart(p *osci.Part, max int64) ([]byte, error) {
	rc, err := p.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return data, nil
}

func (r *reader) processCard() {
	env := r.d.Envelope
	if op := env.Operation; op != nil {
		r.m.OSCISubject = op.Subject
		r.m.MessageID = decodeID(op.MessageID)
	}
	cards := env.ProcessCards()
	if len(cards) == 0 {
		return
	}
	pc := cards[0]
	if id := decodeID(pc.MessageID); id != "" {
		r.m.MessageID = id
	}
	if r.m.OSCISubject == "" {
		r.m.OSCISubject = pc.Card.Subject
	}
	if pc.Card.Creation != nil {
		r.m.Received = pc.Card.Creation.Plain
	}
}

// decodeID decodes an OSCI message id, which travels base64-encoded.
func decodeID(s string) string {
	if s == "" {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}

func (r *reader) fields() {
	m := r.m
	if m.Card != nil {
		m.SenderSafeID = m.Card.SafeID
	}
	if d := m.Description; d != nil {
		m.Subject, m.Text, m.RecipientSafeID = d.Subject, d.Text, d.RecipientSafeID
		m.SenderFileNumber, m.RecipientFileNumber = d.SenderFileNumber, d.RecipientFileNumber
		m.MessageType = d.Type
	}
	if m.Subject == "" {
		m.Subject = m.Info["subject"]
	}
	if x := m.XJustiz; x != nil {
		r.agree("sender's Aktenzeichen", &m.SenderFileNumber, x.Header.SenderFileNumber)
		r.agree("recipient's Aktenzeichen", &m.RecipientFileNumber, x.Header.RecipientFileNumber)
		m.MessageType = x.Type
		m.RecipientCode = x.RecipientCode()
		m.EEB = eebRequest(x)
		if x.IsReceipt() {
			m.Receipt, m.AnswersXJustizID = x.Receipt, x.Header.ForeignMessageID
		}
	}
	if m.Card == nil {
		r.problem("no %s: the sender is unknown", FileCard)
	}
}

// CheckReceiptRequest flags a returning eEB whose request the caller does not know
// (known reports whether an XJustiz id is one of the gateway's own eEB requests).
func (m *Message) CheckReceiptRequest(known func(xjustizID string) bool) {
	if m.Receipt != nil && !known(m.AnswersXJustizID) {
		m.Problems = append(m.Problems, fmt.Sprintf("eEB for a request this mailbox did not send (fremde Nachrichten-ID %q)", m.AnswersXJustizID))
	}
}

// agree takes the XJustiz value and flags a nachricht.xml that says otherwise.
func (r *reader) agree(what string, dst *string, xj string) {
	if xj == "" {
		return
	}
	if *dst != "" && *dst != xj {
		r.problem("%s: nachricht.xml says %q, the XJustiz message %q", what, *dst, xj)
	}
	*dst = xj
}

func eebRequest(x *xjustiz.Message) EEBRequest {
	var q EEBRequest
	for _, d := range x.Documents {
		if d.EEBRequired {
			q.Requested = true
			q.Documents = append(q.Documents, d.ID)
		}
	}
	if q.Requested {
		q.ForeignMessageID = x.Header.OwnMessageID
	}
	return q
}

var signatureExts = []string{".p7s", ".pkcs7", ".sig"}

// pairSignatures links each detached signature to the file it signs: "a.pdf.p7s" signs
// "a.pdf"; a signature whose file is not in the delivery stays unpaired.
func pairSignatures(parts []Part) {
	byName := map[string]int{}
	for i, p := range parts {
		byName[p.Name] = i
	}
	for i, p := range parts {
		ext := strings.ToLower(path.Ext(p.Name))
		if !slices.Contains(signatureExts, ext) {
			continue
		}
		base := p.Name[:len(p.Name)-len(ext)]
		j, ok := byName[base]
		if !ok || j == i {
			continue
		}
		parts[i].SignatureOf = base
		parts[j].Signatures = append(parts[j].Signatures, p.Name)
		sort.Strings(parts[j].Signatures)
	}
}
