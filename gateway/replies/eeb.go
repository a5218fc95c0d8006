package replies

import (
	"fmt"
	"strings"
	"time"

	// The office's calendar day is German civil time wherever the gateway
	// runs; a container without a zoneinfo database must still know it.
	_ "time/tzdata"
	"unicode"
	"unicode/utf8"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/xjustiz"
)

// MaxEEBReasonBytes caps the free text of an eEB refusal (stoerungsGrund).
const MaxEEBReasonBytes = 2000

// EEBEarliestMargin is how many days before the day of receipt an
// acknowledged date may lie. The acknowledged date is when the office took
// note of the documents, and the receipt time of an EGVP message is no later
// than the office could: the intermediary's time of the Zugang in the mailbox
// (OSCI) or the time the gateway fetched it (EGVP Enterprise). The one day
// absorbs a clock at either end that is off around midnight, nothing more. A
// date before it is almost certainly a typing error, and one the court would
// query, since the date it accepts starts the deadlines that run against the
// authority.
const EEBEarliestMargin = 1

// officeZone is the calendar the acknowledged date is given in.
const officeZone = "Europe/Berlin"

// EEBSubject is the default subject of an eEB answer: "EB zu: " and the
// court's Aktenzeichen (the request's sender file number), as the EGVP
// sender's nachricht.xml writes it.
func EEBSubject(received *gateway.MessageReceived) string {
	az := ""
	if received.EGVP != nil {
		az = received.EGVP.SenderFileNumber
	}
	if az == "" {
		return ReplySubject(received.Subject)
	}
	return clip("EB zu: " + clean(az))
}

// CheckEEB validates an eEB answer on its own: a known decision with the
// fields it needs and none it cannot have. CheckEEBFor adds what depends on
// the request.
func CheckEEB(a *gateway.EEBAnswer) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: eeb: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch a.Decision {
	case gateway.EEBAcknowledged:
		if a.ReceivedOn == "" {
			return invalid("receivedOn: required to acknowledge (YYYY-MM-DD)")
		}
		if _, err := time.Parse(time.DateOnly, a.ReceivedOn); err != nil {
			return invalid("receivedOn: %q is not a date YYYY-MM-DD", a.ReceivedOn)
		}
		if a.RefusalCode != "" || a.Reason != "" {
			return invalid("refusalCode and reason go with a refusal only")
		}
	case gateway.EEBRefused:
		switch a.RefusalCode {
		case xjustiz.RefusalNotParty, xjustiz.RefusalUnclear, xjustiz.RefusalSignatures:
		case "":
			return invalid("refusalCode: required to refuse (Codeliste eeb.stoerungs-id 2.1: 1, 2 or 3)")
		default:
			return invalid("refusalCode: %q is not in the Codeliste eeb.stoerungs-id 2.1 (1, 2 or 3)", a.RefusalCode)
		}
		if a.ReceivedOn != "" {
			return invalid("receivedOn goes with an acknowledgement only")
		}
		switch {
		case len(a.Reason) > MaxEEBReasonBytes:
			return invalid("reason: longer than %d bytes", MaxEEBReasonBytes)
		case !utf8.ValidString(a.Reason):
			return invalid("reason: not UTF-8")
		case strings.ContainsFunc(a.Reason, unicode.IsControl):
			return invalid("reason: line breaks and control characters are not allowed")
		}
	case "":
		return invalid("decision: required (acknowledged or refused)")
	default:
		return invalid("decision: %q is neither acknowledged nor refused", a.Decision)
	}
	return nil
}

// CheckEEBFor validates an eEB answer against the message it answers, at
// now: the message must be an EGVP message that asks for an eEB (else
// ErrCannotAnswer); an acknowledged date lies between the day of receipt
// less EEBEarliestMargin and today, in German civil time; a refusal needs a
// request of XJustiz 3.x, since the 2.x refusal elements are not in the
// material the EGVP sender follows (else ErrInvalid).
func CheckEEBFor(a *gateway.EEBAnswer, received *gateway.MessageReceived, now time.Time) error {
	if err := CheckEEB(a); err != nil {
		return err
	}
	if received.Channel != gateway.ChannelEGVP {
		return fmt.Errorf("%w: an eEB is answered on EGVP only; this message came on %s", ErrCannotAnswer, received.Channel)
	}
	if received.EGVP == nil || !received.EGVP.EEBRequested {
		return fmt.Errorf("%w: the message asks for no eEB", ErrCannotAnswer)
	}
	loc, err := time.LoadLocation(officeZone)
	if err != nil {
		return fmt.Errorf("replies: eeb: load %s: %w", officeZone, err)
	}
	switch a.Decision {
	case gateway.EEBAcknowledged:
		on, _ := time.ParseInLocation(time.DateOnly, a.ReceivedOn, loc)
		today := day(now.In(loc))
		earliest := day(received.ReceivedAt.In(loc)).AddDate(0, 0, -EEBEarliestMargin)
		if on.After(today) {
			return fmt.Errorf("%w: eeb: receivedOn: %s is in the future (today is %s)", ErrInvalid, a.ReceivedOn, today.Format(time.DateOnly))
		}
		if on.Before(earliest) {
			return fmt.Errorf("%w: eeb: receivedOn: %s is before the message reached the mailbox (%s)", ErrInvalid,
				a.ReceivedOn, received.ReceivedAt.In(loc).Format(time.DateOnly))
		}
	case gateway.EEBRefused:
		if v := received.EGVP.XJustizVersion; strings.HasPrefix(v, "2.") {
			return fmt.Errorf("%w: eeb: a refusal can be sent only to a request of XJustiz 3.x; this one is XJustiz %s: acknowledge, or answer the court by other means",
				ErrInvalid, v)
		}
	}
	return nil
}

func day(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
}

func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD")))
}

func clip(s string) string {
	for len(s) > MaxSubjectBytes {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// eebMessageKey is the log's message key of the n-th eEB answer to a
// stream: the log refuses a second event with the same key, so two offices
// or two clicks racing with different request keys cannot both record one.
// n counts the answers before that failed for good, after which another may
// be sent.
func eebMessageKey(stream string, n int) string {
	return fmt.Sprintf("eeb/%s/%d", stream, n)
}
