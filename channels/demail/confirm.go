package demail

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// Limits on a confirmation (PVD IO clause 3.5.1): it is a small
// multipart/mixed of an XML structure and a PDF.
const (
	maxConfirmationParts = 16
	maxConfirmationDepth = 3
	maxConfirmationXML   = 1 << 20
)

// confirmationKinds maps the confirmation message types (clause 3.1.12) to
// what they attest.
var confirmationKinds = map[MessageType]gateway.EvidenceKind{
	TypeConfirmationOfDispatch: gateway.EvidenceDispatched, // Versandbestätigung
	TypeConfirmationOfReceipt:  gateway.EvidenceDelivered,  // Eingangsbestätigung
	TypeConfirmationOfRetrieve: gateway.EvidenceRetrieved,  // Abholbestätigung
}

// ackMessage is the Acknowledge-Message of clause 3.5.3 (namespace
// urn:de-mail), as far as the evidence needs it.
type ackMessage struct {
	XMLName      xml.Name
	Sender       string     `xml:"Sender"`
	Metadata     []metadate `xml:"Metadata>Metadate"`
	Hash         string     `xml:"Hash"`
	Time         string     `xml:"Time"`
	DeliveryTime string     `xml:"DeliveryTime"`
}

type metadate struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// ackNamespace is the target namespace of the clause 3.5.3 schema.
const ackNamespace = "urn:de-mail"

// Confirmation reads msg, a De-Mail message as received whose bytes are
// stored as raw, and, when its X-de-mail-message-type is one of the three
// confirmations (Versand-, Eingangs-, Abholbestätigung), returns the
// delivery evidence it carries, ready for gateway.EvidenceRecorder.Record.
// ok is false for every other message type.
//
// The evidence names the confirmed message by the X-de-mail-private-id
// (clause 3.1.17: copied from the confirmed message) and by the
// X-de-mail-message-id and Message-ID of the confirmed message as the XML
// attachment's Metadata repeats them (clause 3.5.1, table 24); its own id
// is the confirmation's X-de-mail-message-id. The attested time is the XML
// Time element, the provider its X-de-mail-originator-provider.
//
// Verification is the provider's integrity protection of the confirmation
// (clause 3.1.21, checked with Verify against tr at time at). The XML
// signature of the attachment (table 23) is checked with crypto/xmldsig
// and its certificate against the same provider's CA; its outcome is in
// Verification.Detail and, when it does not hold, in Problems. Everything
// doubtful is a problem; nothing is dropped.
func Confirmation(msg []byte, raw blob.Ref, tr *Trust, at time.Time) (ev *gateway.DeliveryEvidenceRecorded, ok bool) {
	ev, _, ok = readConfirmation(msg, raw, tr, at)
	return ev, ok
}

// readConfirmation is Confirmation that also returns the XML's Hash, the
// confirmed message's X-de-mail-integrity as the provider saw it.
func readConfirmation(msg []byte, raw blob.Ref, tr *Trust, at time.Time) (ev *gateway.DeliveryEvidenceRecorded, hash string, ok bool) {
	h := Parse(msg)
	kind, ok := confirmationKinds[h.Type]
	if !ok {
		return nil, "", false
	}
	in := Verify(msg, tr, at)
	ev = &gateway.DeliveryEvidenceRecorded{
		Channel:    gateway.ChannelDeMail,
		Kind:       kind,
		Attester:   gateway.Attester{Role: "provider", Name: h.OriginatorProvider, ID: h.OriginatorProvider},
		EvidenceID: h.MessageID,
		Evidence:   raw,
		MediaType:  "message/rfc822",
		Verification: &gateway.EvidenceVerification{
			Indication: indication(in.Verdict),
			Format:     "X-de-mail-integrity",
			Detail:     string(in.Verdict) + ": " + in.Detail,
		},
		Problems: Problems(h, in),
	}
	if in.Certificate != nil {
		ev.Verification.Signer = in.Certificate.Subject.String()
	}
	if ev.EvidenceID == "" {
		ev.EvidenceID = messageID(msg)
	}
	if h.PrivateID != "" {
		ev.References = append(ev.References, gateway.EvidenceReference{Kind: "privateId", Value: h.PrivateID})
	}
	data, err := confirmationXML(msg)
	if err != nil {
		ev.Problems = append(ev.Problems, problemPrefix+"confirmation: "+err.Error())
		return ev, "", true
	}
	hash = readAck(ev, data)
	outcome, qualification := xmlSignature(data, h.OriginatorProvider, tr, at, ev)
	ev.Verification.Detail += "; XML signature: " + outcome
	ev.Verification.Qualification = qualification
	return ev, hash, true
}

// indication maps an integrity verdict to EN 319 102-1's indications.
func indication(v Verdict) string {
	switch v {
	case ProviderSigned:
		return "TOTAL_PASSED"
	case Broken:
		return "TOTAL_FAILED"
	}
	return "INDETERMINATE"
}

// readAck takes references and the attested time from the
// Acknowledge-Message data, and returns its Hash.
func readAck(ev *gateway.DeliveryEvidenceRecorded, data []byte) (hash string) {
	var ack ackMessage
	if err := xml.Unmarshal(data, &ack); err != nil {
		ev.Problems = append(ev.Problems, problemPrefix+"confirmation XML: "+err.Error())
		return ""
	}
	if ack.XMLName.Space != ackNamespace || ack.XMLName.Local != "Acknowledge-Message" {
		ev.Problems = append(ev.Problems, fmt.Sprintf("%sconfirmation XML: document element {%s}%s, want {%s}Acknowledge-Message",
			problemPrefix, clip([]byte(ack.XMLName.Space), 60), clip([]byte(ack.XMLName.Local), 60), ackNamespace))
		return ""
	}
	for _, want := range []struct{ name, kind string }{{FieldMessageID, "messageId"}, {"message-id", "messageId"}} {
		for _, m := range ack.Metadata {
			if strings.EqualFold(strings.TrimSpace(m.Name), want.name) && strings.TrimSpace(m.Value) != "" {
				ev.References = append(ev.References, gateway.EvidenceReference{Kind: want.kind, Value: strings.TrimSpace(m.Value)})
				break
			}
		}
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(ack.Time))
	if err != nil {
		ev.Problems = append(ev.Problems, problemPrefix+"confirmation XML: Time is not an xs:dateTime with a time zone: "+clip([]byte(ack.Time), 60))
	} else {
		ev.AttestedAt = t.UTC()
	}
	if ack.Sender != "" {
		ev.Attester.Name = strings.TrimSpace(ack.Sender)
	}
	return strings.TrimSpace(ack.Hash)
}

// xmlSignature checks the enveloped XML signature of the Acknowledge-Message
// (table 23) and returns its outcome in words and its qualification. The
// TR (table 23, after TR DM PVD FU) has confirmations signed qualified, so
// a signature that does not verify, or is not a qualified signature or
// seal (QESig, QESeal), is also a problem of ev.
func xmlSignature(data []byte, provider string, tr *Trust, at time.Time, ev *gateway.DeliveryEvidenceRecorded) (outcome, qualification string) {
	outcome, qualification, err := checkXMLSignature(data, provider, tr, at)
	switch {
	case err != nil:
		outcome = "not verified: " + err.Error()
		ev.Problems = append(ev.Problems, problemPrefix+"confirmation XML signature "+outcome)
	case qualification != trust.QESig && qualification != trust.QESeal:
		ev.Problems = append(ev.Problems, problemPrefix+"confirmation XML signature not qualified: "+qualification)
	}
	return outcome, qualification
}

func checkXMLSignature(data []byte, provider string, tr *Trust, at time.Time) (outcome, qualification string, err error) {
	_, sig, err := xmldsig.ParseAndVerify(data, xmldsig.Limits{MaxBytes: maxConfirmationXML, MaxDepth: 32,
		MaxNodes: 20000, MaxAttributes: 32}, xmldsig.Options{})
	if err != nil {
		return "", "", err
	}
	name := strings.ToLower(strings.TrimSuffix(provider, "."))
	pt := tr.provider(name)
	if pt == nil {
		return "", "", fmt.Errorf("signature value holds, but provider %q is not configured", clip([]byte(name), 60))
	}
	res := pt.store.Validate(trust.Input{Leaf: sig.Signer, Intermediates: append(slices.Clone(pt.p.Intermediates), sig.KeyInfoCertificates...),
		CRLs: pt.p.CRLs, Time: at, RevocationOptional: true, RequireKeyUsage: sealKeyUsage})
	if res.Indication != trust.Passed {
		return "", "", fmt.Errorf("signature value holds, but the certificate is not provider %s's: %s %s", name, res.Indication, res.SubIndication)
	}
	qualification, detail := tr.qualification(pt, sig.Signer, sig.KeyInfoCertificates, at)
	return "verified (signed by " + sig.Signer.Subject.String() + "; " + qualification + ": " + detail + ")", qualification, nil
}

// messageID is the RFC 5322 Message-ID of msg, empty when unreadable.
func messageID(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(m.Header.Get("Message-ID"))
}

// errNoXML reports a confirmation without its XML attachment.
var errNoXML = errors.New("no XML attachment (clause 3.5.1 requires one)")

// confirmationXML finds the XML part of the confirmation's multipart/mixed
// body and returns it decoded, within maxConfirmationXML.
func confirmationXML(msg []byte) ([]byte, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("reading the message: %w", err)
	}
	return findXML(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body, 0)
}

func findXML(contentType, encoding string, body io.Reader, depth int) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, errNoXML
	}
	switch {
	case mt == "application/xml" || mt == "text/xml":
		return readPart(encoding, body)
	case strings.HasPrefix(mt, "multipart/") && depth < maxConfirmationDepth && params["boundary"] != "":
		mr := multipart.NewReader(body, params["boundary"])
		for range maxConfirmationParts {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading the MIME structure: %w", err)
			}
			data, err := findXML(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1)
			if !errors.Is(err, errNoXML) {
				return data, err
			}
		}
	}
	return nil, errNoXML
}

// readPart reads a part's body, decoding base64 (multipart.Reader already
// decodes quoted-printable), within the XML cap.
func readPart(encoding string, body io.Reader) ([]byte, error) {
	if strings.EqualFold(strings.TrimSpace(encoding), "base64") {
		body = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
	}
	data, err := io.ReadAll(io.LimitReader(body, maxConfirmationXML+1))
	if err != nil {
		return nil, fmt.Errorf("reading the XML attachment: %w", err)
	}
	if len(data) > maxConfirmationXML {
		return nil, fmt.Errorf("XML attachment over %d bytes", maxConfirmationXML)
	}
	return data, nil
}
