// Package demail reads De-Mail messages as BSI TR 01201 defines them: the
// provider's X-de-mail-* header fields (Teil 3.4, Postfach- und
// Versanddienst Interoperabilitätsspezifikation, version 1.8, clause 3.1)
// into typed fields, and the provider's integrity protection over them
// (clause 3.1.21) against the provider certificates the operator
// configured.
//
// Nothing here trusts a header by itself. Parse records every missing,
// repeated, unknown or contradictory field as a Problem; Verify says
// whether the provider's signature holds. Only a message with no problems
// and a verified, trusted provider signature may carry legal effect.
package demail

import (
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
)

// Header field names of TR 01201 Teil 3.4 clause 3.1.1, table 1, in the
// lower case the TR recommends. Names are compared case-insensitively.
const (
	FieldConfirmDispatch      = "x-de-mail-confirmation-of-dispatch"
	FieldConfirmReceipt       = "x-de-mail-confirmation-of-receipt"
	FieldConfirmRetrieve      = "x-de-mail-confirmation-of-retrieve"
	FieldAuthoritative        = "x-de-mail-authoritative"
	FieldPrivate              = "x-de-mail-private"
	FieldSender               = "x-de-mail-sender"
	FieldChosenRecipient      = "x-de-mail-chosen-recipient"
	FieldPrivateID            = "x-de-mail-private-id"
	FieldAuthLevel            = "x-de-mail-auth-level"
	FieldAuthMechanism        = "x-de-mail-auth-mechanism"
	FieldMessageID            = "x-de-mail-message-id"
	FieldOriginatorProvider   = "x-de-mail-originator-provider"
	FieldMessageType          = "x-de-mail-message-type"
	FieldIntegrity            = "x-de-mail-integrity"
	FieldSignatureCertificate = "x-de-mail-signature-certificate"
	FieldActualRecipient      = "x-de-mail-actual-recipient"
	FieldVersion              = "x-de-mail-version"
	FieldAccountHolder        = "x-de-mail-account-holder"
	FieldNotificationType     = "x-de-mail-notification-type"
)

// MessageType is the value of X-de-mail-message-type (clause 3.1.12, table 12).
type MessageType string

// The message types of table 12.
const (
	TypeNormal                 MessageType = "normal"
	TypeConfirmationOfDispatch MessageType = "confirmation of dispatch"
	TypeConfirmationOfReceipt  MessageType = "confirmation of receipt"
	TypeConfirmationOfRetrieve MessageType = "confirmation of retrieve"
	TypeMalwareAcknowledge     MessageType = "malware-acknowledge"
	TypeMalwareNotification    MessageType = "malware-notification"
	TypeNotification           MessageType = "notification"
	TypeIdentification         MessageType = "identification"
)

// Class is the column of table 1 a message type belongs to: it decides
// which fields must, may and must not be present.
type Class string

// The classes of table 1 (N, B, M, I).
const (
	ClassUnknown      Class = ""
	ClassNormal       Class = "N"
	ClassConfirmation Class = "B"
	ClassNotification Class = "M"
	ClassIdent        Class = "I"
)

// Class returns the column of table 1 for t.
func (t MessageType) Class() Class {
	switch t {
	case TypeNormal:
		return ClassNormal
	case TypeConfirmationOfDispatch, TypeConfirmationOfReceipt, TypeConfirmationOfRetrieve, TypeMalwareAcknowledge:
		return ClassConfirmation
	case TypeMalwareNotification, TypeNotification:
		return ClassNotification
	case TypeIdentification:
		return ClassIdent
	}
	return ClassUnknown
}

// notificationTypes are the values of table 22 (clause 3.1.20).
var notificationTypes = []string{"unknown-recipient", "closed-account", "invalid-format", "other"}

// versions are the values of X-de-mail-version: table 17 lists 1.0 to
// 1.7, the version overview (table 26) adds 1.8.
var versions = []string{"1.0", "1.1", "1.2", "1.7", "1.8"}

// DispatchOptions are the sender's choices (Versandoptionen), clauses 3.1.2
// to 3.1.6. An absent field means "no".
type DispatchOptions struct {
	ConfirmDispatch  bool // Versandbestätigung
	ConfirmReceipt   bool // Eingangsbestätigung
	ConfirmRetrieval bool // Abholbestätigung
	Authoritative    bool // Absenderbestätigt
	Personal         bool // Persönlich
}

// Recipients is the value of X-de-mail-chosen-recipient or
// X-de-mail-actual-recipient (clauses 3.1.8 and 3.1.15).
type Recipients struct {
	To, Cc, Bcc []string // addr-specs
}

// Problem is one thing wrong with the De-Mail header fields.
type Problem struct {
	Field string `json:"field,omitempty"` // lower-case field name; empty for the section
	Text  string `json:"text"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Text
	}
	return p.Field + ": " + p.Text
}

// Headers are the De-Mail header fields of one message, typed. A field
// that was malformed is left at its zero value and named in Problems.
type Headers struct {
	Type             MessageType
	NotificationType string
	Version          string
	MessageID        string // X-de-mail-message-id
	PrivateID        string // X-de-mail-private-id, the sender's reference
	Sender           string // X-de-mail-sender, addr-spec
	ChosenRecipients Recipients
	ActualRecipients Recipients
	AccountHolder    string
	AuthLevel        string // "normal" or "high"
	AuthMechanism    string
	// OriginatorProvider is the FQDN of the provider (DMDA) that wrote the
	// metadata; it selects the provider trust the signature is checked with.
	OriginatorProvider string
	Options            DispatchOptions
	// Integrity is the raw X-de-mail-integrity value (an RFC 6376 tag list).
	Integrity string
	// SignatureCertificate is the DER of X-de-mail-signature-certificate.
	SignatureCertificate []byte

	Problems []Problem
}

// Clean reports whether no problem was found.
func (h *Headers) Clean() bool { return len(h.Problems) == 0 }

func (h *Headers) problem(field, format string, args ...any) {
	h.Problems = append(h.Problems, Problem{Field: field, Text: fmt.Sprintf(format, args...)})
}

// presence of a field for one class, from table 1.
type presence int

const (
	may presence = iota
	must
	mustNot
)

// fieldRule is one row of table 1 restricted to the X-de-mail-* fields.
type fieldRule struct {
	name string
	// by class N, B, M, I
	n, b, m, i presence
}

// rules is table 1 of clause 3.1.1. "wie original" for B on
// X-de-mail-private means the value is copied, so it may be present.
var rules = []fieldRule{
	{FieldConfirmDispatch, must, mustNot, mustNot, mustNot},
	{FieldConfirmReceipt, must, mustNot, mustNot, mustNot},
	{FieldConfirmRetrieve, must, mustNot, mustNot, mustNot},
	{FieldAuthoritative, must, mustNot, mustNot, mustNot},
	{FieldPrivate, must, may, mustNot, must},
	{FieldSender, must, must, must, must},
	{FieldChosenRecipient, must, must, must, must},
	{FieldPrivateID, may, may, may, mustNot},
	{FieldAuthLevel, must, may, may, may},
	{FieldAuthMechanism, must, may, may, may},
	{FieldMessageID, must, must, must, must},
	{FieldOriginatorProvider, must, must, must, must},
	{FieldMessageType, must, must, must, must},
	{FieldIntegrity, must, must, must, must},
	{FieldSignatureCertificate, may, must, may, must},
	{FieldActualRecipient, must, must, must, must},
	{FieldVersion, must, must, must, must},
	{FieldAccountHolder, must, mustNot, mustNot, mustNot},
	{FieldNotificationType, mustNot, mustNot, must, mustNot},
}

// mailRules are the RFC 5322 fields table 1 requires in every class.
var mailRules = []string{"from", "date", "message-id", "subject"}

func (r fieldRule) for_(c Class) presence {
	switch c {
	case ClassNormal:
		return r.n
	case ClassConfirmation:
		return r.b
	case ClassNotification:
		return r.m
	case ClassIdent:
		return r.i
	}
	// Unknown type: only what every class needs is required.
	if r.n == must && r.b == must && r.m == must && r.i == must {
		return must
	}
	return may
}

// Parse reads the De-Mail header fields of a message (header section and
// body, as received). It never fails: everything wrong is in Problems.
func Parse(msg []byte) *Headers {
	fields, _, splitProblems := splitMessage(msg)
	h := &Headers{}
	for _, p := range splitProblems {
		h.problem("", "%s", p)
	}
	h.fill(fields)
	return h
}

// first returns the first value of each field the TR defines and records
// repeated ones: clause 3.1.1 says the topmost counts, and we also refuse
// to trust a message whose provider wrote a field twice.
func (h *Headers) fill(fields []rawField) {
	known := map[string]bool{}
	for _, r := range rules {
		known[r.name] = true
	}
	values := map[string]string{}
	count := map[string]int{}
	for _, f := range fields {
		n := strings.ToLower(f.Name)
		if strings.HasPrefix(n, "x-de-mail-") && !known[n] {
			h.problem(n, "field not defined by TR 01201 Teil 3.4")
			continue
		}
		count[n]++
		if count[n] == 1 {
			values[n] = f.Value
		} else if count[n] == 2 && (known[n] || contains(mailRules, n)) {
			h.problem(n, "field repeated; the first is used and the message is not trusted")
		}
	}
	h.Type = MessageType(values[FieldMessageType])
	class := h.Type.Class()
	if _, ok := values[FieldMessageType]; ok && class == ClassUnknown {
		h.problem(FieldMessageType, "unknown message type %q", clip([]byte(values[FieldMessageType]), 60))
		h.Type = ""
	}
	for _, r := range rules {
		_, present := values[r.name]
		switch p := r.for_(class); {
		case p == must && !present:
			h.problem(r.name, "missing")
		case p == mustNot && present:
			h.problem(r.name, "not allowed in a message of type %q", h.Type)
		}
	}
	for _, n := range mailRules {
		if _, ok := values[n]; !ok {
			h.problem(n, "missing")
		}
	}
	h.Options = DispatchOptions{
		ConfirmDispatch:  h.yesNo(values, FieldConfirmDispatch),
		ConfirmReceipt:   h.yesNo(values, FieldConfirmReceipt),
		ConfirmRetrieval: h.yesNo(values, FieldConfirmRetrieve),
		Authoritative:    h.yesNo(values, FieldAuthoritative),
		Personal:         h.yesNo(values, FieldPrivate),
	}
	h.Sender = h.address(values, FieldSender)
	h.ChosenRecipients = h.recipients(values, FieldChosenRecipient)
	h.ActualRecipients = h.recipients(values, FieldActualRecipient)
	h.PrivateID = h.privateID(values)
	h.MessageID = h.text(values, FieldMessageID)
	h.AccountHolder = h.text(values, FieldAccountHolder)
	h.AuthMechanism = h.text(values, FieldAuthMechanism)
	h.AuthLevel = h.oneOf(values, FieldAuthLevel, []string{"normal", "high"})
	h.Version = h.oneOf(values, FieldVersion, versions)
	h.NotificationType = h.oneOf(values, FieldNotificationType, notificationTypes)
	h.OriginatorProvider = h.fqdn(values, FieldOriginatorProvider)
	h.Integrity = values[FieldIntegrity]
	h.SignatureCertificate = h.certificate(values)
	if class == ClassNormal && h.MessageID == "" && values[FieldMessageID] != "" {
		h.problem(FieldMessageID, "empty")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// yesNo reads a dispatch option: "yes" or "no", case-sensitive
// (clauses 3.1.2 to 3.1.6). Absent is "no"; any other value is a problem
// and read as "no", so that a malformed option never grants anything.
func (h *Headers) yesNo(values map[string]string, name string) bool {
	v, ok := values[name]
	switch {
	case !ok || v == "no":
		return false
	case v == "yes":
		return true
	}
	h.problem(name, "value %q, want \"yes\" or \"no\"", clip([]byte(v), 40))
	return false
}

func (h *Headers) oneOf(values map[string]string, name string, allowed []string) string {
	v, ok := values[name]
	if !ok {
		return ""
	}
	if !contains(allowed, v) {
		h.problem(name, "value %q not among %s", clip([]byte(v), 40), strings.Join(allowed, ", "))
		return ""
	}
	return v
}

// text reads an RFC 5322 "unstructured" value; control characters make
// it a problem.
func (h *Headers) text(values map[string]string, name string) string {
	v := values[name]
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			h.problem(name, "control character in value")
			return ""
		}
	}
	return v
}

func (h *Headers) privateID(values map[string]string) string {
	v := h.text(values, FieldPrivateID)
	if n := len([]rune(v)); n > MaxPrivateIDChars {
		h.problem(FieldPrivateID, "%d characters, the TR allows at most %d", n, MaxPrivateIDChars)
		return ""
	}
	return v
}

// address reads an addr-spec (clause 3.1.7).
func (h *Headers) address(values map[string]string, name string) string {
	v, ok := values[name]
	if !ok {
		return ""
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || strings.ContainsAny(v, "<>") {
		h.problem(name, "not an addr-spec: %q", clip([]byte(v), 60))
		return ""
	}
	return a.Address
}

// fqdn reads a domain name (clause 3.1.11): dot-separated labels of
// letters, digits and hyphens.
func (h *Headers) fqdn(values map[string]string, name string) string {
	v, ok := values[name]
	if !ok {
		return ""
	}
	if !validFQDN(v) {
		h.problem(name, "not a fully qualified domain name: %q", clip([]byte(v), 60))
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(v, "."))
}

func validFQDN(v string) bool {
	v = strings.TrimSuffix(v, ".")
	if len(v) == 0 || len(v) > 253 || !strings.Contains(v, ".") {
		return false
	}
	for _, l := range strings.Split(v, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// certificate decodes X-de-mail-signature-certificate: base64 of the DER
// (clause 3.1.14). Folding whitespace inside is allowed.
func (h *Headers) certificate(values map[string]string) []byte {
	v, ok := values[FieldSignatureCertificate]
	if !ok {
		return nil
	}
	der, err := base64.StdEncoding.DecodeString(stripWhitespace(v))
	if err != nil || len(der) == 0 {
		h.problem(FieldSignatureCertificate, "not base64")
		return nil
	}
	return der
}

func stripWhitespace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}
