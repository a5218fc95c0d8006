// Package gateway is Poststelle's domain: the events every receipt and every
// decision is recorded as, how they are encoded in the log, and the pipeline
// of projections that turns one event into the next (see ARCHITECTURE.md).
//
// Event payloads are JSON objects with camelCase field names. Each payload type
// has a name (the log's event type) and a schema version; a reader refuses
// versions it does not know instead of guessing. Adding an optional field is
// compatible and keeps the version; removing or re-interpreting a field makes
// a new version. The full wire format is documented in docs/wire-format.md.
package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// DefaultTenant is the authority an installation serves until tenants are
// configured.
const DefaultTenant = "default"

// Channel names the way a message reached the authority or leaves it.
type Channel string

// The channels the law opens to an authority.
const (
	ChannelSMTP   Channel = "smtp"
	ChannelIMAP   Channel = "imap"
	ChannelDeMail Channel = "demail"
	ChannelEGVP   Channel = "egvp"
	ChannelPortal Channel = "portal"
	ChannelAPI    Channel = "api"
	// ChannelPostbox is the direct postbox API (channels/postbox) for
	// portals that do not speak FIT-Connect.
	ChannelPostbox Channel = "postbox"
)

// Address is a participant's address as the channel states it: an e-mail
// address, a De-Mail address, a SAFE-ID, or a portal postbox reference.
type Address struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

// Part is one MIME part, attachment or container entry of a message.
type Part struct {
	// Path locates the part in the message's tree, e.g. "1.2" (MIME numbering).
	Path      string   `json:"path"`
	MediaType string   `json:"mediaType"`
	Filename  string   `json:"filename,omitempty"`
	Blob      blob.Ref `json:"blob"`
	// Kind classifies parts the projections care about: "body", "attachment",
	// "signature" (detached CMS), "signed-data" (enveloping CMS), "encrypted",
	// "message" (a nested message), "container".
	Kind string `json:"kind,omitempty"`
	// Problems lists what could not be understood about this part.
	Problems []string `json:"problems,omitempty"`
}

// Header is a transport header kept as evidence.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TransportEvidence records how a message arrived: what the sender's side and
// our side said at the protocol level, for the Prüfprotokoll and for disputes
// about the moment of receipt.
type TransportEvidence struct {
	// RemoteAddr is the peer's network address, if the channel has one.
	RemoteAddr string `json:"remoteAddr,omitempty"`
	// Coordinates locate the message in the transport that carried it, in
	// the channel's own form, for evidence and for finding it there again:
	//
	//	smtp    empty (an SMTP delivery leaves nothing to point back to)
	//	imap    "<mailbox name>/<UIDVALIDITY>/<UID>"
	//	demail  the De-Mail provider's message reference
	//	egvp    the OSCI message id of the transport container
	//	portal  the FIT-Connect case id
	//
	// It is never the sender's message id (see MessageReceived.SenderMessageID).
	Coordinates string `json:"coordinates,omitempty"`
	// Envelope holds protocol-level addresses (SMTP MAIL FROM / RCPT TO,
	// IMAP mailbox and UID, OSCI addressees).
	Envelope map[string]string `json:"envelope,omitempty"`
	// Received lists the message's trace headers as received.
	Received []string `json:"received,omitempty"`
	// TLS describes the transport security, e.g. "TLS 1.3 TLS_AES_128_GCM_SHA256".
	TLS string `json:"tls,omitempty"`
	// Untrusted lists headers that only a trusted channel may set and that
	// arrived on a channel that cannot vouch for them. They never change a
	// message's legal status.
	Untrusted []Header `json:"untrusted,omitempty"`
}

// MessageReceived records that the authority received a message. Its time is
// the Eingangszeitpunkt: the receipt is durable when this event is.
//
// Schema version 2 split version 1's channelMessageId, which held the
// RFC 5322 Message-ID on SMTP but the mailbox coordinates on IMAP, into
// SenderMessageID and Transport.Coordinates; version 1 events are decoded
// into this shape (see upgradeReceivedV1).
type MessageReceived struct {
	Channel Channel `json:"channel"`
	// SenderMessageID is the id the sender's side gave the message, the one
	// an answer refers to:
	//
	//	smtp, imap  the RFC 5322 Message-ID, with its angle brackets
	//	demail      the provider's X-de-mail-message-id (TR 01201 Teil 3.4
	//	            clause 3.1.18), the Message-ID when the provider wrote none
	//	egvp        the OSCI message id
	//	portal      the FIT-Connect submission id
	//	api         empty
	//
	// Empty when the sender gave none. It is the sender's claim, not a
	// deduplication key: the message key is derived by the channel (see
	// Inbound in channel.go).
	SenderMessageID string    `json:"senderMessageId,omitempty"`
	From            Address   `json:"from"`
	To              []Address `json:"to,omitempty"`
	Cc              []Address `json:"cc,omitempty"`
	Subject         string    `json:"subject,omitempty"`
	ReceivedAt      time.Time `json:"receivedAt"`
	// Raw refers to the message's bytes exactly as received.
	Raw   blob.Ref `json:"raw"`
	Parts []Part   `json:"parts,omitempty"`
	// Metadata holds channel-specific routing facts (XJustiz recipient,
	// FIT-Connect destination, file numbers) for the routing rules.
	Metadata  map[string]string `json:"metadata,omitempty"`
	Transport TransportEvidence `json:"transport"`
	// Problems lists what could not be parsed; the raw bytes are kept anyway
	// and triage sees the list.
	Problems []string `json:"problems,omitempty"`
	// DeMail is the De-Mail evidence: set only by the De-Mail channel, nil
	// on every other. The same X-de-mail-* headers on another channel stay
	// in Transport.Untrusted and have no effect.
	DeMail *DeMailEvidence `json:"deMail,omitempty"`
	// EGVP is what the EGVP message layer read from an OSCI delivery: set only
	// by the EGVP channel, nil on every other, and ignored by the routing rules
	// on another channel.
	EGVP *EGVPFields `json:"egvp,omitempty"`
	// Portal is what the portal channel read from a FIT-Connect submission:
	// set only by the portal channel, nil on every other, and ignored by the
	// routing rules on another channel.
	Portal *PortalFields `json:"portal,omitempty"`
}

// PortalFields are the typed fields of a submission received through
// FIT-Connect (channels/portal): where it was addressed, which
// Verwaltungsleistung it is for, how its sender may be answered, and what the
// gateway checked and decided about it. The service and the reply channel
// are the submission's metadata, the sender's claims; Checks and Decision are
// the gateway's own.
type PortalFields struct {
	// DestinationID is the FIT-Connect destination (Zustellpunkt) the
	// submission was addressed to, SubmissionID and CaseID the platform's ids
	// of the submission and of its case (Vorgang).
	DestinationID string `json:"destinationId"`
	SubmissionID  string `json:"submissionId"`
	CaseID        string `json:"caseId,omitempty"`
	// ServiceIdentifier is the Verwaltungsleistung's identifier, a URN
	// (urn:de:fim:leika:leistung:99123456760610 for a LeiKa service), as the
	// metadata's publicServiceType states it or else the submission's
	// serviceType; ServiceName its name.
	ServiceIdentifier string `json:"serviceIdentifier,omitempty"`
	ServiceName       string `json:"serviceName,omitempty"`
	// LeikaKey is the LeiKa key, the part of a urn:de:fim:leika:leistung:
	// identifier after that prefix; empty for another kind of identifier.
	LeikaKey string `json:"leikaKey,omitempty"`
	// MetadataSchema is the metadata's $schema URI (the schema it was
	// validated against).
	MetadataSchema string `json:"metadataSchema,omitempty"`
	// ReplyChannel is the kind of reply channel the metadata names:
	// fitConnect, eMail, deMail, fink or elster; empty when it names none.
	ReplyChannel string `json:"replyChannel,omitempty"`
	// AuthenticationTags are the JWE authentication tags of the encrypted
	// metadata, data and attachments, as the accept-submission event states
	// them.
	AuthenticationTags *PortalAuthenticationTags `json:"authenticationTags,omitempty"`
	// Checks lists what was verified and held ("metadata decrypted",
	// "metadata schema 1.0.0", "data hash sha512", ...).
	Checks []string `json:"checks,omitempty"`
	// Decision is the gateway's answer to the platform: PortalAccepted or
	// PortalRejected (with Problems).
	Decision string `json:"decision"`
	// Problems are the FIT-Connect problems a rejection names.
	Problems []PortalProblem `json:"problems,omitempty"`
}

// The decisions on a FIT-Connect submission.
const (
	// PortalAccepted: every check held; accept-submission is posted.
	PortalAccepted = "accepted"
	// PortalRejected: a check failed; reject-submission is posted with the
	// problems.
	PortalRejected = "rejected"
)

// PortalAuthenticationTags are the JWE authentication tags (base64url) of a
// submission's encrypted parts.
type PortalAuthenticationTags struct {
	Metadata string `json:"metadata,omitempty"`
	Data     string `json:"data,omitempty"`
	// Attachments maps attachment ids to their tags.
	Attachments map[string]string `json:"attachments,omitempty"`
}

// PortalProblem is one problem of a rejected submission, in the form of the
// reject-submission event (an RFC 7807 problem).
type PortalProblem struct {
	// Type is the problem's URI
	// (https://schema.fitko.de/fit-connect/events/problems/hash-mismatch).
	Type   string `json:"type"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Instance names what the problem is about: "metadata", "data" or
	// "attachment:<id>".
	Instance string `json:"instance,omitempty"`
}

// EGVPFields are the typed fields of a message received on EGVP (package egvp):
// the sender's Visitenkarte, the XJustiz Nachrichtenkopf and the proof of origin.
// The SAFE-IDs and the role are the sender's claims; Origin says what the
// transport certificate proves of them.
type EGVPFields struct {
	// SenderSafeID is the Visitenkarte's Nutzer_ID, SenderRole its Rollen_ID
	// (egvp_bebpo, egvp_justiz, ...); RecipientSafeID the addressed mailbox.
	SenderSafeID    string `json:"senderSafeId,omitempty"`
	SenderRole      string `json:"senderRole,omitempty"`
	RecipientSafeID string `json:"recipientSafeId,omitempty"`
	// SenderFileNumber and RecipientFileNumber are the Aktenzeichen of both sides.
	SenderFileNumber    string `json:"senderFileNumber,omitempty"`
	RecipientFileNumber string `json:"recipientFileNumber,omitempty"`
	// MessageType is the XJustiz message type (nachricht.eeb.zuruecklaufend, ...)
	// or, without XJustiz, nachricht.xml's Nachrichtentyp.
	MessageType string `json:"messageType,omitempty"`
	// RecipientCode is the recipient court's code (Codeliste GDS.Gerichte).
	RecipientCode string `json:"recipientCode,omitempty"`
	// XJustizVersion, XJustizMessageID and XJustizForeignMessageID are the
	// Nachrichtenkopf's xjustizVersion, eigene and fremde Nachrichten-ID.
	XJustizVersion          string `json:"xjustizVersion,omitempty"`
	XJustizMessageID        string `json:"xjustizMessageId,omitempty"`
	XJustizForeignMessageID string `json:"xjustizForeignMessageId,omitempty"`
	// EEBRequested is set when the sender asks for an eEB, for the XJustiz
	// documents EEBDocuments.
	EEBRequested bool     `json:"eebRequested,omitempty"`
	EEBDocuments []string `json:"eebDocuments,omitempty"`
	// Origin is the proof of origin: "vhn", "sender-signed" or "none", with the
	// mailbox kind a VHN is for (bebpo, justiz, bea, ...), the route as the
	// Prüfprotokoll words it and the reason.
	Origin        string `json:"origin"`
	OriginMailbox string `json:"originMailbox,omitempty"`
	OriginRoute   string `json:"originRoute,omitempty"`
	OriginReason  string `json:"originReason,omitempty"`
	// TransportCertificate is the lowercase hex SHA-256 of the DER of the
	// transport signature's certificate, when there was one.
	TransportCertificate string `json:"transportCertificate,omitempty"`
}

// DeMailEvidence is what the De-Mail provider's headers (BSI TR 01201
// Teil 3.4 clause 3.1) say about a message received on the De-Mail
// channel, and whether the provider's integrity protection (clause 3.1.21)
// holds. Every field is as parsed; only Verdict "provider-signed" makes
// them the provider's word rather than a claim.
type DeMailEvidence struct {
	// MessageType is X-de-mail-message-type ("normal", "confirmation of
	// receipt", ...).
	MessageType string `json:"messageType,omitempty"`
	// MessageID is X-de-mail-message-id, the provider's id of the message.
	MessageID string `json:"messageId,omitempty"`
	// PrivateID is X-de-mail-private-id, the sender's own reference.
	PrivateID string `json:"privateId,omitempty"`
	// Sender is X-de-mail-sender, the sender's address as the provider
	// confirms it.
	Sender string `json:"sender,omitempty"`
	// AccountHolder is X-de-mail-account-holder.
	AccountHolder string `json:"accountHolder,omitempty"`
	// AuthLevel is X-de-mail-auth-level: "normal" or "high".
	AuthLevel     string `json:"authLevel,omitempty"`
	AuthMechanism string `json:"authMechanism,omitempty"`
	// OriginatorProvider is X-de-mail-originator-provider, the FQDN of the
	// sender's provider.
	OriginatorProvider string `json:"originatorProvider,omitempty"`
	Version            string `json:"version,omitempty"`
	// Dispatch options the sender chose (clauses 3.1.2 to 3.1.6).
	ConfirmDispatch  bool `json:"confirmDispatch,omitempty"`
	ConfirmReceipt   bool `json:"confirmReceipt,omitempty"`
	ConfirmRetrieval bool `json:"confirmRetrieval,omitempty"`
	Authoritative    bool `json:"authoritative,omitempty"`
	Personal         bool `json:"personal,omitempty"`
	// Verdict is the outcome of the integrity check: "provider-signed" (the
	// only trusted one), "hash-intact", "certificate-expired", "untrusted",
	// "broken", "certificate-revoked", "not-as-specified" or "missing".
	Verdict string `json:"verdict"`
	// VerdictDetail says why, in words.
	VerdictDetail string `json:"verdictDetail,omitempty"`
	// ProviderCertificate is the lowercase hex SHA-256 of the DER of the
	// provider's signature certificate the message carried, when it
	// carried one.
	ProviderCertificate string `json:"providerCertificate,omitempty"`
	// Qualification is the provider signature's qualification as the
	// configured trusted lists decide it, in DSS's names ("QESeal",
	// "QESig", "AdESeal-QC", "Indeterminate QESeal", ...), or "not
	// checked" when no trusted list is configured; empty when the
	// signature itself does not hold.
	Qualification string `json:"qualification,omitempty"`
	// QualificationDetail says what the qualification rests on: the
	// indication, the certificate's qualification, the trusted-list
	// service and the revocation status.
	QualificationDetail string `json:"qualificationDetail,omitempty"`
	// WrittenForm is true when the message replaces the written form by
	// De-Mail (§ 3a Abs. 2 Satz 4 Nr. 2 VwVfG): sent absenderbestätigt, the
	// provider's signature verified against the configured provider trust,
	// and that signature a qualified seal or signature (QESeal/QESig) with
	// its revocation status known.
	WrittenForm bool `json:"writtenForm"`
}

// MessageRouted records which offices a message belongs to and who decided.
type MessageRouted struct {
	Offices []string `json:"offices"`
	// Rule is the id of the rule that matched, empty for a manual decision.
	Rule string `json:"rule,omitempty"`
	// RulesVersion identifies the rule set that decided (its SHA-256).
	RulesVersion string `json:"rulesVersion,omitempty"`
	// DecidedBy is "rules" or the person who assigned the message in triage.
	DecidedBy string `json:"decidedBy"`
	Reason    string `json:"reason,omitempty"`
}

// RoutingFailed records that no rule placed the message; it goes to triage.
type RoutingFailed struct {
	Reason       string `json:"reason"`
	RulesVersion string `json:"rulesVersion,omitempty"`
}

// MessageDelivered records that an office's queue or mailbox received a message.
type MessageDelivered struct {
	Office string `json:"office"`
	// Via names the delivery path: "queue", "imap", "webhook".
	Via string `json:"via"`
	// Target is the webhook URL or mailbox, where there is one.
	Target string `json:"target,omitempty"`
}

// MessageAcknowledged records that an office took a message into its care.
type MessageAcknowledged struct {
	Office string `json:"office"`
	By     string `json:"by"`
	Via    string `json:"via"`
}

// ReplyRequested records an office's answer, to be sent on the sender's channel.
type ReplyRequested struct {
	ReplyID string  `json:"replyId"`
	Office  string  `json:"office"`
	Author  string  `json:"author"`
	Channel Channel `json:"channel"`
	To      Address `json:"to"`
	Subject string  `json:"subject"`
	// Body is the text of the answer, stored as a blob.
	Body        blob.Ref `json:"body"`
	Attachments []Part   `json:"attachments,omitempty"`
	// InReplyTo is the SenderMessageID of the message the answer refers to
	// (for e-mail the original's Message-ID), never transport coordinates.
	// Schema version 2 pinned this meaning; version 1 events that hold IMAP
	// coordinates here are decoded with the field cleared.
	InReplyTo string `json:"inReplyTo,omitempty"`
	// EEB, when set, makes this answer an electronic acknowledgement of
	// receipt (eEB) of an EGVP message that asked for one: the EGVP channel
	// sends it as the XJustiz message nachricht.eeb.zuruecklaufend instead of
	// a text answer, and Body may then be empty. Only the EGVP channel sends
	// it; another channel refuses it permanently.
	EEB *EEBAnswer `json:"eeb,omitempty"`
}

// The decisions an office takes on a court's eEB request.
const (
	// EEBAcknowledged acknowledges receipt on EEBAnswer.ReceivedOn.
	EEBAcknowledged = "acknowledged"
	// EEBRefused refuses it with a code of the Codeliste eeb.stoerungs-id.
	EEBRefused = "refused"
)

// EEBAnswer is an office's decision on a court's request for an eEB
// (§ 173 Abs. 3 ZPO): acknowledge receipt of the served documents on a date,
// or refuse with a reason (XJustiz 3.x only).
type EEBAnswer struct {
	// Decision is EEBAcknowledged or EEBRefused.
	Decision string `json:"decision"`
	// ReceivedOn is the acknowledged date of receipt, "2006-01-02" (the
	// office's own date; it need not be the day the gateway received it).
	ReceivedOn string `json:"receivedOn,omitempty"`
	// RefusalCode is a code of the Codeliste eeb.stoerungs-id 2.1 ("1" not
	// party to the proceedings, "2" content unclear or incomplete, "3"
	// signature check of the documents failed); Reason the free text.
	RefusalCode string `json:"refusalCode,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// DeviatingRecipient marks an answer by a representative
	// (zustellungsempfaenger.abweichend).
	DeviatingRecipient bool `json:"deviatingRecipient,omitempty"`
}

// ReplySent records that the channel accepted an answer.
type ReplySent struct {
	ReplyID string  `json:"replyId"`
	Channel Channel `json:"channel"`
	// ChannelMessageID is the id the answer was sent under, our side's
	// SenderMessageID of it (for e-mail its Message-ID).
	ChannelMessageID string `json:"channelMessageId,omitempty"`
	Attempt          int    `json:"attempt"`
	// Response is what the peer answered (SMTP reply, OSCI receipt id, ...).
	Response string `json:"response,omitempty"`
	// Sent is the bytes the peer accepted, as the outbound handed them over
	// (the rendered e-mail); absent when the outbound kept none.
	Sent blob.Ref `json:"sent,omitzero"`
}

// ReplyFailed records a failed attempt to send an answer.
type ReplyFailed struct {
	ReplyID   string    `json:"replyId"`
	Attempt   int       `json:"attempt"`
	Error     string    `json:"error"`
	Permanent bool      `json:"permanent"`
	RetryAt   time.Time `json:"retryAt,omitzero"`
	// Uncertain marks a permanent failure that is no failure known: an
	// earlier start of this attempt (ReplyAttempted) has no outcome, so the
	// peer may have the answer. The answer is not sent again until a person
	// checked (ReplyResendOrdered) or it is marked sent (ReplySent).
	Uncertain bool `json:"uncertain,omitempty"`
}

// ProcessingFailed records that a projection kept failing on an event. The
// pipeline's poison queue appends it instead of blocking the stream, and
// triage shows it.
type ProcessingFailed struct {
	Handler  string `json:"handler"`
	EventID  string `json:"eventId"`
	Type     string `json:"type"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}

// SignatureSummary is one verified signature, as the routing rules and the
// office queues need it; the full report is in the blob Report refers to.
type SignatureSummary struct {
	// Part is the path of the part that holds the signature.
	Part string `json:"part"`
	// Format is "CAdES", "PAdES", "XAdES", "S/MIME", ...
	Format string `json:"format,omitempty"`
	// Indication is TOTAL_PASSED, INDETERMINATE or TOTAL_FAILED (ETSI EN 319 102-1).
	Indication    string `json:"indication"`
	SubIndication string `json:"subIndication,omitempty"`
	// Qualification uses DSS's names: QESig, QESeal, AdESig-QC, AdESig, ...
	Qualification string    `json:"qualification,omitempty"`
	Signer        string    `json:"signer,omitempty"`
	SigningTime   time.Time `json:"signingTime,omitzero"`
}

// SignaturesVerified records the verification of every signature found in a
// message, and whether the message satisfies the written form
// (schriftformersetzend) by a valid qualified signature or seal.
type SignaturesVerified struct {
	Signatures []SignatureSummary `json:"signatures"`
	// WrittenFormSatisfied is true when at least one signature is a valid
	// QES (or a qualified seal, where the law accepts one).
	WrittenFormSatisfied bool   `json:"writtenFormSatisfied"`
	WrittenFormReason    string `json:"writtenFormReason,omitempty"`
	// Report refers to the full machine-readable report (JSON); ReportHTML
	// to the human-readable Prüfprotokoll.
	Report     blob.Ref `json:"report"`
	ReportHTML blob.Ref `json:"reportHtml,omitzero"`
	// ValidationTime is the time the signatures were validated at.
	ValidationTime time.Time `json:"validationTime"`
	// Verifier names the software and version that decided.
	Verifier string `json:"verifier,omitempty"`
}

// TimestampApplied records a trusted RFC 3161 timestamp over a message's raw
// bytes: evidence of the Eingangszeitpunkt independent of the gateway's clock.
type TimestampApplied struct {
	// TSA is the authority's URL or name.
	TSA string `json:"tsa"`
	// Token is the DER TimeStampToken in the blob store.
	Token blob.Ref `json:"token"`
	// GenTime is the time the TSA asserts.
	GenTime time.Time `json:"genTime"`
	// Imprint is the hex SHA-256 the token covers (the raw message's hash).
	Imprint string `json:"imprint"`
	Serial  string `json:"serial,omitempty"`
	Policy  string `json:"policy,omitempty"`
}
