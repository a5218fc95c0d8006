package demailtest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// The confirmation message types of clause 3.1.12.
const (
	ConfirmationOfDispatch = "confirmation of dispatch" // Versandbestätigung
	ConfirmationOfReceipt  = "confirmation of receipt"  // Eingangsbestätigung
	ConfirmationOfRetrieve = "confirmation of retrieve" // Abholbestätigung
)

// subjectPrefix is clause 3.5.1's subject of each confirmation.
var subjectPrefix = map[string]string{
	ConfirmationOfDispatch: "*Versandbestätigung*",
	ConfirmationOfReceipt:  "*Eingangsbestätigung*",
	ConfirmationOfRetrieve: "*Abholbestätigung*",
}

// systemSender is the provider's system address that issues each kind.
var systemSender = map[string]string{
	ConfirmationOfDispatch: "versandbestaetigung@" + ProviderName,
	ConfirmationOfReceipt:  "eingangsbestaetigung@" + ProviderName,
	ConfirmationOfRetrieve: "abholbestaetigung@" + ProviderName,
}

// Confirmation is a provider's confirmation (clause 3.5.1) about one
// message, Of, as the provider stamped it.
type Confirmation struct {
	Type string // one of the Confirmation* types
	Of   []byte // the confirmed message, with its X-de-mail-integrity
	// To is the confirmation's recipient: the confirmed message's sender.
	To string
	// ID is the confirmation's own X-de-mail-message-id (and Message-ID).
	ID           string
	Time         time.Time // when the provider issued it
	DeliveryTime time.Time // retrieval only: when the message reached the mailbox
}

// Fields are the confirmation's header fields as table 1 requires them of
// a confirmation (class B): the provider's system address as sender, the
// subject of clause 3.5.1, and the confirmed message's private id, which
// the provider copies (clause 3.1.17).
func (c Confirmation) Fields() ([][2]string, error) {
	prefix, ok := subjectPrefix[c.Type]
	if !ok {
		return nil, fmt.Errorf("demailtest: %q is not a confirmation type", c.Type)
	}
	of := ParseFields(c.Of)
	from := systemSender[c.Type]
	fields := [][2]string{
		{"From", from},
		{"To", c.To},
		{"Date", c.Time.Format(time.RFC1123Z)},
		{"Message-ID", "<" + c.ID + ">"},
		{"Subject", prefix + " " + of.Get("Subject")},
		{"X-de-mail-sender", from},
		{"X-de-mail-chosen-recipient", "to=" + c.To},
		{"X-de-mail-originator-provider", ProviderName},
		{"X-de-mail-message-type", c.Type},
		{"X-de-mail-version", "1.8"},
	}
	if id := of.Get("X-de-mail-private-id"); id != "" {
		fields = append(fields, [2]string{"X-de-mail-private-id", id})
	}
	return append(fields,
		[2]string{"X-de-mail-message-id", c.ID},
		[2]string{"X-de-mail-actual-recipient", "to=" + c.To},
		[2]string{"MIME-Version", "1.0"},
		[2]string{"Content-Type", `multipart/mixed; boundary="b1"`}), nil
}

// XML is the Acknowledge-Message of clauses 3.5.1 and 3.5.3 about Of,
// without its signature: the metadata of the confirmed message (each
// field's unfolded value and its line as received), its
// X-de-mail-integrity as the Hash, the time, and the issuing address.
func (c Confirmation) XML() (string, error) {
	if _, ok := subjectPrefix[c.Type]; !ok {
		return "", fmt.Errorf("demailtest: %q is not a confirmation type", c.Type)
	}
	of := ParseFields(c.Of)
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Acknowledge-Message xmlns="urn:de-mail">` + "\n")
	element(&b, "Sender", systemSender[c.Type])
	b.WriteString("<Metadata>\n")
	for _, f := range of {
		if !metadatum(f.Name) {
			continue
		}
		b.WriteString("<Metadate>")
		element(&b, "Name", f.Name)
		element(&b, "Value", f.Value())
		element(&b, "OriginalHeader", f.Line)
		b.WriteString("</Metadate>\n")
	}
	b.WriteString("</Metadata>\n")
	element(&b, "Subject", subjectPrefix[c.Type]+" "+of.Get("Subject"))
	element(&b, "Text", "Hiermit wird die Nachricht "+of.Get("X-de-mail-message-id")+" bestätigt.")
	element(&b, "Hash", of.Get("X-de-mail-integrity"))
	if c.Type == ConfirmationOfRetrieve {
		element(&b, "DeliveryTime", c.DeliveryTime.Format(time.RFC3339))
	}
	element(&b, "Time", c.Time.Format(time.RFC3339))
	b.WriteString("</Acknowledge-Message>\n")
	return b.String(), nil
}

// metadatum says whether a field of the confirmed message is one of its
// metadata (table 1) that table 24 repeats: everything the integrity
// protection covers and the other X-de-mail fields, but not the
// protection itself, which is the Hash.
func metadatum(name string) bool {
	switch strings.ToLower(name) {
	case "x-de-mail-integrity", "x-de-mail-signature-certificate":
		return false
	case "to", "cc":
		return true
	}
	for _, n := range TRHeaderOrder {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return strings.HasPrefix(strings.ToLower(name), "x-de-mail-")
}

func element(b *strings.Builder, name, text string) {
	b.WriteString("<" + name + ">")
	xml.EscapeText(b, []byte(text))
	b.WriteString("</" + name + ">\n")
}

// Body is the confirmation's multipart/mixed body (boundary b1, as Fields
// declares): a PDF rendering and the XML, base64 folded at 76 columns.
func Body(xmlData string) string {
	return "--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
		"--b1\r\nContent-Type: application/xml; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		fold76(base64.StdEncoding.EncodeToString([]byte(xmlData))) + "--b1--\r\n"
}

func fold76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// dsNS is the XML-DSig namespace.
const dsNS = "http://www.w3.org/2000/09/xmldsig#"

// SignXML gives an XML document an enveloped RSA-SHA256 signature over the
// whole document (table 23), with exclusive canonicalisation, made with
// key and carrying the certificate der in ds:KeyInfo. The signature goes
// last into the document element.
func SignXML(doc string, key crypto.Signer, der []byte) (string, error) {
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return "", fmt.Errorf("demailtest: the XML signature needs an RSA key, not %T", key.Public())
	}
	end := strings.LastIndex(doc, "</")
	if end < 0 {
		return "", errors.New("demailtest: no document element to sign")
	}
	sig := `<ds:Signature xmlns:ds="` + dsNS + `"><ds:SignedInfo>` +
		`<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
		`<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
		`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
		`<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>DIGEST</ds:DigestValue></ds:Reference>` +
		`</ds:SignedInfo><ds:SignatureValue>SIGVALUE</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
	doc = doc[:end] + sig + doc[end:]
	c := xmldsig.C14N{Exclusive: true}
	parsed, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		return "", fmt.Errorf("demailtest: parse the document to sign: %w", err)
	}
	digest := sha256.Sum256(c.CanonicalizeDocument(parsed, parsed.Root.Child(dsNS, "Signature")))
	doc = strings.Replace(doc, "DIGEST", base64.StdEncoding.EncodeToString(digest[:]), 1)
	if parsed, err = xmldsig.Parse([]byte(doc), xmldsig.Limits{}); err != nil {
		return "", fmt.Errorf("demailtest: parse the document to sign: %w", err)
	}
	signed := sha256.Sum256(c.Canonicalize(parsed.Root.Child(dsNS, "Signature").Child(dsNS, "SignedInfo"), nil))
	value, err := key.Sign(rand.Reader, signed[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("demailtest: sign the XML: %w", err)
	}
	return strings.Replace(doc, "SIGVALUE", base64.StdEncoding.EncodeToString(value), 1), nil
}

// Field is one header field of a message as received.
type Field struct {
	Name string
	// Line is the whole field as received, folding kept, without its
	// final CRLF.
	Line string
}

// Value is the field's body unfolded and trimmed.
func (f Field) Value() string {
	_, v, _ := strings.Cut(f.Line, ":")
	return strings.TrimSpace(strings.NewReplacer("\r\n", "", "\n", "").Replace(v))
}

// Fields is a header section in order.
type Fields []Field

// Get is the topmost field's value, empty when absent.
func (fs Fields) Get(name string) string {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return f.Value()
		}
	}
	return ""
}

// ParseFields splits msg's header section (up to the first empty line)
// into fields; continuation lines stay with their field.
func ParseFields(msg []byte) Fields {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var out Fields
	for _, line := range strings.Split(string(head), "\r\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(out) > 0 {
			out[len(out)-1].Line += "\r\n" + line
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out = append(out, Field{Name: strings.TrimSpace(name), Line: line})
	}
	return out
}
