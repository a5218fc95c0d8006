package verification

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/gateway"
)

// Metadata keys of the OSCI channel's receipts that the Prüfprotokoll shows
// (channels/oscichannel's MetaOriginatorSignature and MetaContentSignatures;
// a test pins them to those). They are read here rather than imported so
// that verification does not depend on a channel.
const (
	metaOriginatorSignature = "osci.originatorSignatureCertificate"
	metaContentSignatures   = "osci.contentSignatures"
)

// mailboxBound are the VHN kinds that are the sending mailbox's own
// certificate: egvp.Origin grants them VHN only when the certificate's UID
// is the Visitenkarte's SAFE-ID, so for them the SAFE-ID is proven.
var mailboxBound = map[string]bool{"bebpo": true, "bea": true, "ben": true, "ebo": true}

// transmission is the Prüfprotokoll's view of how m came: for EGVP the
// proof of origin the channel decided (egvp.Origin), the transport
// certificate it carried, the OSCI content signatures' results and the
// XJustiz facts. Nil for the other channels.
func transmission(m *gateway.MessageReceived) *report.Transmission {
	if m.Channel != gateway.ChannelEGVP {
		return nil
	}
	t := &report.Transmission{Channel: string(m.Channel), Origin: report.OriginNone,
		OriginReason: "no EGVP structure: the proof of origin was not decided"}
	if s := m.Metadata[metaContentSignatures]; s != "" {
		t.ContentSignatures = strings.Split(s, "; ")
	}
	t.Problems = append([]string(nil), m.Problems...)
	e := m.EGVP
	if e == nil {
		return t
	}
	t.Origin, t.OriginReason, t.Route, t.Mailbox = e.Origin, e.OriginReason, e.OriginRoute, e.OriginMailbox
	if t.Origin == "" {
		t.Origin = report.OriginNone
	}
	t.SenderSafeID, t.SenderRoleClaimed = e.SenderSafeID, e.SenderRole
	if t.Origin == report.OriginVHN {
		t.SecureRoute = e.SecureRoute()
		t.SenderRoleProven = e.OriginMailbox
		t.SenderSafeIDProven = mailboxBound[e.OriginMailbox] && e.SenderSafeID != ""
	}
	t.TransportCertificate = transportCertificate(m, e.TransportCertificate)
	t.XJustiz = xjustizFacts(e)
	return t
}

// transportCertificate describes the transport signature's certificate from
// the DER the channel kept, when it is the one whose SHA-256 the proof of
// origin names; with only the fingerprint, just that.
func transportCertificate(m *gateway.MessageReceived, sha string) *report.Certificate {
	if sha == "" {
		return nil
	}
	out := &report.Certificate{SHA256: sha}
	der, err := base64.StdEncoding.DecodeString(m.Metadata[metaOriginatorSignature])
	if err != nil || len(der) == 0 {
		return out
	}
	if sum := sha256.Sum256(der); hex.EncodeToString(sum[:]) != sha {
		return out
	}
	c, err := cert.Parse(der)
	if err != nil {
		return out
	}
	out.Subject, out.Issuer = c.Subject.String(), c.Issuer.String()
	if c.SerialNumber != nil {
		out.Serial = c.SerialNumber.String()
	}
	out.NotBefore, out.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
	return out
}

func xjustizFacts(e *gateway.EGVPFields) *report.XJustizFacts {
	if e.MessageType == "" && e.XJustizVersion == "" && e.SenderFileNumber == "" && e.RecipientFileNumber == "" {
		return nil
	}
	return &report.XJustizFacts{MessageType: e.MessageType, Version: e.XJustizVersion, MessageID: e.XJustizMessageID,
		SenderFileNumber: e.SenderFileNumber, RecipientFileNumber: e.RecipientFileNumber, RecipientCode: e.RecipientCode,
		EEBRequested: e.EEBRequested, EEBDocuments: e.EEBDocuments}
}
