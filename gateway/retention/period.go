package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is a retention period in calendar units: years, months and days
// are counted on the calendar, never as multiples of 24 hours, so that
// "10y" ends on the same calendar day ten years on whatever the leap years
// and clock changes in between.
type Period struct {
	Years, Months, Days int
}

// maxPeriodInput caps the text of a period before it is parsed.
const maxPeriodInput = 32

// MaxPeriod is the longest period accepted: 100 years. Longer is a typing
// error (no Aufbewahrungsfrist is longer; "dauernd" means archive, not keep).
var MaxPeriod = Period{Years: 100}

// ParsePeriod reads a period such as "10y", "6m", "30d" or "1y6m": numbers
// followed by their unit (y years, m months, d days), each unit at most
// once, in that order. The period must be at least one day and at most
// MaxPeriod.
func ParsePeriod(s string) (Period, error) {
	if len(s) > maxPeriodInput {
		return Period{}, fmt.Errorf("period %.32q…: longer than %d characters", s, maxPeriodInput)
	}
	var p Period
	rest, order := s, 0
	for rest != "" {
		i := 0
		for i < len(rest) && i < 6 && '0' <= rest[i] && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Period{}, fmt.Errorf("period %q: want numbers with a unit y, m or d, e.g. 10y or 1y6m", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return Period{}, fmt.Errorf("period %q: %w", s, err)
		}
		unit := strings.IndexByte("ymd", rest[i]) + 1
		if unit == 0 || unit <= order {
			return Period{}, fmt.Errorf("period %q: unit %q is not y, m or d, or not in that order", s, rest[i])
		}
		order = unit
		switch unit {
		case 1:
			p.Years = n
		case 2:
			p.Months = n
		case 3:
			p.Days = n
		}
		rest = rest[i+1:]
	}
	if err := p.Validate(); err != nil {
		return Period{}, fmt.Errorf("period %q: %w", s, err)
	}
	return p, nil
}

// Validate checks that the period is at least a day and at most MaxPeriod.
func (p Period) Validate() error {
	if p.Years < 0 || p.Months < 0 || p.Days < 0 {
		return errors.New("negative")
	}
	if p.Years == 0 && p.Months == 0 && p.Days == 0 {
		return errors.New("empty: a period of nothing would erase on receipt")
	}
	// Compared in hundredths of a day: a month counts as 30.44 days.
	if p.Years > 100 || p.Months > 1200 || p.Days > 36525 ||
		(p.Years*12+p.Months)*3044+p.Days*100 > 1200*3044 {
		return fmt.Errorf("longer than %s", MaxPeriod)
	}
	return nil
}

// String writes the period as ParsePeriod reads it.
func (p Period) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		unit byte
	}{{p.Years, 'y'}, {p.Months, 'm'}, {p.Days, 'd'}} {
		if u.n != 0 {
			b.WriteString(strconv.Itoa(u.n))
			b.WriteByte(u.unit)
		}
	}
	if b.Len() == 0 {
		return "0d"
	}
	return b.String()
}

// UnmarshalText reads the period from configuration (YAML "10y").
func (p *Period) UnmarshalText(b []byte) error {
	v, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText writes the period as configuration holds it.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// From is the event a retention period runs from.
type From string

// The starts of a retention period.
const (
	// FromReceipt runs the period from the day of receipt.
	FromReceipt From = "receipt"
	// FromEndOfYear runs the period from the end of the calendar year of
	// receipt. German retention periods run this way: § 147 Abs. 4 AO and
	// § 257 Abs. 5 HGB ("beginnt mit dem Schluss des Kalenderjahres"), and
	// the Aktenordnungen and Registraturrichtlinien of the administrations
	// count their Aufbewahrungsfristen from the end of the year in which
	// the file was closed. Poststelle does not know when a case file is
	// closed, so it counts from the year of receipt: the earliest the
	// mailroom's copy may go, never later than the file itself.
	FromEndOfYear From = "end-of-year"
)

// Rule is one retention rule: a period and what it runs from.
//
//	retention: {period: 10y, from: end-of-year}
type Rule struct {
	Period Period `yaml:"period" json:"period"`
	// From is FromReceipt or FromEndOfYear; empty means FromEndOfYear.
	From From `yaml:"from" json:"from"`
}

// Validate checks the period and the start.
func (r Rule) Validate() error {
	if err := r.Period.Validate(); err != nil {
		return fmt.Errorf("period: %w", err)
	}
	switch r.From {
	case "", FromReceipt, FromEndOfYear:
		return nil
	}
	return fmt.Errorf("from: %q is neither %q nor %q", r.From, FromReceipt, FromEndOfYear)
}

// String describes the rule in words, as ContentErased.Rule records it.
func (r Rule) String() string {
	if r.From == FromReceipt {
		return r.Period.String() + " from receipt"
	}
	return r.Period.String() + " from the end of the year of receipt"
}

// RetainUntil is the moment a message received at received may be erased
// under the rule: the end of the period's last day in loc, computed as the
// BGB computes periods (§ 187 Abs. 1, § 188 Abs. 2 and 3): the day of the
// event is not counted, the period ends at the end of the day that bears
// the same number as the day of the event (31 January plus one month ends
// with the last day of February, 29 February plus a year with 28 February),
// and days are added after years and months.
func (r Rule) RetainUntil(received time.Time, loc *time.Location) time.Time {
	y, m, d := received.In(loc).Date()
	if r.From != FromReceipt {
		m, d = time.December, 31
	}
	ty, tm := y+r.Period.Years, int(m)+r.Period.Months
	ty, tm = ty+(tm-1)/12, (tm-1)%12+1
	td := min(d, daysIn(ty, time.Month(tm)))
	// The end of the last day is the start of the next.
	return time.Date(ty, time.Month(tm), td+r.Period.Days+1, 0, 0, 0, 0, loc)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
