package egvp

import (
	"github.com/poststelle/poststelle/gateway"
)

// Fields maps m to the MessageReceived's egvp section (docs/egvp.md). Both EGVP
// transports, the OSCI channel and the EGVP Enterprise connector, record it so.
func Fields(m *Message) *gateway.EGVPFields {
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

// Apply records m in msg: its egvp section, its subject (the Betreff) when it has one,
// and its problems, each prefixed "egvp: ".
func Apply(msg *gateway.MessageReceived, m *Message) {
	msg.EGVP = Fields(m)
	if m.Subject != "" {
		msg.Subject = m.Subject
	}
	for _, p := range m.Problems {
		msg.Problems = append(msg.Problems, "egvp: "+p)
	}
}
