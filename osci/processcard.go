package osci

import (
	"math/big"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Timestamp is an osci:Timestamp-typed value (Creation, Forwarding, Reception, an
// Inspection's Timestamp): a plain time the intermediary states, or a cryptographic one
// (an RFC 3161 token) with its algorithm.
type Timestamp struct {
	Plain time.Time
	// Cryptographic is the token's DER; Algorithm the URI of its hash.
	Cryptographic []byte
	Algorithm     string
}

// IsCryptographic reports a token rather than a plain time.
func (t Timestamp) IsCryptographic() bool { return t.Cryptographic != nil }

// ProcessCardBundle is the intermediary's record of one delivery (OSCI 1.2 §6.3,
// "Laufzettel"): when it was created, forwarded and received, and how each certificate of
// the delivery was checked.
type ProcessCardBundle struct {
	// Name is the element's local name: ProcessCardBundle, or RequestProcessCardBundle
	// and ReplyProcessCardBundle in responseToMediateDelivery.
	Name      string
	MessageID string
	Card      ProcessCard
	Report    []Inspection
}

// ProcessCard is the osci:ProcessCard of a bundle.
type ProcessCard struct {
	RecentModification time.Time
	Creation           *Timestamp
	Forwarding         *Timestamp
	Reception          *Timestamp
	Subject            string
}

// Inspection is how the intermediary checked one certificate.
type Inspection struct {
	Timestamp       Timestamp
	X509SubjectName string
	X509IssuerName  string
	X509Serial      *big.Int
	// CertType is advanced, qualified, accredited or unknown.
	CertType string
	// MathResult (ok, corrupted, indeterminate) is the check of the certificate's
	// signature, OfflineResult (valid, invalid, indeterminate) that of its chain and
	// validity period.
	MathResult    string
	OfflineResult string
	// OnlineResult (ok, revoked) is empty when no online check was made.
	OnlineResult string
	OCSP         []byte
	CRL          *time.Time
	LDAP         []byte
}

const maxInspections = 1024

func parseTimestamp(e *xmldsig.Element) (*Timestamp, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 {
		return nil, formatErr("<%s> must hold Plain or Cryptographic", e.Local)
	}
	k := kids[0]
	switch {
	case isOSCI(k, "Plain"):
		s, err := text(k, 64)
		if err != nil {
			return nil, err
		}
		t, err := dateTime(s)
		if err != nil {
			return nil, err
		}
		return &Timestamp{Plain: t}, nil
	case isOSCI(k, "Cryptographic"):
		der, err := base64Text(k, 64<<10)
		if err != nil {
			return nil, err
		}
		if len(der) == 0 {
			return nil, formatErr("empty osci:Cryptographic")
		}
		alg, _ := k.Attr("Algorithm")
		return &Timestamp{Cryptographic: der, Algorithm: alg}, nil
	}
	return nil, formatErr("<%s> in <%s>", k.Local, e.Local)
}

func parseProcessCardBundle(e *xmldsig.Element) (ProcessCardBundle, error) {
	b := ProcessCardBundle{Name: e.Local}
	kids, err := onlyElements(e)
	if err != nil {
		return b, err
	}
	if len(kids) != 3 || !isOSCI(kids[0], "MessageId") || !isOSCI(kids[1], "ProcessCard") || !isOSCI(kids[2], "InspectionReport") {
		return b, formatErr("<%s> must hold MessageId, ProcessCard, InspectionReport", e.Local)
	}
	if b.MessageID, err = messageID(kids[0]); err != nil {
		return b, err
	}
	if b.Card, err = parseProcessCard(kids[1]); err != nil {
		return b, err
	}
	b.Report, err = parseInspectionReport(kids[2])
	return b, err
}

// messageID reads an osci:MessageId, base64 by its type; the value stays as written
// since it is an opaque key that is echoed back.
func messageID(e *xmldsig.Element) (string, error) {
	s, err := text(e, 1024)
	if err != nil {
		return "", err
	}
	if _, err := base64Text(e, 1024); err != nil || s == "" {
		return "", formatErr("MessageId %.40q is not base64", s)
	}
	return s, nil
}

func parseProcessCard(e *xmldsig.Element) (ProcessCard, error) {
	var c ProcessCard
	rm, ok := e.Attr("RecentModification")
	if !ok {
		return c, formatErr("osci:ProcessCard without RecentModification")
	}
	var err error
	if c.RecentModification, err = dateTime(rm); err != nil {
		return c, err
	}
	kids, err := onlyElements(e)
	if err != nil {
		return c, err
	}
	order := []string{"Creation", "Forwarding", "Reception", "Subject"}
	at := 0
	for _, k := range kids {
		for at < len(order) && !isOSCI(k, order[at]) {
			at++
		}
		if at == len(order) {
			return c, formatErr("<%s> out of place in osci:ProcessCard", k.Local)
		}
		switch order[at] {
		case "Creation":
			c.Creation, err = parseTimestamp(k)
		case "Forwarding":
			c.Forwarding, err = parseTimestamp(k)
		case "Reception":
			c.Reception, err = parseTimestamp(k)
		case "Subject":
			c.Subject, err = text(k, maxSubjectText)
		}
		if err != nil {
			return c, err
		}
		at++
	}
	return c, nil
}

func parseInspectionReport(e *xmldsig.Element) ([]Inspection, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) > maxInspections {
		return nil, formatErr("%d inspections", len(kids))
	}
	out := make([]Inspection, 0, len(kids))
	for _, k := range kids {
		if !isOSCI(k, "Inspection") {
			return nil, formatErr("<%s> in osci:InspectionReport", k.Local)
		}
		in, err := parseInspection(k)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func parseInspection(e *xmldsig.Element) (Inspection, error) {
	var in Inspection
	kids, err := onlyElements(e)
	if err != nil {
		return in, err
	}
	names := []string{"Timestamp", "X509SubjectName", "X509IssuerName", "X509SerialNumber", "CertType", "MathResult", "OfflineResult"}
	if len(kids) < len(names) || len(kids) > len(names)+1 {
		return in, formatErr("osci:Inspection with %d elements", len(kids))
	}
	for i, n := range names {
		if !isOSCI(kids[i], n) {
			return in, formatErr("osci:Inspection: <%s> where %s belongs", kids[i].Local, n)
		}
	}
	ts, err := parseTimestamp(kids[0])
	if err != nil {
		return in, err
	}
	in.Timestamp = *ts
	if in.X509SubjectName, err = text(kids[1], maxShortText); err != nil {
		return in, err
	}
	if in.X509IssuerName, err = text(kids[2], maxShortText); err != nil {
		return in, err
	}
	serial, err := text(kids[3], 128)
	if err != nil {
		return in, err
	}
	var ok bool
	if in.X509Serial, ok = new(big.Int).SetString(serial, 10); !ok {
		return in, formatErr("X509SerialNumber %.40q", serial)
	}
	if in.CertType, err = enumAttr(kids[4], "Type", []string{"advanced", "qualified", "accredited", "unknown"}); err != nil {
		return in, err
	}
	if in.MathResult, err = enumAttr(kids[5], "Result", []string{"ok", "corrupted", "indeterminate"}); err != nil {
		return in, err
	}
	if in.OfflineResult, err = enumAttr(kids[6], "Result", []string{"valid", "invalid", "indeterminate"}); err != nil {
		return in, err
	}
	if len(kids) == len(names) {
		return in, nil
	}
	if !isOSCI(kids[7], "OnlineResult") {
		return in, formatErr("<%s> in osci:Inspection", kids[7].Local)
	}
	return in, parseOnlineResult(kids[7], &in)
}

func parseOnlineResult(e *xmldsig.Element, in *Inspection) error {
	var err error
	if in.OnlineResult, err = enumValue(e, "Result", []string{"ok", "revoked"}); err != nil {
		return err
	}
	kids, err := onlyElements(e)
	if err != nil {
		return err
	}
	for _, k := range kids {
		switch {
		// The schema spells it OSCP; the library writes OCSP.
		case (isOSCI(k, "OCSP") || isOSCI(k, "OSCP")) && in.OCSP == nil:
			in.OCSP, err = base64Text(k, 256<<10)
		case isOSCI(k, "CRL") && in.CRL == nil:
			var s string
			if s, err = text(k, 64); err == nil {
				var t time.Time
				t, err = dateTime(s)
				in.CRL = &t
			}
		case isOSCI(k, "LDAP") && in.LDAP == nil:
			in.LDAP, err = base64Text(k, 256<<10)
		default:
			return formatErr("<%s> in osci:OnlineResult", k.Local)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func enumAttr(e *xmldsig.Element, name string, allowed []string) (string, error) {
	if len(e.Elements()) > 0 {
		return "", formatErr("<%s> must be empty", e.Local)
	}
	return enumValue(e, name, allowed)
}

func enumValue(e *xmldsig.Element, name string, allowed []string) (string, error) {
	v, _ := e.Attr(name)
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", formatErr("<%s %s=%.40q>", e.Local, name, v)
}
