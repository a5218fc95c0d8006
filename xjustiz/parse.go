package xjustiz

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Namespace is the XJustiz target namespace of every message.
const Namespace = "http://www.xjustiz.de"

const nsXSI = "http://www.w3.org/2001/XMLSchema-instance"

// ErrFormat is wrapped by every error of a document that cannot be read as XML at all;
// a well-formed document that breaks XJustiz rules is read and gets Problems instead.
var ErrFormat = errors.New("xjustiz: not a readable XML document")

// Generation is the XJustiz major version whose element names a message uses.
type Generation int

// The generations read and written.
const (
	GenerationUnknown Generation = 0
	Generation2       Generation = 2
	Generation3       Generation = 3
)

// Layout is the arrangement of the Nachrichtenkopf within a generation.
type Layout int

// The layouts read and written.
const (
	// LayoutFlat is 2.x to 3.5: the Aktenzeichen, parties and ids are children of
	// the Nachrichtenkopf.
	LayoutFlat Layout = 0
	// LayoutPartner is 3.6 and 3.7: each side is an absender or empfaenger element
	// holding its Kommunikationspartner, its Aktenzeichen and its message id.
	LayoutPartner Layout = 1
)

// Limits bound the parsing of one xjustiz_nachricht.xml.
type Limits struct {
	// MaxBytes caps the document; 0 takes 4 MiB (a Schriftgutobjekte message lists
	// documents, it does not carry them).
	MaxBytes int
	// MaxDocuments caps the dokument entries read; 0 takes 10,000 (EGVP allows 1,000
	// files).
	MaxDocuments int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 4 << 20
	}
	if l.MaxDocuments <= 0 {
		l.MaxDocuments = 10_000
	}
	return l
}

// Message is what the gateway reads from one XJustiz message.
type Message struct {
	// Root is the document element's local name, e.g.
	// nachricht.gds.uebermittlungSchriftgutobjekte.0005005; Type is Root without its
	// number and TypeCode the number (0005005, 2200007).
	Root, Type, TypeCode string
	// Namespace is the document element's namespace, Namespace when it is XJustiz.
	Namespace string
	// Version is the declared xjustizVersion ("2.4.0", "3.2.1"); Schema the schema
	// file the xsi:schemaLocation names.
	Version, Schema string
	// Generation is that of the element names the header uses.
	Generation Generation
	// Layout is how the Nachrichtenkopf places the parties: LayoutPartner for the
	// absender/empfaenger elements of XJustiz 3.6 and 3.7.
	Layout    Layout
	Header    Header
	Documents []Document
	// Receipt is the fachdaten of a returning eEB (nachricht.eeb.zuruecklaufend).
	Receipt *Receipt
	// SchemaChecked is the XJustiz version whose schema tables the message was
	// checked against (see SchemaVersions); empty when there is none for its
	// version or message type, and then only the elements read are checked.
	SchemaChecked string
	// Problems are the XJustiz rules the message breaks, in reading order; schema
	// failures start with "schema XJustiz <version>:".
	Problems []string
}

// Header is the Nachrichtenkopf.
type Header struct {
	// SenderFileNumber and RecipientFileNumber are the Aktenzeichen of both sides
	// (aktenzeichen.absender, aktenzeichen.empfaenger), trimmed.
	SenderFileNumber, RecipientFileNumber string
	// Created is erstellungszeitpunkt as written; CreatedTime its value, zero when it
	// does not parse. A time without zone (2.x allows it) is read as UTC and Floating
	// is set.
	Created     string
	CreatedTime time.Time
	Floating    bool
	Sender      Party
	Recipient   Party
	// OwnMessageID is the sender's id of this message, ForeignMessageID the id of the
	// message it answers (an eEB names the request there).
	OwnMessageID, ForeignMessageID string
}

// Party is a sender or recipient of the Nachrichtenkopf: a court by its code from the
// Codeliste GDS.Gerichte (Kind "gericht"), or another party by name or SAFE-ID (Kind
// "sonstige"), or another coded kind (rvTraeger, ...).
type Party struct {
	Kind string
	// Code is the code of a coded party, ListVersion its listVersionID.
	Code, ListVersion string
	// Name is the text of a sonstige party.
	Name string
}

// String is the party as a person reads it: kind and code, or the name.
func (p Party) String() string {
	if p.Code != "" {
		return p.Kind + ":" + p.Code
	}
	return p.Name
}

// Document is one dokument of the Schriftgutobjekte.
type Document struct {
	ID        string
	FileNames []string
	// EEBRequired is ruecksendung(_)EEB(.|_)erforderlich: the sender asks for an
	// electronic acknowledgement of receipt for this document.
	EEBRequired bool
}

// Receipt is the fachdaten of a returning eEB: an acknowledgement with the date of
// receipt, or a refusal with its reason.
type Receipt struct {
	// Received is empfangsbestaetigung (a date), zero in a refusal.
	Received time.Time
	Refusal  *Refusal
	// DeviatingRecipient is zustellungsempfaenger.abweichend: a representative answered.
	DeviatingRecipient bool
}

// Refusal is a stoerungsmeldung.
type Refusal struct {
	// Code is from the Codeliste eeb.stoerungs-id: see RefusalNotParty and the others.
	Code string
	// Reason is the optional free text (stoerungsGrund).
	Reason string
}

// The codes of the Codeliste eeb.stoerungs-id, version 2.1.
const (
	RefusalNotParty   = "1" // Zustellungsempfänger nicht am Verfahren beteiligt
	RefusalUnclear    = "2" // Inhalt der Sendung unklar oder unvollständig
	RefusalSignatures = "3" // Signaturprüfung der übermittelten Dokumente fehlgeschlagen
)

// EEBRequested reports whether any document asks for an eEB.
func (m *Message) EEBRequested() bool {
	for _, d := range m.Documents {
		if d.EEBRequired {
			return true
		}
	}
	return false
}

// RecipientCode is the court code of the recipient, "" when the recipient is not a court.
func (m *Message) RecipientCode() string {
	if m.Header.Recipient.Kind == "gericht" {
		return m.Header.Recipient.Code
	}
	return ""
}

// IsReceipt reports a returning eEB.
func (m *Message) IsReceipt() bool { return m.Type == TypeReceipt }

// TypeReceipt is the message type of the returning eEB.
const TypeReceipt = "nachricht.eeb.zuruecklaufend"

var rootPattern = regexp.MustCompile(`^(nachricht\.[A-Za-z0-9_.]+)\.([0-9]{7})$`)

// Parse reads an xjustiz_nachricht.xml. It fails only for a document that is not
// well-formed XML within lim; everything else is kept and listed in Problems.
func Parse(data []byte, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes exceed the %d byte limit", ErrFormat, len(data), lim.MaxBytes)
	}
	doc, err := xmldsig.Parse(data, xmldsig.Limits{MaxBytes: lim.MaxBytes, MaxDepth: 48, MaxNodes: 10_000 + 64*lim.MaxDocuments})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	r := &reader{msg: &Message{}, lim: lim}
	r.root(doc.Root)
	return r.msg, nil
}

type reader struct {
	msg *Message
	lim Limits
}

func (r *reader) problem(format string, args ...any) {
	r.msg.Problems = append(r.msg.Problems, fmt.Sprintf(format, args...))
}

func (r *reader) root(e *xmldsig.Element) {
	m := r.msg
	m.Root, m.Namespace = e.Local, e.Space
	if e.Space != Namespace {
		r.problem("the document element is in namespace %q, not %s", e.Space, Namespace)
	}
	if g := rootPattern.FindStringSubmatch(e.Local); g != nil {
		m.Type, m.TypeCode = g[1], g[2]
	} else {
		r.problem("the document element %q is not an XJustiz message (nachricht.<name>.<7-digit number>)", e.Local)
	}
	if loc, ok := e.AttrNS(nsXSI, "schemaLocation"); ok {
		if f := strings.Fields(loc); len(f) == 2 {
			m.Schema = f[1]
		}
	}
	kids := e.Elements()
	if len(kids) == 0 || !kids[0].Is(Namespace, "nachrichtenkopf") {
		r.problem("the message does not start with its nachrichtenkopf")
	}
	for _, k := range kids {
		if k.Space != Namespace {
			continue
		}
		switch k.Local {
		case "nachrichtenkopf":
			r.header(k)
		case "grunddaten":
			if v, ok := k.Attr("xjustizVersion"); ok && m.Version == "" {
				m.Version = v
			}
		case "fachdaten":
			if m.Type == TypeReceipt {
				r.receipt(k)
			}
		}
	}
	r.documents(e)
	r.checkVersion()
	if m.Type == TypeReceipt {
		r.checkReceipt()
	}
	if set := schemaSets[m.Version]; set != nil {
		if problems, checked := validateSchema(set, e); checked {
			m.SchemaChecked = set.version
			m.Problems = append(m.Problems, problems...)
		}
	}
}

// header2 and header3 are the Nachrichtenkopf elements of each generation this
// package reads; others are flagged, not refused.
var header2 = map[string]bool{
	"aktenzeichen.absender": true, "aktenzeichen.empfaenger": true, "erstellungszeitpunkt": true,
	"eigene_Nachrichten_ID": true, "fremde_Nachrichten_ID": true, "sendungsprioritaet": true,
	"nachrichtennummer": true, "nachrichtenanzahl": true, "herstellerinformation": true,
}

var header3 = map[string]bool{
	"aktenzeichen.absender": true, "aktenzeichen.empfaenger": true, "erstellungszeitpunkt": true,
	"auswahl_absender": true, "auswahl_empfaenger": true, "eigeneNachrichtenID": true,
	"fremdeNachrichtenID": true, "nachrichtenuebergreifenderProzess": true, "sendungsprioritaet": true,
	"nachrichtennummer": true, "nachrichtenanzahl": true, "herstellerinformation": true,
	"absender": true, "empfaenger": true, "ereignis": true, "vertraulichkeit": true,
	"auswahl_vertraulichkeit": true, "routingInformationAusSafeverzeichnis.empfaenger": true,
}

// flatOnly are the Nachrichtenkopf elements of 3.0 to 3.5 that 3.6 moved under
// absender/empfaenger.
var flatOnly = map[string]bool{
	"aktenzeichen.absender": true, "aktenzeichen.empfaenger": true, "auswahl_absender": true,
	"auswahl_empfaenger": true, "eigeneNachrichtenID": true, "fremdeNachrichtenID": true,
	"routingInformationAusSafeverzeichnis.empfaenger": true, "vertraulichkeit": true,
}

func (r *reader) header(e *xmldsig.Element) {
	m, h := r.msg, &r.msg.Header
	if v, ok := e.Attr("xjustizVersion"); ok {
		m.Version = v
	}
	gen2, gen3, flat := false, false, false
	for _, k := range e.Elements() {
		name := k.Local
		flat = flat || flatOnly[name]
		switch {
		case name == "aktenzeichen.absender":
			setOnce(&h.SenderFileNumber, strings.TrimSpace(k.Text()))
		case name == "aktenzeichen.empfaenger":
			setOnce(&h.RecipientFileNumber, strings.TrimSpace(k.Text()))
		case name == "erstellungszeitpunkt":
			h.Created = strings.TrimSpace(k.Text())
		case name == "eigene_Nachrichten_ID" || name == "eigeneNachrichtenID":
			h.OwnMessageID = strings.TrimSpace(k.Text())
		case name == "fremde_Nachrichten_ID" || name == "fremdeNachrichtenID":
			h.ForeignMessageID = strings.TrimSpace(k.Text())
		case name == "absender":
			r.partnerSide(k, &h.Sender, &h.SenderFileNumber, &h.OwnMessageID)
		case name == "empfaenger":
			r.partnerSide(k, &h.Recipient, &h.RecipientFileNumber, &h.ForeignMessageID)
		case name == "auswahl_absender":
			h.Sender = party3(k, "absender.")
		case name == "auswahl_empfaenger":
			h.Recipient = party3(k, "empfaenger.")
		case strings.HasPrefix(name, "absender_"):
			h.Sender, gen2 = party2(k, "absender_"), true
			continue
		case strings.HasPrefix(name, "empfaenger_"):
			h.Recipient, gen2 = party2(k, "empfaenger_"), true
			continue
		}
		switch {
		case header2[name] && !header3[name]:
			gen2 = true
		case header3[name] && !header2[name]:
			gen3 = true
		case !header2[name] && !header3[name]:
			r.problem("nachrichtenkopf: unknown element %s", name)
		}
	}
	if m.Layout == LayoutPartner && flat {
		r.problem("nachrichtenkopf mixes the 3.5 and the 3.6/3.7 layout (auswahl_absender, aktenzeichen.absender, ... beside absender/empfaenger)")
	}
	switch {
	case gen2 && gen3:
		r.problem("nachrichtenkopf mixes XJustiz 2 and 3 element names")
	case gen2:
		m.Generation = Generation2
	case gen3:
		m.Generation = Generation3
	}
	r.checkHeader()
}

// partnerSide reads a 3.6/3.7 absender or empfaenger: the party from informationen,
// the Aktenzeichen (the sender's plain, the recipient's as aktenzeichen.freitext;
// aktenzeichen.neu and .unbekannt leave it empty) and the side's message id.
func (r *reader) partnerSide(e *xmldsig.Element, party *Party, fileNumber, id *string) {
	r.msg.Layout = LayoutPartner
	for _, k := range e.Elements() {
		switch k.Local {
		case "informationen":
			if c := k.Child(Namespace, "auswahl_kommunikationspartner"); c != nil {
				*party = party3(c, "")
			}
		case "aktenzeichen":
			setOnce(fileNumber, strings.TrimSpace(k.Text()))
		case "auswahl_aktenzeichen":
			if c := k.Child(Namespace, "aktenzeichen.freitext"); c != nil {
				setOnce(fileNumber, strings.TrimSpace(c.Text()))
			}
		case "eigeneNachrichtenID", "fremdeNachrichtenID":
			*id = strings.TrimSpace(k.Text())
		}
	}
}

func setOnce(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// party2 reads a 2.x absender_Gericht / absender_Sonstige element.
func party2(e *xmldsig.Element, prefix string) Party {
	p := Party{Kind: strings.ToLower(strings.TrimPrefix(e.Local, prefix))}
	codedParty(&p, e)
	return p
}

// party3 reads the one choice of a 3.x auswahl_absender / auswahl_empfaenger.
func party3(e *xmldsig.Element, prefix string) Party {
	kids := e.Elements()
	if len(kids) == 0 {
		return Party{}
	}
	k := kids[0]
	p := Party{Kind: strings.TrimPrefix(k.Local, prefix)}
	codedParty(&p, k)
	return p
}

func codedParty(p *Party, e *xmldsig.Element) {
	if c := e.Child("", "code"); c != nil {
		p.Code = strings.TrimSpace(c.Text())
		p.ListVersion, _ = e.Attr("listVersionID")
		return
	}
	p.Name = strings.TrimSpace(e.Text())
}

func (r *reader) checkHeader() {
	h := &r.msg.Header
	if h.Created == "" {
		r.problem("nachrichtenkopf: no erstellungszeitpunkt")
	} else if t, floating, err := parseDateTime(h.Created); err != nil {
		r.problem("nachrichtenkopf: erstellungszeitpunkt %q is not an xs:dateTime", h.Created)
	} else {
		h.CreatedTime, h.Floating = t, floating
	}
	if h.OwnMessageID == "" {
		r.problem("nachrichtenkopf: no eigene Nachrichten-ID")
	}
	if h.Sender.Kind == "" {
		r.problem("nachrichtenkopf: no absender")
	}
	if h.Recipient.Kind == "" {
		r.problem("nachrichtenkopf: no empfaenger")
	}
}

// parseDateTime reads an xs:dateTime with or without zone.
func parseDateTime(s string) (time.Time, bool, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, false, nil
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	return t, true, err
}

// checkVersion compares the generation of the element names with the declared version
// and the schema file name (..._2_4.xsd, ..._3_0.xsd).
func (r *reader) checkVersion() {
	m := r.msg
	major, _, _ := strings.Cut(m.Version, ".")
	declared := generationOf(major)
	if m.Version == "" {
		r.problem("no xjustizVersion declared")
	} else if declared == GenerationUnknown {
		r.problem("xjustizVersion %q is not a version this gateway reads (2.x, 3.x)", m.Version)
	}
	if m.Generation != GenerationUnknown && declared != GenerationUnknown && m.Generation != declared {
		r.problem("xjustizVersion %s declared, but the nachrichtenkopf uses XJustiz %d element names", m.Version, m.Generation)
	}
	if g := schemaGeneration(m.Schema); g != GenerationUnknown && m.Generation != GenerationUnknown && g != m.Generation {
		r.problem("schema %s is XJustiz %d, but the nachrichtenkopf uses XJustiz %d element names", m.Schema, g, m.Generation)
	}
}

var schemaVersion = regexp.MustCompile(`_([0-9]+)_[0-9]+\.xsd$`)

func schemaGeneration(schema string) Generation {
	g := schemaVersion.FindStringSubmatch(schema)
	if g == nil {
		return GenerationUnknown
	}
	return generationOf(g[1])
}

func generationOf(major string) Generation {
	switch major {
	case "2":
		return Generation2
	case "3":
		return Generation3
	}
	return GenerationUnknown
}

// documents walks the whole tree for dokument elements: 2.x puts them under the root,
// 3.x under schriftgutobjekte (and akte/teilakte).
func (r *reader) documents(root *xmldsig.Element) {
	var walk func(e *xmldsig.Element)
	walk = func(e *xmldsig.Element) {
		for _, k := range e.Elements() {
			if k.Space != Namespace {
				continue
			}
			if k.Local == "dokument" {
				if len(r.msg.Documents) >= r.lim.MaxDocuments {
					r.problem("more than %d documents: the rest are not read", r.lim.MaxDocuments)
					return
				}
				r.msg.Documents = append(r.msg.Documents, document(k))
				continue
			}
			if k.Local != "nachrichtenkopf" && k.Local != "grunddaten" {
				walk(k)
			}
		}
	}
	walk(root)
}

func document(e *xmldsig.Element) Document {
	var d Document
	var walk func(e *xmldsig.Element)
	walk = func(e *xmldsig.Element) {
		for _, k := range e.Elements() {
			switch k.Local {
			case "id":
				if k.Parent != nil && k.Parent.Local == "identifikation" && d.ID == "" {
					d.ID = strings.TrimSpace(k.Text())
				}
			case "dateiname":
				d.FileNames = append(d.FileNames, strings.TrimSpace(k.Text()))
			case "ruecksendung_EEB_erforderlich", "ruecksendungEEB.erforderlich":
				v := strings.TrimSpace(k.Text())
				d.EEBRequired = d.EEBRequired || v == "true" || v == "1"
			default:
				walk(k)
			}
		}
	}
	walk(e)
	return d
}

func (r *reader) receipt(e *xmldsig.Element) {
	rc := &Receipt{}
	r.msg.Receipt = rc
	for _, k := range e.Elements() {
		switch k.Local {
		case "empfangsbestaetigung":
			v := strings.TrimSpace(k.Text())
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				r.problem("fachdaten: empfangsbestaetigung %q is not an xs:date", v)
			}
			rc.Received = t
		case "stoerungsmeldung":
			rc.Refusal = &Refusal{
				Code:   strings.TrimSpace(k.Path(Namespace, "stoerungsID").Child("", "code").Text()),
				Reason: strings.TrimSpace(k.Child(Namespace, "stoerungsGrund").Text()),
			}
		case "zustellungsempfaenger.abweichend":
			rc.DeviatingRecipient = strings.TrimSpace(k.Text()) == "true"
		default:
			r.problem("fachdaten: unknown element %s", k.Local)
		}
	}
}

func (r *reader) checkReceipt() {
	m := r.msg
	if m.Header.ForeignMessageID == "" {
		r.problem("eEB without fremde Nachrichten-ID: it names no request (SCH-EEB-0001)")
	}
	rc := m.Receipt
	switch {
	case rc == nil:
		r.problem("eEB without fachdaten")
	case rc.Refusal != nil && !rc.Received.IsZero():
		r.problem("eEB both acknowledges and refuses")
	case rc.Refusal == nil && rc.Received.IsZero():
		r.problem("eEB neither acknowledges nor refuses")
	case rc.Refusal != nil && rc.Refusal.Code != RefusalNotParty && rc.Refusal.Code != RefusalUnclear && rc.Refusal.Code != RefusalSignatures:
		r.problem("eEB refusal code %q is not in the Codeliste eeb.stoerungs-id", rc.Refusal.Code)
	}
}
