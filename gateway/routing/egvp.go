package routing

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/poststelle/poststelle/gateway"
)

// egvpCond is a rule's compiled conditions on the EGVP fields.
type egvpCond struct {
	codes, types, safeIDs, origins map[string]struct{}
	fileNumbers                    []*regexp.Regexp
	eeb                            tri
}

var origins = map[string]bool{"vhn": true, "sender-signed": true, "none": true}

func compileEGVP(m MatchSpec) (*egvpCond, error) {
	x := m.XJustiz
	if x == nil && len(m.SafeID) == 0 && len(m.Origin) == 0 {
		return nil, nil
	}
	c := &egvpCond{}
	if len(m.SafeID) > 0 {
		c.safeIDs = set(m.SafeID)
	}
	for _, o := range m.Origin {
		if !origins[o] {
			return nil, fmt.Errorf("origin: %q is not vhn, sender-signed or none", o)
		}
	}
	if len(m.Origin) > 0 {
		c.origins = set(m.Origin)
	}
	if x == nil {
		return c, nil
	}
	if len(x.RecipientCode) > 0 {
		c.codes = set(x.RecipientCode)
	}
	if len(x.MessageType) > 0 {
		c.types = set(x.MessageType)
	}
	c.eeb = triOf(x.EEBRequested)
	for i, g := range x.Aktenzeichen {
		re, err := compileGlob(g)
		if err != nil {
			return nil, fmt.Errorf("xjustiz.aktenzeichen[%d]: %w", i, err)
		}
		c.fileNumbers = append(c.fileNumbers, re)
	}
	return c, nil
}

// compileGlob turns an Aktenzeichen glob into an anchored, case-insensitive
// expression over the blank-folded file number.
func compileGlob(g string) (*regexp.Regexp, error) {
	g = foldBlanks(g)
	if g == "" || len(g) > MaxPatternLen {
		return nil, fmt.Errorf("glob %q is empty or longer than %d bytes", g, MaxPatternLen)
	}
	var b strings.Builder
	b.WriteString("(?i)^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func foldBlanks(s string) string { return strings.Join(strings.Fields(s), " ") }

// mismatch says which EGVP condition e fails, "" when all hold.
func (c *egvpCond) mismatch(e *gateway.EGVPFields) string {
	if e == nil {
		return "not an EGVP message"
	}
	switch {
	case c.safeIDs != nil && !inSet(c.safeIDs, e.SenderSafeID):
		return fmt.Sprintf("sender SAFE-ID %q is not listed", e.SenderSafeID)
	case c.origins != nil && !inSet(c.origins, e.Origin):
		return fmt.Sprintf("origin %q is not listed", e.Origin)
	case c.codes != nil && !inSet(c.codes, e.RecipientCode):
		return fmt.Sprintf("XJustiz recipient code %q is not listed", e.RecipientCode)
	case c.types != nil && !inSet(c.types, e.MessageType):
		return fmt.Sprintf("XJustiz message type %q is not listed", e.MessageType)
	case !c.eeb.holds(e.EEBRequested):
		return fmt.Sprintf("eEB requested is %t", e.EEBRequested)
	case len(c.fileNumbers) > 0 && !c.matchFileNumber(e):
		return fmt.Sprintf("no Aktenzeichen glob matches %q or %q", e.SenderFileNumber, e.RecipientFileNumber)
	}
	return ""
}

func (c *egvpCond) matchFileNumber(e *gateway.EGVPFields) bool {
	for _, fn := range []string{e.SenderFileNumber, e.RecipientFileNumber} {
		if fn == "" {
			continue
		}
		fn = foldBlanks(fn)
		for _, re := range c.fileNumbers {
			if re.MatchString(fn) {
				return true
			}
		}
	}
	return false
}

func inSet(m map[string]struct{}, v string) bool {
	_, ok := m[v]
	return ok
}
