// Package egvprecord records an EGVP message (package egvp) as the gateway's
// MessageReceived: the egvp section, the From address and the parts' kinds. Both EGVP
// transports, the OSCI channel and the EGVP Enterprise connector, call it, so that a
// message reads the same whichever way it came; package egvp itself stays free of
// the gateway.
package egvprecord

import (
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
)

// Fields maps m to the MessageReceived's egvp section (docs/egvp.md). Both EGVP
// transports, the OSCI channel and the EGVP Enterprise connector, record it so.
func Fields(m *egvp.Message) *gateway.EGVPFields {
	f := &gateway.EGVPFields{
		SenderSafeID: m.SenderSafeID, RecipientSafeID: m.RecipientSafeID,
		SenderFileNumber: m.SenderFileNumber, RecipientFileNumber: m.RecipientFileNumber,
		MessageType: m.MessageType, RecipientCode: m.RecipientCode,
		EEBRequested: m.EEB.Requested, EEBDocuments: m.EEB.Documents,
		Origin: string(m.Origin.Level), OriginMailbox: m.Origin.Mailbox, OriginRoute: m.Origin.Route,
		OriginReason: m.Origin.Reason, TransportCertificate: m.Origin.CertificateSHA256,
	}
	if m.Card != nil {
		f.SenderRole = m.Card.Role
	}
	if x := m.XJustiz; x != nil {
		f.XJustizVersion, f.XJustizMessageID, f.XJustizForeignMessageID = x.Version, x.Header.OwnMessageID, x.Header.ForeignMessageID
	}
	return f
}

// Apply records m in msg: its egvp section, the kind of its detached signatures among
// msg's parts (MarkDetachedSignatures), its subject (the Betreff) when it has one, and
// its problems, each prefixed "egvp: ". The channel lists msg.Parts first.
func Apply(msg *gateway.MessageReceived, m *egvp.Message) {
	msg.EGVP = Fields(m)
	MarkDetachedSignatures(msg.Parts, m)
	if m.Subject != "" {
		msg.Subject = m.Subject
	}
	for _, p := range m.Problems {
		msg.Problems = append(msg.Problems, "egvp: "+p)
	}
}

// PartKindSignature is the part kind of a detached CMS signature, as
// mail/mailmsg names it; the verification projection verifies such a part
// against the part named like it without its extension.
const PartKindSignature = "signature"

// MarkDetachedSignatures gives every detached signature that egvp paired
// with the file it signs ("a.pdf.p7s", ".pkcs7", ".sig" beside "a.pdf") the
// kind "signature", so that the verification projection checks it against
// that file, whatever its extension. An unpaired one stays an attachment: a
// ".sig" without its file may be anything.
func MarkDetachedSignatures(parts []gateway.Part, m *egvp.Message) {
	paired := map[string]bool{}
	for _, p := range m.Parts {
		if p.SignatureOf != "" {
			paired[p.Name] = true
		}
	}
	for i := range parts {
		if parts[i].Kind == "attachment" && paired[parts[i].Filename] {
			parts[i].Kind = PartKindSignature
		}
	}
}
