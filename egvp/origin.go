package egvp

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/osci"
)

// Level is the trust the proof of origin gives a message.
type Level string

// The levels, strongest first.
const (
	// LevelVHN: the message comes from the secure mailbox it names (§ 130a Abs. 4 ZPO).
	LevelVHN Level = "vhn"
	// LevelSenderSigned: a transport signature is there, but it proves no secure route.
	LevelSenderSigned Level = "sender-signed"
	LevelNone         Level = "none"
)

// Origin is the proof of origin of a message.
type Origin struct {
	Level Level
	// Mailbox is the kind of secure mailbox the VHN certificate is for: bebpo,
	// justiz, bea, ben, ebo; "" without a VHN.
	Mailbox string
	// Route is the receiver's wording of the route for the Prüfprotokoll, as EGVP
	// prints it ("Sicherer Übermittlungsweg aus einem besonderen Behördenpostfach.").
	Route string
	// CertificateSubject, CertificateIssuer and CertificateUID describe the transport
	// signature's certificate.
	CertificateSubject, CertificateIssuer, CertificateUID string
	// CertificateSHA256 is the lowercase hex SHA-256 of the certificate's DER.
	CertificateSHA256 string
	// Reason says why the level is what it is; Checks what was checked, in order.
	Reason string
	Checks []string
	// Problems are contradictions between the message's claims and the certificate.
	Problems []string
}

// mailboxes maps the subject CN of a VHN certificate ("VHN - <mailbox>") to its kind
// and the receiver's wording. bebpo and justiz are as in the real samples; the others
// by the names of the mailboxes in § 130a Abs. 4 ZPO and ERVV, unverified.
var mailboxes = []struct {
	cn, kind, route string
}{
	{"VHN - besonderes elektronisches Behördenpostfach", "bebpo", "Sicherer Übermittlungsweg aus einem besonderen Behördenpostfach."},
	{"VHN - Justiz", "justiz", "Diese Nachricht wurde von der Justiz versandt."},
	{"VHN - besonderes elektronisches Anwaltspostfach", "bea", "Sicherer Übermittlungsweg aus einem besonderen Anwaltspostfach."},
	{"VHN - besonderes elektronisches Notarpostfach", "ben", "Sicherer Übermittlungsweg aus einem besonderen Notarpostfach."},
	{"VHN - elektronisches Bürger- und Organisationenpostfach", "ebo", "Sicherer Übermittlungsweg aus einem elektronischen Bürger- und Organisationenpostfach."},
}

// roles maps a Visitenkarte Rollen_ID to the mailbox kind it claims.
var roles = map[string]string{"egvp_bebpo": "bebpo", "egvp_justiz": "justiz", "egvp_bea": "bea", "egvp_bnotk": "ben", "egvp_ebo": "ebo"}

// mailboxBound are the kinds whose VHN certificate is the mailbox's own (its UID is the
// mailbox's SAFE-ID); the Justiz VHN is the courts' shared certificate.
var mailboxBound = map[string]bool{"bebpo": true, "bea": true, "ben": true, "ebo": true}

var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

func checkOrigin(d Delivery, m *Message, cfg Config) Origin {
	o := Origin{Level: LevelNone}
	claimed := ""
	if m.Card != nil {
		claimed = roles[m.Card.Role]
	}
	c := transportCertificate(d.Envelope)
	if c == nil {
		o.Reason = "no transport signature certificate of the originator"
		o.claim(claimed, "")
		return o
	}
	o.CertificateSubject, o.CertificateIssuer = c.Subject.String(), c.Issuer.String()
	o.CertificateUID = nameAttr(c, oidUID)
	fp := c.Fingerprint()
	o.CertificateSHA256 = hex.EncodeToString(fp[:])
	kind, route := vhnKind(c)
	o.Level = LevelSenderSigned
	if !o.checked(d, c, kind) || !o.valid(c, m) || !o.chain(c, cfg, kind) {
		o.claim(claimed, "")
		return o
	}
	if kind == "" {
		o.Reason = "the transport signature's certificate is not a VHN certificate"
		o.claim(claimed, "")
		return o
	}
	if mailboxBound[kind] && (m.Card == nil || m.Card.SafeID != o.CertificateUID) {
		claim := ""
		if m.Card != nil {
			claim = m.Card.SafeID
		}
		o.Problems = append(o.Problems, fmt.Sprintf("the Visitenkarte names SAFE-ID %q, the VHN certificate is for %q", claim, o.CertificateUID))
		o.Reason = "the VHN certificate is not that of the sending mailbox"
		return o
	}
	o.claim(claimed, kind)
	o.Level, o.Mailbox, o.Route = LevelVHN, kind, route
	o.Reason = "VHN of a " + kind + " mailbox"
	if d.Enterprise != nil {
		o.Reason += ", as EGVP Enterprise checked the transport signature (Poststelle did not verify it)"
	}
	return o
}

// checked is the check of the transport signature by whoever received the delivery
// from the intermediary: the intermediary's inspection in the process card, or EGVP
// Enterprise's verdict.
func (o *Origin) checked(d Delivery, c *cert.Certificate, kind string) bool {
	if d.Enterprise == nil {
		return o.inspected(d, c)
	}
	e := d.Enterprise
	if e.ProofOfOrigin == "" {
		o.Reason = "EGVP Enterprise's check report states no proof of origin"
		return false
	}
	o.Checks = append(o.Checks, "EGVP Enterprise's check: ProofOfOrigin "+e.ProofOfOrigin)
	reported, ok := strings.CutPrefix(e.ProofOfOrigin, "VHN_")
	reported, valid := strings.CutSuffix(reported, "_valid")
	if !ok || !valid {
		o.Reason = "EGVP Enterprise's check of the proof of origin is not positive (" + e.ProofOfOrigin + ")"
		return false
	}
	if kind != "" && !strings.EqualFold(reported, kind) {
		o.Problems = append(o.Problems, fmt.Sprintf("EGVP Enterprise reports a VHN of a %s mailbox, the transport certificate is for a %s mailbox", reported, kind))
		o.Reason = "EGVP Enterprise's verdict contradicts the transport certificate"
		return false
	}
	if _, route := vhnKind(c); e.VhnText != "" && route != "" && e.VhnText != route {
		o.Problems = append(o.Problems, fmt.Sprintf("EGVP Enterprise words the route %q, the certificate's is %q", e.VhnText, route))
	}
	return true
}

// claim flags a Visitenkarte role that the certificate does not bear out.
func (o *Origin) claim(claimed, proven string) {
	if claimed != "" && claimed != proven {
		if proven == "" {
			proven = "none"
		}
		o.Problems = append(o.Problems, fmt.Sprintf("the Visitenkarte claims a %s mailbox, the transport certificate proves %s", claimed, proven))
	}
}

func transportCertificate(env *osci.Envelope) *cert.Certificate {
	if env.NonIntermediaryCertificates == nil {
		return nil
	}
	entries := env.NonIntermediaryCertificates.Role("SignatureCertificateOriginator")
	if len(entries) != 1 {
		return nil
	}
	return entries[0].Cert
}

func vhnKind(c *cert.Certificate) (string, string) {
	if !strings.Contains(c.Issuer.CommonName, "VHN CA") {
		return "", ""
	}
	for _, mb := range mailboxes {
		if c.Subject.CommonName == mb.cn {
			return mb.kind, mb.route
		}
	}
	return "", ""
}

func nameAttr(c *cert.Certificate, oid asn1.ObjectIdentifier) string {
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oid) {
			if s, ok := a.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

// inspected looks for the intermediary's positive inspection of the certificate in the
// process card: its mathematical check ok, its offline check valid, and an online check
// (OCSP) ok.
func (o *Origin) inspected(d Delivery, c *cert.Certificate) bool {
	if !d.IntermediaryVerified {
		o.Reason = "the intermediary's signature over the process card was not verified"
		return false
	}
	for _, pc := range d.Envelope.ProcessCards() {
		for _, in := range pc.Report {
			if in.X509Serial == nil || in.X509Serial.Cmp(c.SerialNumber) != 0 || !sameName(in.X509IssuerName, c) {
				continue
			}
			o.Checks = append(o.Checks, fmt.Sprintf("intermediary inspection: math %s, offline %s, online %s", in.MathResult, in.OfflineResult, in.OnlineResult))
			if in.MathResult == "ok" && in.OfflineResult == "valid" && in.OnlineResult == "ok" {
				return true
			}
			o.Reason = "the intermediary's inspection of the transport certificate is not positive"
			return false
		}
	}
	o.Reason = "the process card has no inspection of the transport certificate"
	return false
}

// sameName compares the inspection's issuer (an RFC 2253 string the intermediary
// wrote) with the certificate's by their common name and organisation, which is what
// survives the different string forms.
func sameName(issuer string, c *cert.Certificate) bool {
	cn := c.Issuer.CommonName
	return cn != "" && strings.Contains(issuer, "CN="+cn)
}

func (o *Origin) valid(c *cert.Certificate, m *Message) bool {
	if m.Received.IsZero() {
		o.Reason = "no time of receipt to check the certificate's validity at"
		return false
	}
	if !c.ValidAt(m.Received) {
		o.Reason = fmt.Sprintf("the transport certificate was not valid at receipt (%s)", m.Received.UTC().Format("2006-01-02 15:04:05Z"))
		return false
	}
	xc, err := c.X509()
	if err != nil || xc.KeyUsage != 0 && xc.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		o.Reason = "the transport certificate is not for signatures"
		return false
	}
	o.Checks = append(o.Checks, "valid at receipt")
	return true
}

// chain checks a VHN certificate's issuer signature against the configured anchors.
func (o *Origin) chain(c *cert.Certificate, cfg Config, kind string) bool {
	if kind == "" {
		return true
	}
	if len(cfg.VHNAnchors) == 0 {
		o.Checks = append(o.Checks, "issuer not checked: no VHN CA configured, the intermediary's inspection is relied on")
		return true
	}
	for _, a := range cfg.VHNAnchors {
		if bytes.Equal(a.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(a) == nil {
			o.Checks = append(o.Checks, "issued by the configured "+a.Subject.CommonName)
			return true
		}
	}
	o.Reason = "the VHN certificate is not issued by a configured VHN CA"
	return false
}
