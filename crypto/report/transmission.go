package report

import (
	"fmt"
	"strings"
)

// Origin levels of a Transmission, as package egvp decides them.
const (
	OriginVHN          = "vhn"
	OriginSenderSigned = "sender-signed"
	OriginNone         = "none"
)

// Transmission is how a message reached the gateway when the route itself
// has legal weight: for EGVP, the proof of origin (vertrauenswürdiger
// Herkunftsnachweis, VHN) of the sending mailbox and the XJustiz facts. The
// Prüfprotokoll shows it as "Herkunftsnachweis / Übermittlungsweg". Every
// value is what the receiving channel established; the report only shows
// it and, by SecureRoute, lets it count for the written form.
type Transmission struct {
	// Channel is the gateway channel, "egvp".
	Channel string `json:"channel"`
	// Origin is OriginVHN, OriginSenderSigned or OriginNone; OriginReason
	// says why.
	Origin       string `json:"origin"`
	OriginReason string `json:"originReason,omitempty"`
	// Route is the receiver's wording of the route ("Sicherer
	// Übermittlungsweg aus einem besonderen Behördenpostfach."), empty
	// without a VHN.
	Route string `json:"route,omitempty"`
	// Mailbox is the kind of mailbox the VHN proves: bebpo, justiz, bea,
	// ben, ebo.
	Mailbox string `json:"mailbox,omitempty"`
	// SecureRoute names the provision that makes the proven route a secure
	// one for the written form (e.g. "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO"); empty
	// when the route is none, or not one of those (a court's own VHN).
	SecureRoute string `json:"secureRoute,omitempty"`
	// SenderSafeID is the sender's SAFE-ID as the Visitenkarte claims it;
	// SenderSafeIDProven is true when the VHN certificate is that mailbox's
	// own (its UID is this SAFE-ID).
	SenderSafeID       string `json:"senderSafeId,omitempty"`
	SenderSafeIDProven bool   `json:"senderSafeIdProven"`
	// SenderRoleClaimed is the Visitenkarte's Rollen_ID (egvp_bebpo, ...);
	// SenderRoleProven the mailbox kind the VHN certificate proves, empty
	// when it proves none.
	SenderRoleClaimed string `json:"senderRoleClaimed,omitempty"`
	SenderRoleProven  string `json:"senderRoleProven,omitempty"`
	// TransportCertificate is the certificate of the sender's transport
	// signature (the OSCI originator's signature certificate).
	TransportCertificate *Certificate `json:"transportCertificate,omitempty"`
	// ContentSignatures are the OSCI content containers' signature results
	// as the channel recorded them ("project_coco: valid (signer)").
	ContentSignatures []string `json:"contentSignatures,omitempty"`
	// XJustiz are the facts of the XJustiz message, nil without one.
	XJustiz *XJustizFacts `json:"xjustiz,omitempty"`
	// Problems are what the channel found wrong with the receipt: claims
	// the transport certificate contradicts, an unreadable XJustiz
	// message, an invalid content signature, ...
	Problems []string `json:"problems,omitempty"`
}

// XJustizFacts are what the Prüfprotokoll shows of an XJustiz message.
type XJustizFacts struct {
	MessageType         string `json:"messageType,omitempty"`
	Version             string `json:"version,omitempty"`
	MessageID           string `json:"messageId,omitempty"`
	SenderFileNumber    string `json:"senderFileNumber,omitempty"`
	RecipientFileNumber string `json:"recipientFileNumber,omitempty"`
	// RecipientCode is the recipient court's code (Codeliste GDS.Gerichte).
	RecipientCode string `json:"recipientCode,omitempty"`
	// EEBRequested is true when the sender asks for an eEB, for the
	// documents EEBDocuments.
	EEBRequested bool     `json:"eebRequested"`
	EEBDocuments []string `json:"eebDocuments,omitempty"`
}

// originWords are the Prüfprotokoll's words for the origin levels.
var originWords = map[string][2]string{
	OriginVHN:          {"vertrauenswürdiger Herkunftsnachweis (VHN) geprüft", "trustworthy proof of origin (VHN) verified"},
	OriginSenderSigned: {"Transportsignatur ohne gültigen Herkunftsnachweis", "transport signature without a valid proof of origin"},
	OriginNone:         {"kein Herkunftsnachweis", "no proof of origin"},
}

// OriginGerman is the German wording of the origin level.
func (t *Transmission) OriginGerman() string { return originWord(t.Origin, 0) }

// OriginEnglish is the English wording of the origin level.
func (t *Transmission) OriginEnglish() string { return originWord(t.Origin, 1) }

func originWord(level string, i int) string {
	if w, ok := originWords[level]; ok {
		return w[i]
	}
	return "unbekannt / unknown (" + level + ")"
}

// mailboxNames are the mailbox kinds' names.
var mailboxNames = map[string]string{
	"bebpo":  "besonderes elektronisches Behördenpostfach (beBPo)",
	"justiz": "Postfach der Justiz",
	"bea":    "besonderes elektronisches Anwaltspostfach (beA)",
	"ben":    "besonderes elektronisches Notarpostfach (beN)",
	"ebo":    "elektronisches Bürger- und Organisationenpostfach (eBO)",
}

// MailboxName is the name of the proven mailbox kind, "–" for none.
func (t *Transmission) MailboxName() string {
	if t.Mailbox == "" {
		return "–"
	}
	if n, ok := mailboxNames[t.Mailbox]; ok {
		return n
	}
	return t.Mailbox
}

// writtenForm decides the written form for a message whose signatures did
// not satisfy it (sigReason says why): a document that came on a secure
// route with a verified VHN needs only the simple signature of the
// responsible person instead of a QES (§ 130a Abs. 3 Satz 1 Alt. 2 ZPO;
// § 55a Abs. 3 Satz 1 VwGO, § 65a Abs. 3 Satz 1 SGG, § 46c Abs. 3 Satz 1
// ArbGG alike). Whether the name of that person is under the text is not
// machine-checkable and is left to the reader, which the reason says.
func (t *Transmission) writtenForm(sigReason string) (bool, string) {
	switch {
	case t.Origin == OriginVHN && t.SecureRoute != "":
		return true, fmt.Sprintf("the message came on a secure route (%s) with a verified VHN of a %s mailbox: "+
			"a document signed simply by the responsible person needs no qualified signature (§ 130a Abs. 3 Satz 1 Alt. 2 ZPO); "+
			"that the responsible person's name is under the text is not checked here (%s)", t.SecureRoute, t.Mailbox, sigReason)
	case t.Origin == OriginVHN:
		return false, fmt.Sprintf("%s; the VHN of a %s mailbox proves who sent the message but is not one of the secure routes "+
			"of § 130a Abs. 4 ZPO (a court's own documents need a qualified signature, § 130b ZPO)", sigReason, t.Mailbox)
	}
	why := t.OriginReason
	if why == "" {
		why = "no proof of origin"
	}
	return false, fmt.Sprintf("%s; no secure route either: the message has no verified VHN (%s: %s)", sigReason, t.Origin, why)
}

// ClaimedBy says whose word the sender's SAFE-ID is.
func (t *Transmission) ClaimedBy() string {
	if t.SenderSafeIDProven {
		return "nachgewiesen durch das VHN-Zertifikat / proven by the VHN certificate"
	}
	return "Angabe der Visitenkarte, nicht nachgewiesen / claimed by the Visitenkarte, not proven"
}

// EEBText is the German and English wording of the eEB request.
func (x *XJustizFacts) EEBText() string {
	if !x.EEBRequested {
		return "nein / no"
	}
	if len(x.EEBDocuments) == 0 {
		return "ja / yes"
	}
	return "ja / yes (" + strings.Join(x.EEBDocuments, ", ") + ")"
}
