package xjustiz

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// TypeDocuments is the message type of an ordinary answer carrying documents.
const TypeDocuments = "nachricht.gds.uebermittlungSchriftgutobjekte"

// Reply is an ordinary answer to be written: the message
// nachricht.gds.uebermittlungSchriftgutobjekte.0005005 of XJustiz 3.5.1
// (xjustiz_0005_nachrichten_3_1.xsd) whose Nachrichtenkopf references the message it
// answers and whose documents are the answer's files.
type Reply struct {
	// SenderFileNumber is the answering side's Aktenzeichen, RecipientFileNumber the
	// other side's.
	SenderFileNumber, RecipientFileNumber string
	Created                               time.Time
	Sender, Recipient                     Party
	// OwnMessageID is the answer's new id; ForeignMessageID the answered message's
	// eigene Nachrichten-ID, empty when the answered message had none.
	OwnMessageID, ForeignMessageID string
	Documents                      []ReplyDocument
	// Layout LayoutPartner writes XJustiz 3.6.2 (xjustiz_0005_nachrichten_3_2.xsd,
	// valid for 3.6 and 3.7 alike, see VersionPartner) for a court that wrote the
	// 3.6/3.7 Nachrichtenkopf.
	Layout Layout
}

// ReplyDocument is one dokument of the answer: one file.
type ReplyDocument struct {
	// ID is a UUID; NewDocumentID derives one.
	ID       string
	FileName string
}

// ReplyTo prepares the answer to orig as AnswerTo prepares an eEB: the recipient of
// orig answers its sender, the Aktenzeichen swap places and orig's id becomes the
// foreign id.
func ReplyTo(orig *Message, ownID string, created time.Time) Reply {
	return Reply{
		SenderFileNumber:    orig.Header.RecipientFileNumber,
		RecipientFileNumber: orig.Header.SenderFileNumber,
		Created:             created,
		Sender:              orig.Header.Recipient,
		Recipient:           orig.Header.Sender,
		OwnMessageID:        ownID,
		ForeignMessageID:    orig.Header.OwnMessageID,
		Layout:              orig.Layout,
	}
}

// NewDocumentID derives the UUID of the n-th document of the message ownID: the same
// message written again lists the same ids.
func NewDocumentID(ownID string, n int) string {
	sum := sha256.Sum256([]byte("poststelle xjustiz document\x00" + ownID + "\x00" + strconv.Itoa(n)))
	return UUIDFromBytes(sum[:16], true)
}

// UUIDFromBytes formats 16 bytes in the 8-4-4-4-12 grouping of a UUID, the form
// XJustiz 3 requires of its ids (Type.GDS.Xdomea.stringUUIDType). With versioned set
// the version and variant bits are those of an RFC 9562 version 8 UUID; without, the
// bytes are kept as they are, so that the id can be read back into them.
func UUIDFromBytes(b []byte, versioned bool) string {
	var u [16]byte
	copy(u[:], b)
	if versioned {
		u[6] = u[6]&0x0f | 0x80
		u[8] = u[8]&0x3f | 0x80
	}
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// BuildReply writes r as nachricht.gds.uebermittlungSchriftgutobjekte.0005005.
func BuildReply(r Reply) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	g := generations[Generation3]
	schema, bestandteil := "xjustiz_0005_nachrichten_3_1.xsd", "2.4"
	if r.Layout == LayoutPartner {
		// 3.6.2 and 3.7.0 fix the Codeliste gds.bestandteiltyp at 2.5.
		schema, bestandteil = "xjustiz_0005_nachrichten_3_2.xsd", "2.5"
	}
	w := &writer{}
	w.raw(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	w.raw(`<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de ` + schema + `">` + "\n")
	if r.Layout == LayoutPartner {
		w.partnerHead(partnerHead{senderFileNumber: r.SenderFileNumber, recipientFileNumber: r.RecipientFileNumber,
			created: r.Created, sender: r.Sender, recipient: r.Recipient, ownID: r.OwnMessageID, foreignID: r.ForeignMessageID})
	} else {
		w.flatReplyHead(g, r)
	}
	w.replyBody(r, bestandteil)
	return w.b.Bytes(), nil
}

// flatReplyHead writes the 3.5.1 Nachrichtenkopf of an answer.
func (w *writer) flatReplyHead(g gen, r Reply) {
	w.raw(`  <tns:nachrichtenkopf xjustizVersion="` + g.version + `">` + "\n")
	if r.SenderFileNumber != "" {
		w.elem(4, "aktenzeichen.absender", r.SenderFileNumber)
	}
	if r.RecipientFileNumber != "" {
		w.elem(4, "aktenzeichen.empfaenger", r.RecipientFileNumber)
	}
	w.elem(4, "erstellungszeitpunkt", r.Created.Format("2006-01-02T15:04:05.000Z07:00"))
	w.party(g.sender, r.Sender)
	w.party(g.recipient, r.Recipient)
	w.elem(4, g.ownID, r.OwnMessageID)
	if r.ForeignMessageID != "" {
		w.elem(4, g.foreignID, r.ForeignMessageID)
	}
	w.raw("  </tns:nachrichtenkopf>\n")
}

// replyBody writes the grunddaten and the documents of an answer.
func (w *writer) replyBody(r Reply, bestandteil string) {
	// Grunddaten are required in a Basisnachricht; all their children are optional,
	// and the answer has no case data of its own to state.
	w.raw("  <tns:grunddaten/>\n")
	w.raw("  <tns:schriftgutobjekte>\n")
	for i, d := range r.Documents {
		w.raw("    <tns:dokument>\n")
		w.raw("      <tns:identifikation>\n")
		w.elem(8, "id", d.ID)
		w.elem(8, "nummerImUebergeordnetenContainer", strconv.Itoa(i+1))
		w.raw("      </tns:identifikation>\n")
		w.raw("      <tns:xjustiz.fachspezifischeDaten>\n")
		// Dokumentklasse 001 and Bestandteil 001 (original) as the 3.2.1 sample
		// states them.
		w.raw(`        <tns:dokumentklasse listURI="urn:xoev-de:xjustiz:codeliste:gds.dokumentklasse" listVersionID=""><code>001</code></tns:dokumentklasse>` + "\n")
		w.elem(8, "anzeigename", d.FileName)
		w.raw("        <tns:datei>\n")
		w.elem(10, "dateiname", d.FileName)
		w.raw(`          <tns:bestandteil listURI="urn:xoev-de:xjustiz:codeliste:gds.bestandteiltyp" listVersionID="` + bestandteil + `"><code>001</code></tns:bestandteil>` + "\n")
		w.raw("        </tns:datei>\n")
		w.raw("      </tns:xjustiz.fachspezifischeDaten>\n")
		w.raw("    </tns:dokument>\n")
	}
	w.raw("  </tns:schriftgutobjekte>\n")
	w.raw("</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>\n")
}

func (r Reply) check() error {
	switch {
	case r.OwnMessageID == "":
		return fmt.Errorf("%w: the answer needs its own message id", ErrAnswer)
	case r.Created.IsZero():
		return fmt.Errorf("%w: no creation time", ErrAnswer)
	case !partyKind.MatchString(r.Sender.Kind) || !partyKind.MatchString(r.Recipient.Kind):
		return fmt.Errorf("%w: sender and recipient need a kind (gericht, sonstige, ...), have %q and %q", ErrAnswer, r.Sender.Kind, r.Recipient.Kind)
	case len(r.Documents) == 0:
		return fmt.Errorf("%w: an answer without documents", ErrAnswer)
	}
	for _, d := range r.Documents {
		if d.ID == "" || d.FileName == "" {
			return fmt.Errorf("%w: a document needs an id and a file name", ErrAnswer)
		}
	}
	return nil
}
