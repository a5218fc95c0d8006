package xjustiz

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Answer is a returning eEB to be written: the acknowledgement of receipt
// (Received set) or its refusal (Refusal set) of the request OwnMessageID answers.
type Answer struct {
	// Generation picks the element names: Generation2 writes XJustiz 2.4.0 as the
	// TestnachrichtEeb_1 sample, Generation3 XJustiz 3.5.1 (xjustiz_2200_eeb_3_1.xsd)
	// or, with Layout LayoutPartner, 3.6.2.
	Generation Generation
	// Layout LayoutPartner writes the Nachrichtenkopf of XJustiz 3.6/3.7 (see
	// VersionPartner) instead of 3.5.1's; it needs Generation3.
	Layout Layout
	// SenderFileNumber is the answering side's Aktenzeichen, RecipientFileNumber the
	// requesting court's.
	SenderFileNumber, RecipientFileNumber string
	Created                               time.Time
	Sender, Recipient                     Party
	// OwnMessageID is the answer's new id, ForeignMessageID the request's
	// eigene Nachrichten-ID.
	OwnMessageID, ForeignMessageID string
	// Received is the date of receipt the answering side acknowledges.
	Received time.Time
	Refusal  *Refusal
	// DeviatingRecipient marks an answer by a representative.
	DeviatingRecipient bool
}

// AnswerTo prepares the answer to a request: the request's recipient answers its
// sender, each side's Aktenzeichen swaps place, and the request's id becomes the
// foreign id. The caller sets Received or Refusal.
func AnswerTo(req *Message, ownID string, created time.Time) Answer {
	g := req.Generation
	if g == GenerationUnknown {
		g = Generation3
	}
	return Answer{
		Generation:          g,
		Layout:              req.Layout,
		SenderFileNumber:    req.Header.RecipientFileNumber,
		RecipientFileNumber: req.Header.SenderFileNumber,
		Created:             created,
		Sender:              req.Header.Recipient,
		Recipient:           req.Header.Sender,
		OwnMessageID:        ownID,
		ForeignMessageID:    req.Header.OwnMessageID,
	}
}

var partyKind = regexp.MustCompile(`^[a-z][A-Za-z]{0,40}$`)

// ErrAnswer is wrapped by BuildReceipt for an answer that cannot be written.
var ErrAnswer = errors.New("xjustiz: incomplete eEB answer")

// gen holds the element names that differ between the generations.
type gen struct {
	version, schema                  string
	ownID, foreignID                 string
	sender, recipient                func(p Party) (open, close string)
	versionOnHeader, grunddatenEmpty bool
}

var generations = map[Generation]gen{
	Generation2: {
		version: "2.4.0", schema: "xjustiz_2200_eeb_2_2.xsd",
		ownID: "eigene_Nachrichten_ID", foreignID: "fremde_Nachrichten_ID",
		sender:          func(p Party) (string, string) { return party2Name("absender_", p), "" },
		recipient:       func(p Party) (string, string) { return party2Name("empfaenger_", p), "" },
		grunddatenEmpty: true,
	},
	Generation3: {
		version: "3.5.1", schema: "xjustiz_2200_eeb_3_1.xsd",
		ownID: "eigeneNachrichtenID", foreignID: "fremdeNachrichtenID",
		sender:          func(p Party) (string, string) { return "absender." + p.Kind, "auswahl_absender" },
		recipient:       func(p Party) (string, string) { return "empfaenger." + p.Kind, "auswahl_empfaenger" },
		versionOnHeader: true,
	},
}

// party2Name is the 2.x element: absender_Gericht, absender_Sonstige.
func party2Name(prefix string, p Party) string {
	if p.Kind == "" {
		return prefix
	}
	return prefix + string(p.Kind[0]-'a'+'A') + p.Kind[1:]
}

// BuildReceipt writes the returning eEB nachricht.eeb.zuruecklaufend.2200007.
func BuildReceipt(a Answer) ([]byte, error) {
	g, ok := generations[a.Generation]
	if err := a.check(ok); err != nil {
		return nil, err
	}
	w := &writer{}
	w.raw(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	w.raw(`<tns:nachricht.eeb.zuruecklaufend.2200007 xmlns:tns="http://www.xjustiz.de" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.xjustiz.de ` + g.schema + `">` + "\n")
	version := g.version
	if a.Layout == LayoutPartner {
		version = VersionPartner
		w.partnerHead(partnerHead{senderFileNumber: a.SenderFileNumber, recipientFileNumber: a.RecipientFileNumber,
			created: a.Created, sender: a.Sender, recipient: a.Recipient, ownID: a.OwnMessageID, foreignID: a.ForeignMessageID})
	} else {
		w.flatHead(g, a)
	}
	w.raw("  <tns:fachdaten>\n")
	if a.Refusal != nil {
		w.raw("    <tns:stoerungsmeldung>\n")
		w.raw(`      <tns:stoerungsID listVersionID="2.1"><code>`)
		w.text(a.Refusal.Code)
		w.raw("</code></tns:stoerungsID>\n")
		if a.Refusal.Reason != "" {
			w.elem(6, "stoerungsGrund", a.Refusal.Reason)
		}
		w.raw("    </tns:stoerungsmeldung>\n")
	} else {
		w.elem(4, "empfangsbestaetigung", a.Received.Format(time.DateOnly))
	}
	if a.DeviatingRecipient {
		w.elem(4, "zustellungsempfaenger.abweichend", "true")
	}
	w.raw("  </tns:fachdaten>\n")
	w.raw("</tns:nachricht.eeb.zuruecklaufend.2200007>\n")
	if err := selfCheck(w.b.Bytes(), version); err != nil {
		return nil, err
	}
	return w.b.Bytes(), nil
}

// flatHead writes the Nachrichtenkopf of 2.x to 3.5 and, for 2.x, the grunddaten.
func (w *writer) flatHead(g gen, a Answer) {
	if g.versionOnHeader {
		w.raw(`  <tns:nachrichtenkopf xjustizVersion="` + g.version + `">` + "\n")
	} else {
		w.raw("  <tns:nachrichtenkopf>\n")
	}
	w.elem(4, "aktenzeichen.absender", a.SenderFileNumber)
	w.elem(4, "aktenzeichen.empfaenger", a.RecipientFileNumber)
	w.elem(4, "erstellungszeitpunkt", a.Created.Format("2006-01-02T15:04:05.000Z07:00"))
	w.party(g.sender, a.Sender)
	w.party(g.recipient, a.Recipient)
	w.elem(4, g.ownID, a.OwnMessageID)
	w.elem(4, g.foreignID, a.ForeignMessageID)
	w.raw("  </tns:nachrichtenkopf>\n")
	if g.grunddatenEmpty {
		w.raw(`  <tns:grunddaten xjustizVersion="` + g.version + `"/>` + "\n")
	}
}

// selfCheck holds what is written to its schema table, where there is one: an id
// that is no UUID or a court code without its Codeliste version would otherwise go
// out to a court whose software refuses it.
func selfCheck(data []byte, version string) error {
	set := schemaSets[version]
	if set == nil {
		return nil
	}
	doc, err := xmldsig.Parse(data, xmldsig.Limits{MaxBytes: len(data) + 1})
	if err != nil {
		return fmt.Errorf("%w: the answer written does not parse: %w", ErrAnswer, err)
	}
	if problems, _ := validateSchema(set, doc.Root); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrAnswer, strings.Join(problems, "; "))
	}
	return nil
}

func (a Answer) check(knownGeneration bool) error {
	switch {
	case !knownGeneration:
		return fmt.Errorf("%w: generation %d is not written", ErrAnswer, a.Generation)
	case a.OwnMessageID == "" || a.ForeignMessageID == "":
		return fmt.Errorf("%w: both message ids are needed", ErrAnswer)
	case a.Created.IsZero():
		return fmt.Errorf("%w: no creation time", ErrAnswer)
	case !partyKind.MatchString(a.Sender.Kind) || !partyKind.MatchString(a.Recipient.Kind):
		return fmt.Errorf("%w: sender and recipient need a kind (gericht, sonstige, ...), have %q and %q", ErrAnswer, a.Sender.Kind, a.Recipient.Kind)
	case (a.Refusal == nil) == a.Received.IsZero():
		return fmt.Errorf("%w: exactly one of the date of receipt and a refusal", ErrAnswer)
	case a.Layout == LayoutPartner && a.Generation != Generation3:
		return fmt.Errorf("%w: the 3.6/3.7 Nachrichtenkopf is XJustiz 3", ErrAnswer)
	case a.Refusal != nil && a.Generation != Generation3:
		// The 2.x refusal elements are not in the material this package follows.
		return fmt.Errorf("%w: a refusal is written in XJustiz 3 only", ErrAnswer)
	case a.Refusal != nil && a.Refusal.Code != RefusalNotParty && a.Refusal.Code != RefusalUnclear && a.Refusal.Code != RefusalSignatures:
		return fmt.Errorf("%w: refusal code %q is not in the Codeliste eeb.stoerungs-id", ErrAnswer, a.Refusal.Code)
	}
	return nil
}

type writer struct{ b bytes.Buffer }

func (w *writer) raw(s string) { w.b.WriteString(s) }

func (w *writer) text(s string) { _ = xml.EscapeText(&w.b, []byte(s)) }

func (w *writer) elem(indent int, name, value string) {
	w.raw(spaces(indent) + "<tns:" + name + ">")
	w.text(value)
	w.raw("</tns:" + name + ">\n")
}

func (w *writer) party(names func(Party) (string, string), p Party) {
	name, wrapper := names(p)
	indent := 4
	if wrapper != "" {
		w.raw("    <tns:" + wrapper + ">\n")
		indent = 6
	}
	if p.Code != "" {
		lv := ""
		if p.ListVersion != "" {
			lv = ` listVersionID="` + attrEscape(p.ListVersion) + `"`
		}
		w.raw(spaces(indent) + "<tns:" + name + lv + "><code>")
		w.text(p.Code)
		w.raw("</code></tns:" + name + ">\n")
	} else {
		w.elem(indent, name, p.Name)
	}
	if wrapper != "" {
		w.raw("    </tns:" + wrapper + ">\n")
	}
}

func attrEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func spaces(n int) string { return "          "[:n] }

// VersionPartner is the xjustizVersion written with LayoutPartner: 3.6.2, which the
// Nachrichtenkopf of both the 3.6.2 and the 3.7.0 schema packages fixes (the 3.7.0
// package kept the 3.6.2 attribute), so the answer is valid for a 3.6 or 3.7 court.
const VersionPartner = "3.6.2"

// The herstellerinformation the 3.6/3.7 Nachrichtenkopf requires.
const (
	productName    = "Poststelle"
	productVendor  = "Poststelle project"
	productVersion = "1"
)

// partnerHead is what a 3.6/3.7 Nachrichtenkopf states.
type partnerHead struct {
	senderFileNumber, recipientFileNumber string
	created                               time.Time
	sender, recipient                     Party
	ownID, foreignID                      string
}

// partnerHead writes the 3.6/3.7 Nachrichtenkopf: an unknown recipient Aktenzeichen
// is aktenzeichen.unbekannt, since the element is required there.
func (w *writer) partnerHead(h partnerHead) {
	w.raw(`  <tns:nachrichtenkopf xjustizVersion="` + VersionPartner + `">` + "\n")
	w.elem(4, "erstellungszeitpunkt", h.created.Format("2006-01-02T15:04:05.000Z07:00"))
	w.raw("    <tns:absender>\n")
	w.partner(h.sender)
	if h.senderFileNumber != "" {
		w.elem(6, "aktenzeichen", h.senderFileNumber)
	}
	w.elem(6, "eigeneNachrichtenID", h.ownID)
	w.raw("    </tns:absender>\n")
	w.raw("    <tns:empfaenger>\n")
	w.partner(h.recipient)
	w.raw("      <tns:auswahl_aktenzeichen>\n")
	if h.recipientFileNumber != "" {
		w.elem(8, "aktenzeichen.freitext", h.recipientFileNumber)
	} else {
		w.elem(8, "aktenzeichen.unbekannt", "true")
	}
	w.raw("      </tns:auswahl_aktenzeichen>\n")
	if h.foreignID != "" {
		w.elem(6, "fremdeNachrichtenID", h.foreignID)
	}
	w.raw("    </tns:empfaenger>\n")
	w.raw("    <tns:herstellerinformation>\n")
	w.elem(6, "nameDesProdukts", productName)
	w.elem(6, "herstellerDesProdukts", productVendor)
	w.elem(6, "version", productVersion)
	w.raw("    </tns:herstellerinformation>\n")
	w.raw("  </tns:nachrichtenkopf>\n")
}

// partner writes a Type.GDS.Kommunikationspartner.
func (w *writer) partner(p Party) {
	w.raw("      <tns:informationen>\n")
	w.raw("        <tns:auswahl_kommunikationspartner>\n")
	if p.Code != "" {
		lv := ""
		if p.ListVersion != "" {
			lv = ` listVersionID="` + attrEscape(p.ListVersion) + `"`
		}
		w.raw("          <tns:" + p.Kind + lv + "><code>")
		w.text(p.Code)
		w.raw("</code></tns:" + p.Kind + ">\n")
	} else {
		w.elem(10, p.Kind, p.Name)
	}
	w.raw("        </tns:auswahl_kommunikationspartner>\n")
	w.raw("      </tns:informationen>\n")
}
