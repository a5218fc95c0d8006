package report

import (
	"fmt"
	"strings"
)

// WrittenFormPolicy says which qualified signatures replace the written form
// (Schriftformersatz, e.g. § 3a Abs. 2 VwVfG, § 126a BGB).
type WrittenFormPolicy struct {
	// AcceptSeal lets a qualified electronic seal (QESeal) replace the
	// written form. Set it only where the law allows a seal, e.g. for
	// documents a legal person or authority issues; a citizen's application
	// needs a QES.
	AcceptSeal bool
}

// EvaluateWrittenForm decides whether a document with these signatures is
// schriftformersetzend: at least one signature that is TOTAL_PASSED and a
// qualified electronic signature (QESig), or a qualified seal (QESeal) when
// the policy accepts seals. Countersignatures do not count: they sign another
// signature, not the document. The reason names the deciding signature, or
// explains for each candidate why it does not qualify.
func EvaluateWrittenForm(sigs []Signature, p WrittenFormPolicy) (satisfied bool, reason string) {
	var why []string
	direct := 0
	for _, s := range sigs {
		if s.CounterSignatureOf != "" {
			continue
		}
		direct++
		ok, r := replacesWrittenForm(s, p)
		if ok {
			return true, r
		}
		why = append(why, r)
	}
	if direct == 0 {
		return false, "the document carries no signature"
	}
	return false, "no signature replaces the written form: " + strings.Join(why, "; ")
}

func replacesWrittenForm(s Signature, p WrittenFormPolicy) (bool, string) {
	if s.Indication != TotalPassed {
		sub := ""
		if s.SubIndication != NoSubIndication {
			sub = "/" + string(s.SubIndication)
		}
		return false, fmt.Sprintf("signature %s is %s%s", s.ID, s.Indication, sub)
	}
	switch s.Qualification {
	case QESig:
		return true, fmt.Sprintf("signature %s is a valid qualified electronic signature (QESig)", s.ID)
	case QESeal:
		if p.AcceptSeal {
			return true, fmt.Sprintf("signature %s is a valid qualified electronic seal (QESeal), which is accepted here", s.ID)
		}
		return false, fmt.Sprintf("signature %s is a qualified seal (QESeal), which does not replace the written form here", s.ID)
	}
	return false, fmt.Sprintf("signature %s is valid but not qualified (%s)", s.ID, s.Qualification)
}

// ApplyWrittenForm sets r's WrittenFormSatisfied and WrittenFormReason from
// its signatures and, when they do not satisfy it, from the route the
// message came on (Transmission): a secure route with a verified VHN
// stands in for the qualified signature.
func (r *Report) ApplyWrittenForm(p WrittenFormPolicy) {
	r.WrittenFormSatisfied, r.WrittenFormReason = EvaluateWrittenForm(r.Signatures, p)
	if !r.WrittenFormSatisfied && r.Transmission != nil {
		r.WrittenFormSatisfied, r.WrittenFormReason = r.Transmission.writtenForm(r.WrittenFormReason)
	}
}
