package egvp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/xjustiz"
)

// File is one file of an outgoing EGVP message's project_coco container: the inline
// contents (visitenkarte.xml, nachricht.xml) and the attachments (xjustiz_nachricht.xml,
// documents), as the OSCI channel composes them.
type File struct {
	Name   string
	Inline bool
	Data   []byte
}

// ReceiptAnswer is the office's answer to an eEB request.
type ReceiptAnswer struct {
	// Own is the answering mailbox's Visitenkarte, from the site's configuration.
	Own BusinessCard
	// Received is the acknowledged date of receipt; Refusal, when set, refuses instead.
	Received time.Time
	Refusal  *xjustiz.Refusal
	// DeviatingRecipient marks an answer by a representative.
	DeviatingRecipient bool
	// OwnMessageID is the answer's new XJustiz id, Created its creation time.
	OwnMessageID string
	Created      time.Time
}

// ErrNoRequest is returned for an answer to a message that asks for no eEB.
var ErrNoRequest = errors.New("egvp: the message asks for no eEB")

// BuildReceiptAnswer writes the files of the eEB for req, as the TestnachrichtEeb_1
// sample carries them: nachricht.xml (Allgemeine Nachricht, "EB zu: <the court's
// Aktenzeichen>", addressed to the court's SAFE-ID), visitenkarte.xml and
// xjustiz_nachricht.xml with nachricht.eeb.zuruecklaufend in the request's XJustiz
// generation.
func BuildReceiptAnswer(req *Message, a ReceiptAnswer) ([]File, error) {
	if req.XJustiz == nil || !req.EEB.Requested {
		return nil, ErrNoRequest
	}
	if req.SenderSafeID == "" {
		return nil, fmt.Errorf("egvp: the request names no sender SAFE-ID to answer")
	}
	ans := xjustiz.AnswerTo(req.XJustiz, a.OwnMessageID, a.Created)
	ans.Received, ans.Refusal, ans.DeviatingRecipient = a.Received, a.Refusal, a.DeviatingRecipient
	xj, err := xjustiz.BuildReceipt(ans)
	if err != nil {
		return nil, fmt.Errorf("egvp: building the eEB: %w", err)
	}
	d := Description{
		Type: "Allgemeine Nachricht", SignatureLevel: "no", RecipientSafeID: req.SenderSafeID,
		Subject:             "EB zu: " + req.SenderFileNumber,
		RecipientFileNumber: req.SenderFileNumber, SenderFileNumber: req.RecipientFileNumber,
	}
	return []File{
		{Name: FileDescription, Inline: true, Data: BuildDescription(d)},
		{Name: FileCard, Inline: true, Data: BuildBusinessCard(a.Own)},
		{Name: FileXJustiz, Data: xj},
	}, nil
}

// Answer is an office's ordinary answer to an EGVP message.
type Answer struct {
	// Own is the answering mailbox's Visitenkarte, from the site's configuration.
	Own     BusinessCard
	Subject string
	// Files are the names of the answer's documents (its text, its attachments) in
	// order; the caller attaches the files themselves beside the ones built here.
	Files []string
	// OwnMessageID is the answer's new XJustiz id, Created its creation time.
	OwnMessageID string
	Created      time.Time
}

// BuildAnswer writes the files of an ordinary answer to orig: nachricht.xml (to the
// sender's SAFE-ID, both Aktenzeichen swapped), visitenkarte.xml and
// xjustiz_nachricht.xml, a nachricht.gds.uebermittlungSchriftgutobjekte whose
// Nachrichtenkopf references orig (fremdeNachrichtenID its eigeneNachrichtenID) and
// lists a.Files as its documents. A message without XJustiz is answered with the
// Aktenzeichen of its nachricht.xml and both mailboxes named by SAFE-ID.
func BuildAnswer(orig *Message, a Answer) ([]File, error) {
	if orig.SenderSafeID == "" {
		return nil, fmt.Errorf("egvp: the message names no sender SAFE-ID to answer")
	}
	var r xjustiz.Reply
	if orig.XJustiz != nil {
		r = xjustiz.ReplyTo(orig.XJustiz, a.OwnMessageID, a.Created)
	} else {
		r = xjustiz.Reply{SenderFileNumber: orig.RecipientFileNumber, RecipientFileNumber: orig.SenderFileNumber,
			Created: a.Created, OwnMessageID: a.OwnMessageID}
	}
	// A header that named a side by nothing this package writes: by SAFE-ID then.
	if r.Sender.Kind == "" || (r.Sender.Code == "" && r.Sender.Name == "") {
		r.Sender = xjustiz.Party{Kind: "sonstige", Name: a.Own.SafeID}
	}
	if r.Recipient.Kind == "" || (r.Recipient.Code == "" && r.Recipient.Name == "") {
		r.Recipient = xjustiz.Party{Kind: "sonstige", Name: orig.SenderSafeID}
	}
	for i, name := range a.Files {
		r.Documents = append(r.Documents, xjustiz.ReplyDocument{ID: xjustiz.NewDocumentID(a.OwnMessageID, i+1), FileName: name})
	}
	xj, err := xjustiz.BuildReply(r)
	if err != nil {
		return nil, fmt.Errorf("egvp: building the answer: %w", err)
	}
	d := Description{
		Type: "Allgemeine Nachricht", SignatureLevel: "no", RecipientSafeID: orig.SenderSafeID,
		Subject: a.Subject, RecipientFileNumber: r.RecipientFileNumber, SenderFileNumber: r.SenderFileNumber,
	}
	return []File{
		{Name: FileDescription, Inline: true, Data: BuildDescription(d)},
		{Name: FileCard, Inline: true, Data: BuildBusinessCard(a.Own)},
		{Name: FileXJustiz, Data: xj},
	}, nil
}

// BuildBusinessCard writes a Visitenkarte in the samples' element order.
func BuildBusinessCard(c BusinessCard) []byte {
	return buildFlat("Visitenkarte", [][2]string{
		{"Organisation", c.Organisation}, {"Organisationszusatz", c.OrganisationUnit}, {"Anrede", c.Salutation},
		{"Titel", c.Title}, {"Vorname", c.FirstName}, {"Name", c.Name}, {"Strasse", c.Street},
		{"Hausnummer", c.HouseNumber}, {"Postleitzahl", c.PostCode}, {"Ort", c.City}, {"Bundesland", c.State},
		{"Land", c.Country}, {"E-Mail", c.Email}, {"Mobiltelefon", c.Mobile}, {"Telefon", c.Phone}, {"Fax", c.Fax},
		{"Nutzer_ID", c.SafeID}, {"Rollen_ID", c.Role}, {"Externe_ID", c.ExternalID},
	})
}

// BuildDescription writes a nachricht.xml in the samples' element order.
func BuildDescription(d Description) []byte {
	return buildFlat("Nachricht", [][2]string{
		{"Nachrichtentyp", d.Type}, {"Signaturniveau", d.SignatureLevel}, {"Empfaengerkennung", d.RecipientSafeID},
		{"Betreff", d.Subject}, {"Aktenzeichen_Empfaenger", d.RecipientFileNumber},
		{"Aktenzeichen_Absender", d.SenderFileNumber}, {"Freitext", d.Text},
	})
}

func buildFlat(root string, fields [][2]string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><` + root + ">\n")
	for _, f := range fields {
		if f[1] == "" {
			b.WriteString("<" + f[0] + "/>\n")
			continue
		}
		b.WriteString("<" + f[0] + ">")
		_ = xml.EscapeText(&b, []byte(f[1]))
		b.WriteString("</" + f[0] + ">\n")
	}
	b.WriteString("</" + root + ">\n")
	return b.Bytes()
}
