package egvp

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// BusinessCard is the sender's Visitenkarte (visitenkarte.xml): the SAFE directory entry
// as the sending client copied it into the message. It is the sender's claim, checked
// against the transport certificate by the proof of origin.
type BusinessCard struct {
	Organisation, OrganisationUnit string
	Salutation, Title, FirstName   string
	Name                           string
	Street, HouseNumber, PostCode  string
	City, State, Country           string
	Email, Phone, Mobile, Fax      string
	// SafeID is Nutzer_ID, the mailbox's SAFE-ID; Role is Rollen_ID (egvp_bebpo,
	// egvp_justiz, ...); ExternalID is Externe_ID.
	SafeID, Role, ExternalID string
}

var cardFields = map[string]func(*BusinessCard) *string{
	"Organisation": func(c *BusinessCard) *string { return &c.Organisation }, "Organisationszusatz": func(c *BusinessCard) *string { return &c.OrganisationUnit },
	"Anrede": func(c *BusinessCard) *string { return &c.Salutation }, "Titel": func(c *BusinessCard) *string { return &c.Title },
	"Vorname": func(c *BusinessCard) *string { return &c.FirstName }, "Name": func(c *BusinessCard) *string { return &c.Name },
	"Strasse": func(c *BusinessCard) *string { return &c.Street }, "Hausnummer": func(c *BusinessCard) *string { return &c.HouseNumber },
	"Postleitzahl": func(c *BusinessCard) *string { return &c.PostCode }, "Ort": func(c *BusinessCard) *string { return &c.City },
	"Bundesland": func(c *BusinessCard) *string { return &c.State }, "Land": func(c *BusinessCard) *string { return &c.Country },
	"E-Mail": func(c *BusinessCard) *string { return &c.Email }, "Telefon": func(c *BusinessCard) *string { return &c.Phone },
	"Mobiltelefon": func(c *BusinessCard) *string { return &c.Mobile }, "Fax": func(c *BusinessCard) *string { return &c.Fax },
	"Nutzer_ID": func(c *BusinessCard) *string { return &c.SafeID }, "Rollen_ID": func(c *BusinessCard) *string { return &c.Role },
	"Externe_ID": func(c *BusinessCard) *string { return &c.ExternalID },
}

// Description is the older message description nachricht.xml, which EGVP clients
// still send beside (or instead of) the XJustiz message.
type Description struct {
	// Type is Nachrichtentyp ("Allgemeine Nachricht", "Testnachricht").
	Type string
	// SignatureLevel is Signaturniveau ("no", ...).
	SignatureLevel string
	// RecipientSafeID is Empfaengerkennung.
	RecipientSafeID string
	Subject         string
	// RecipientFileNumber and SenderFileNumber are Aktenzeichen_Empfaenger and
	// Aktenzeichen_Absender, trimmed.
	RecipientFileNumber, SenderFileNumber string
	Text                                  string
}

var descriptionFields = map[string]func(*Description) *string{
	"Nachrichtentyp": func(d *Description) *string { return &d.Type }, "Signaturniveau": func(d *Description) *string { return &d.SignatureLevel },
	"Empfaengerkennung": func(d *Description) *string { return &d.RecipientSafeID }, "Betreff": func(d *Description) *string { return &d.Subject },
	"Aktenzeichen_Empfaenger": func(d *Description) *string { return &d.RecipientFileNumber }, "Aktenzeichen_Absender": func(d *Description) *string { return &d.SenderFileNumber },
	"Freitext": func(d *Description) *string { return &d.Text },
}

// flatLimits bound the small flat documents (Visitenkarte, nachricht.xml).
var flatLimits = xmldsig.Limits{MaxBytes: 256 << 10, MaxDepth: 4, MaxNodes: 200}

// parseFlat reads a document of one root with text-only children into the fields of
// the table; unknown children are returned as problems.
func parseFlat(data []byte, root string, set func(name, value string) bool) ([]string, error) {
	doc, err := xmldsig.Parse(data, flatLimits)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", root, err)
	}
	if doc.Root.Space != "" || doc.Root.Local != root {
		return nil, fmt.Errorf("reading %s: the document element is <%s>", root, doc.Root.Local)
	}
	var problems []string
	for _, k := range doc.Root.Elements() {
		if len(k.Elements()) > 0 || !set(k.Local, k.Text()) {
			problems = append(problems, fmt.Sprintf("%s: unexpected element %s", root, k.Local))
		}
	}
	return problems, nil
}

func parseBusinessCard(data []byte) (*BusinessCard, []string, error) {
	c := &BusinessCard{}
	problems, err := parseFlat(data, "Visitenkarte", func(name, value string) bool {
		f, ok := cardFields[name]
		if ok {
			*f(c) = strings.TrimSpace(value)
		}
		return ok
	})
	return c, problems, err
}

func parseDescription(data []byte) (*Description, []string, error) {
	d := &Description{}
	problems, err := parseFlat(data, "Nachricht", func(name, value string) bool {
		f, ok := descriptionFields[name]
		if ok {
			if name == "Freitext" {
				*f(d) = value // the text keeps its lines
			} else {
				*f(d) = strings.TrimSpace(value)
			}
		}
		return ok
	})
	return d, problems, err
}

const (
	maxInfoEntries = 256
	maxInfoBytes   = 256 << 10
)

// parseInfo reads additional_infos, a Java properties file the sending client writes
// (user_id, subject, signature_level): key=value lines, # comments, backslash escapes.
// Line continuations are not used by EGVP clients and are not joined.
func parseInfo(data []byte) (map[string]string, error) {
	if len(data) > maxInfoBytes {
		return nil, fmt.Errorf("reading additional_infos: %d bytes exceed the %d byte limit", len(data), maxInfoBytes)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("reading additional_infos: not UTF-8")
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		if len(out) == maxInfoEntries {
			return nil, fmt.Errorf("reading additional_infos: more than %d entries", maxInfoEntries)
		}
		key, value := splitProperty(line)
		out[unescapeProperty(key)] = unescapeProperty(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading additional_infos: %w", err)
	}
	return out, nil
}

func splitProperty(line string) (string, string) {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '=', ':':
			return strings.TrimSpace(line[:i]), strings.TrimLeft(line[i+1:], " \t\f")
		}
	}
	return line, ""
}

func unescapeProperty(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'u':
			if i+4 < len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+5], 16, 16); err == nil {
					b.WriteRune(rune(r))
					i += 4
					continue
				}
			}
			b.WriteByte('u')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
