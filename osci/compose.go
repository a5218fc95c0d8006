package osci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
)

// Message is an OSCI message to compose: the values of its header blocks and body.
// ComposeEnvelope writes it in the element order of the type's schema, with the Ids
// the reference library uses (controlblock, body, the operation's name in lower case),
// so that either side's signatures name the same elements.
type Message struct {
	Type MessageType
	// Control: the ControlBlock's values; HasResponse, HasChallenge and HasSequence
	// say which are written.
	Control ControlBlock
	// Languages for DesiredLanguages (requests); none writes "de".
	Languages          []string
	QualityOfTimestamp []QualityOfTimestamp
	// Operation holds the request's or response's values (Element is ignored).
	Operation Operation
	// Certificates by block; each entry's Role names its element, ID its Id
	// (CertificateID makes the library's).
	IntermediaryCertificates    []CertificateEntry
	NonIntermediaryCertificates []CertificateEntry
	// Signed writes an empty ClientSignature or SupplierSignature block, which
	// SignEnvelope fills.
	Signed bool
	// ContentPackage is the content of the osci:ContentPackage (containers,
	// xenc:EncryptedData), written as is; nil writes none.
	ContentPackage []byte
	// Extra header blocks, written as is after the others.
	Extra [][]byte
}

// CertificateID is the Id the reference library gives a certificate entry: the
// party (originator, addressee, intermed, reader1, author1, ...), the use (cipher or
// signature) and the certificate's SHA-256 in hex.
func CertificateID(party, use string, c *cert.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return party + "_" + use + "_" + hex.EncodeToString(sum[:])
}

// envelopeOpen declares every namespace once, on the envelope; inclusive C14N, which
// OSCI signatures use, renders in-scope declarations on each signed element whatever
// element they were written on. The reference library tells message types apart by
// the envelope's xsi:schemaLocation alone (an envelope without one is read as a SOAP
// fault), so it names the type's schema exactly as the library writes it.
func envelopeOpen(t MessageType) string {
	name := "MessageEncrypted"
	if t != Encrypted {
		name = strings.ToUpper(string(t[:1])) + string(t[1:])
	}
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\r\n\r\n" +
		`<soap:Envelope xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"` +
		` xsi:schemaLocation="http://schemas.xmlsoap.org/soap/envelope/ soap` + name + `.xsd http://www.w3.org/2000/09/xmldsig# oscisig.xsd http://www.w3.org/2001/04/xmlenc# oscienc.xsd">`
}

const blockAttrs = ` soap:actor="` + ActorNext + `" soap:mustUnderstand="1"`

// ComposeEnvelope writes the SOAP envelope of m.
func ComposeEnvelope(m *Message) ([]byte, error) {
	ti, ok := messageTypeInfo(m.Type)
	if !ok {
		return nil, fmt.Errorf("osci: composing: unknown message type %q", m.Type)
	}
	if ti.content && !ti.optional && m.ContentPackage == nil {
		return nil, fmt.Errorf("osci: composing %s: a content package is required", m.Type)
	}
	var b bytes.Buffer
	b.WriteString(envelopeOpen(m.Type))
	b.WriteString(`<soap:Header>`)
	writeControlBlock(&b, &m.Control)
	if m.Signed {
		name := "ClientSignature"
		if ti.response {
			name = "SupplierSignature"
		}
		fmt.Fprintf(&b, `<osci:%s Id="%s"%s></osci:%s>`, name, strings.ToLower(name), blockAttrs, name)
	}
	if !ti.response {
		langs := m.Languages
		if len(langs) == 0 {
			langs = []string{"de"}
		}
		b.WriteString(`<osci:DesiredLanguages Id="desiredlanguages" LanguagesList="`)
		escapeAttr(&b, strings.Join(langs, " "))
		b.WriteString(`"` + blockAttrs + `></osci:DesiredLanguages>`)
	}
	for _, q := range m.QualityOfTimestamp {
		fmt.Fprintf(&b, `<osci:QualityOfTimestamp Id="qualityoftimestamp_%s" Quality="%s" Service="%s"%s></osci:QualityOfTimestamp>`, q.Service, q.Quality, q.Service, blockAttrs)
	}
	if !ti.inBody {
		if err := writeOperation(&b, m.Type, &m.Operation, true); err != nil {
			return nil, err
		}
	}
	if err := writeCertificates(&b, "IntermediaryCertificates", m.IntermediaryCertificates); err != nil {
		return nil, err
	}
	if err := writeCertificates(&b, "NonIntermediaryCertificates", m.NonIntermediaryCertificates); err != nil {
		return nil, err
	}
	for _, x := range m.Extra {
		b.Write(x)
	}
	b.WriteString(`</soap:Header><soap:Body Id="body">`)
	if ti.inBody {
		if err := writeOperation(&b, m.Type, &m.Operation, false); err != nil {
			return nil, err
		}
	}
	if m.ContentPackage != nil {
		b.WriteString(`<osci:ContentPackage>`)
		b.Write(m.ContentPackage)
		b.WriteString(`</osci:ContentPackage>`)
	}
	b.WriteString(`</soap:Body></soap:Envelope>`)
	return b.Bytes(), nil
}

func writeControlBlock(b *bytes.Buffer, c *ControlBlock) {
	b.WriteString(`<osci:ControlBlock`)
	if c.ConversationID != "" {
		b.WriteString(` ConversationId="`)
		escapeAttr(b, c.ConversationID)
		b.WriteString(`"`)
	}
	b.WriteString(` Id="controlblock"`)
	if c.HasSequence {
		b.WriteString(` SequenceNumber="` + strconv.FormatInt(c.SequenceNumber, 10) + `"`)
	}
	b.WriteString(blockAttrs + `>`)
	if c.HasResponse {
		writeText(b, "osci:Response", c.Response)
	}
	if c.HasChallenge {
		writeText(b, "osci:Challenge", c.Challenge)
	}
	b.WriteString(`</osci:ControlBlock>`)
}

func writeOperation(b *bytes.Buffer, t MessageType, op *Operation, header bool) error {
	name := string(t)
	b.WriteString(`<osci:` + name)
	if header {
		b.WriteString(` Id="` + strings.ToLower(name) + `"` + blockAttrs)
	}
	b.WriteString(`>`)
	if len(op.Feedback) > 0 {
		writeFeedback(b, op.Feedback)
	}
	writeOperationChildren(b, t, op)
	for _, pc := range op.ProcessCards {
		if err := writeProcessCardBundle(b, pc); err != nil {
			return err
		}
	}
	b.WriteString(`</osci:` + name + `>`)
	return nil
}

// writeOperationChildren writes the children other than feedback and process cards in
// the order of the schemas.
func writeOperationChildren(b *bytes.Buffer, t MessageType, op *Operation) {
	switch t {
	case FetchDelivery, FetchProcessCard:
		writeSelection(b, op.Selection)
		if op.Quantity > 0 {
			b.WriteString(`<osci:Quantity Limit="` + strconv.FormatInt(op.Quantity, 10) + `"></osci:Quantity>`)
		}
	case ResponseToFetchDelivery, ResponseToFetchProcessCard:
		echo := "fetchDelivery"
		if t == ResponseToFetchProcessCard {
			echo = "fetchProcessCard"
		}
		b.WriteString(`<osci:` + echo + `>`)
		writeSelection(b, op.Selection)
		b.WriteString(`</osci:` + echo + `>`)
	case ForwardDelivery, MediateDelivery:
		b.WriteString(`<osci:ContentReceiver URI="`)
		escapeAttr(b, op.ContentReceiver)
		b.WriteString(`"></osci:ContentReceiver>`)
	case ProcessDelivery:
		if op.MessageIDResponse {
			b.WriteString(`<osci:MessageIdResponse></osci:MessageIdResponse>`)
		}
	}
	if op.MessageID != "" {
		writeText(b, "osci:MessageId", op.MessageID)
	}
	if op.Subject != "" {
		writeText(b, "osci:Subject", op.Subject)
	}
}

func writeSelection(b *bytes.Buffer, s *Selection) {
	if s == nil {
		return
	}
	b.WriteString(`<osci:SelectionRule>`)
	for _, id := range s.MessageIDs {
		writeText(b, "osci:MessageId", id)
	}
	for _, d := range [][2]string{{"ReceptionOfDelivery", s.ReceptionOfDelivery}, {"RecentModification", s.RecentModification}} {
		name, v := d[0], d[1]
		if v == "" {
			continue
		}
		b.WriteString(`<osci:` + name)
		if s.NoReception != "" {
			b.WriteString(` NoReception="` + s.NoReception + `"`)
		}
		if s.Role != "" {
			b.WriteString(` Role="` + s.Role + `"`)
		}
		b.WriteString(`>`)
		xml.EscapeText(b, []byte(v))
		b.WriteString(`</osci:` + name + `>`)
	}
	b.WriteString(`</osci:SelectionRule>`)
}

func writeFeedback(b *bytes.Buffer, entries []FeedbackEntry) {
	b.WriteString(`<osci:Feedback>`)
	for _, e := range entries {
		b.WriteString(`<osci:Entry`)
		if e.Lang != "" {
			b.WriteString(` xml:lang="`)
			escapeAttr(b, e.Lang)
			b.WriteString(`"`)
		}
		b.WriteString(`>`)
		writeText(b, "osci:Code", e.Code.String())
		writeText(b, "osci:Text", e.Text)
		b.WriteString(`</osci:Entry>`)
	}
	b.WriteString(`</osci:Feedback>`)
}

// xsdTime is the form of xsd:dateTime OSCI writes: seconds, with the zone.
const xsdTime = "2006-01-02T15:04:05Z07:00"

func writeProcessCardBundle(b *bytes.Buffer, pc ProcessCardBundle) error {
	name := pc.Name
	if name == "" {
		name = "ProcessCardBundle"
	}
	if !strings.HasSuffix(name, "ProcessCardBundle") {
		return fmt.Errorf("osci: composing: process card bundle named %q", name)
	}
	b.WriteString(`<osci:` + name + `>`)
	writeText(b, "osci:MessageId", pc.MessageID)
	b.WriteString(`<osci:ProcessCard RecentModification="` + pc.Card.RecentModification.Format(xsdTime) + `">`)
	for _, ts := range []struct {
		name string
		t    *Timestamp
	}{{"Creation", pc.Card.Creation}, {"Forwarding", pc.Card.Forwarding}, {"Reception", pc.Card.Reception}} {
		if ts.t != nil {
			writeTimestamp(b, ts.name, *ts.t)
		}
	}
	if pc.Card.Subject != "" {
		writeText(b, "osci:Subject", pc.Card.Subject)
	}
	b.WriteString(`</osci:ProcessCard><osci:InspectionReport>`)
	for _, in := range pc.Report {
		writeInspection(b, in)
	}
	b.WriteString(`</osci:InspectionReport></osci:` + name + `>`)
	return nil
}

func writeTimestamp(b *bytes.Buffer, name string, t Timestamp) {
	b.WriteString(`<osci:` + name + `>`)
	if t.IsCryptographic() {
		b.WriteString(`<osci:Cryptographic`)
		if t.Algorithm != "" {
			b.WriteString(` Algorithm="`)
			escapeAttr(b, t.Algorithm)
			b.WriteString(`"`)
		}
		b.WriteString(`>` + b64(t.Cryptographic) + `</osci:Cryptographic>`)
	} else {
		writeText(b, "osci:Plain", t.Plain.Format(xsdTime))
	}
	b.WriteString(`</osci:` + name + `>`)
}

func writeInspection(b *bytes.Buffer, in Inspection) {
	b.WriteString(`<osci:Inspection>`)
	writeTimestamp(b, "Timestamp", in.Timestamp)
	writeText(b, "osci:X509SubjectName", in.X509SubjectName)
	writeText(b, "osci:X509IssuerName", in.X509IssuerName)
	serial := "0"
	if in.X509Serial != nil {
		serial = in.X509Serial.String()
	}
	writeText(b, "osci:X509SerialNumber", serial)
	b.WriteString(`<osci:CertType Type="` + in.CertType + `"></osci:CertType>`)
	b.WriteString(`<osci:MathResult Result="` + in.MathResult + `"></osci:MathResult>`)
	b.WriteString(`<osci:OfflineResult Result="` + in.OfflineResult + `"></osci:OfflineResult>`)
	if in.OnlineResult != "" {
		b.WriteString(`<osci:OnlineResult Result="` + in.OnlineResult + `">`)
		if in.OCSP != nil {
			b.WriteString(`<osci:OCSP>` + b64(in.OCSP) + `</osci:OCSP>`)
		}
		if in.CRL != nil {
			writeText(b, "osci:CRL", in.CRL.Format(xsdTime))
		}
		if in.LDAP != nil {
			b.WriteString(`<osci:LDAP>` + b64(in.LDAP) + `</osci:LDAP>`)
		}
		b.WriteString(`</osci:OnlineResult>`)
	}
	b.WriteString(`</osci:Inspection>`)
}

func writeCertificates(b *bytes.Buffer, block string, entries []CertificateEntry) error {
	if len(entries) == 0 {
		return nil
	}
	fmt.Fprintf(b, `<osci:%s Id="%s" soap:actor="%s" soap:mustUnderstand="1">`, block, strings.ToLower(block), ActorNone)
	for _, e := range entries {
		if e.Cert == nil || e.Role == "" || strings.ContainsAny(e.Role, "<>\"& ") {
			return fmt.Errorf("osci: composing %s: entry without certificate or role", block)
		}
		b.WriteString(`<osci:` + e.Role)
		if e.ID != "" {
			b.WriteString(` Id="`)
			escapeAttr(b, e.ID)
			b.WriteString(`"`)
		}
		b.WriteString(`><ds:X509Data><ds:X509Certificate>` + b64(e.Cert.Raw) + `</ds:X509Certificate></ds:X509Data></osci:` + e.Role + `>`)
	}
	fmt.Fprintf(b, `</osci:%s>`, block)
	return nil
}

func writeText(b *bytes.Buffer, name, v string) {
	b.WriteString(`<` + name + `>`)
	xml.EscapeText(b, []byte(v))
	b.WriteString(`</` + name + `>`)
}

func escapeAttr(b *bytes.Buffer, v string) {
	for _, r := range v {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteRune(r)
		}
	}
}
