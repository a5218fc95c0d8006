package retention

import (
	"strings"
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Period
		err  string
	}{
		{in: "10y", want: Period{Years: 10}},
		{in: "6m", want: Period{Months: 6}},
		{in: "30d", want: Period{Days: 30}},
		{in: "1y6m", want: Period{Years: 1, Months: 6}},
		{in: "1y2m3d", want: Period{Years: 1, Months: 2, Days: 3}},
		{in: "100y", want: Period{Years: 100}},
		{in: "1200m", want: Period{Months: 1200}},
		{in: "36525d", want: Period{Days: 36525}},
		{in: "", err: "empty"},
		{in: "0y", err: "empty"},
		{in: "101y", err: "longer than 100y"},
		{in: "99y13m", err: "longer than 100y"},
		{in: "100y1d", err: "longer than 100y"},
		{in: "10", err: "unit"},
		{in: "y", err: "unit"},
		{in: "10w", err: "not y, m or d"},
		{in: "6m1y", err: "order"},
		{in: "1y1y", err: "order"},
		{in: "10 y", err: "unit"},
		{in: "-1y", err: "unit"},
		{in: "9999999y", err: "unit"},
		{in: strings.Repeat("1", 40) + "y", err: "longer than 32 characters"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePeriod(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePeriod(%q) = %v, %v; want an error mentioning %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePeriod(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := ParsePeriod(got.String()); err != nil || back != got {
				t.Fatalf("String() %q does not parse back: %v, %v", got.String(), back, err)
			}
		})
	}
}

func TestRetainUntil(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name     string
		rule     Rule
		received time.Time
		want     string // the first moment of erasure, Berlin time
	}{
		{"end of year, 10y", Rule{Period{Years: 10}, FromEndOfYear}, at("2026-03-05 10:00"), "2037-01-01 00:00"},
		{"end of year is the default", Rule{Period: Period{Years: 10}}, at("2026-03-05 10:00"), "2037-01-01 00:00"},
		{"end of year, received on new year's eve", Rule{Period{Years: 1}, FromEndOfYear}, at("2026-12-31 23:59"), "2028-01-01 00:00"},
		{"end of year, received on new year's day", Rule{Period{Years: 1}, FromEndOfYear}, at("2027-01-01 00:01"), "2029-01-01 00:00"},
		// 23:30 UTC on 31 December is already the new year in Berlin.
		{"end of year, the year is the office's", Rule{Period{Years: 1}, FromEndOfYear},
			time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), "2029-01-01 00:00"},
		{"end of year, 6m", Rule{Period{Months: 6}, FromEndOfYear}, at("2026-05-01 12:00"), "2027-07-01 00:00"},
		{"receipt, 10y", Rule{Period{Years: 10}, FromReceipt}, at("2026-03-05 10:00"), "2036-03-06 00:00"},
		{"receipt, leap day plus a year", Rule{Period{Years: 1}, FromReceipt}, at("2024-02-29 08:00"), "2025-03-01 00:00"},
		{"receipt, leap day plus four years", Rule{Period{Years: 4}, FromReceipt}, at("2024-02-29 08:00"), "2028-03-01 00:00"},
		{"receipt, 31 January plus a month", Rule{Period{Months: 1}, FromReceipt}, at("2026-01-31 08:00"), "2026-03-01 00:00"},
		{"receipt, 31 January plus a month, leap year", Rule{Period{Months: 1}, FromReceipt}, at("2028-01-31 08:00"), "2028-03-01 00:00"},
		{"receipt, 31 March plus a month", Rule{Period{Months: 1}, FromReceipt}, at("2026-03-31 08:00"), "2026-05-01 00:00"},
		{"receipt, 30 November plus 3 months", Rule{Period{Months: 3}, FromReceipt}, at("2026-11-30 08:00"), "2027-03-01 00:00"},
		{"receipt, 31 August plus 18 months", Rule{Period{Years: 1, Months: 6}, FromReceipt}, at("2026-08-31 08:00"), "2028-03-01 00:00"},
		{"receipt, 30 days over the year's end", Rule{Period{Days: 30}, FromReceipt}, at("2026-12-15 08:00"), "2027-01-15 00:00"},
		{"receipt, days over February", Rule{Period{Days: 1}, FromReceipt}, at("2028-02-28 23:00"), "2028-03-01 00:00"},
		{"receipt, month then days", Rule{Period{Months: 1, Days: 1}, FromReceipt}, at("2026-01-31 08:00"), "2026-03-02 00:00"},
		// Across the change to summer time a day is 23 hours, not 24.
		{"receipt, days across the clock change", Rule{Period{Days: 1}, FromReceipt}, at("2026-03-28 12:00"), "2026-03-30 00:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.rule.RetainUntil(tc.received, berlin)
			if want := at(tc.want); !got.Equal(want) {
				t.Fatalf("RetainUntil(%s) = %s, want %s", tc.received, got.In(berlin), want)
			}
		})
	}
}

func TestRuleValidateAndString(t *testing.T) {
	if err := (Rule{Period: Period{Years: 1}, From: "closing"}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "from:") {
		t.Fatalf("bad from: %v", err)
	}
	if err := (Rule{}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "period:") {
		t.Fatalf("empty period: %v", err)
	}
	if got := (Rule{Period{Years: 10}, FromEndOfYear}).String(); got != "10y from the end of the year of receipt" {
		t.Fatalf("String() = %q", got)
	}
	if got := (Rule{Period{Months: 6}, FromReceipt}).String(); got != "6m from receipt" {
		t.Fatalf("String() = %q", got)
	}
}

func TestPolicyDecide(t *testing.T) {
	def := Rule{Period: Period{Years: 1}}
	p, err := NewPolicy(Config{Default: &def}, map[string]Rule{
		"bauamt":   {Period: Period{Years: 10}},
		"kasse":    {Period: Period{Years: 6}, From: FromReceipt},
		"ordnungs": {Period: Period{Months: 6}, From: FromReceipt}})
	if err != nil {
		t.Fatal(err)
	}
	rcv := time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		offices []string
		office  string
		text    string
		err     bool
	}{
		{"never routed", nil, "", "default (never routed to an office): 1y from the end of the year of receipt", false},
		{"one office", []string{"kasse"}, "kasse", "office kasse: 6y from receipt", false},
		{"the longest of two", []string{"ordnungs", "bauamt"}, "bauamt", "office bauamt: 10y from the end of the year of receipt", false},
		{"an office without a period keeps it", []string{"bauamt", "archiv"}, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Decide(tc.offices, rcv)
			if tc.err {
				if err == nil {
					t.Fatalf("Decide = %+v, want ErrNoRule", d)
				}
				return
			}
			if err != nil || d.Office != tc.office || d.Text() != tc.text {
				t.Fatalf("Decide = %+v (%q), %v; want office %q, %q", d, d.Text(), err, tc.office, tc.text)
			}
		})
	}
	none, err := NewPolicy(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Decide(nil, rcv); err == nil {
		t.Fatal("no default rule: a message never routed must be kept")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"bad default", Config{Default: &Rule{}}, "default.period"},
		{"short interval", Config{Interval: time.Millisecond}, "interval"},
		{"batch", Config{Batch: -1}, "batch"},
		{"big batch", Config{Batch: 1 << 20}, "batch"},
		{"zone", Config{TimeZone: "Mars/Olympus"}, "time_zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParsePeriod: a period comes from configuration; nothing may panic,
// and what parses is within bounds and writes back to itself.
func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"10y", "1y6m", "30d", "1y2m3d", "", "0d", "101y", "6m1y", "99999d", "1y1y", "y", "12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeriod(s)
		if err != nil {
			return
		}
		if p.Validate() != nil {
			t.Fatalf("%q parsed to an invalid %v", s, p)
		}
		if back, err := ParsePeriod(p.String()); err != nil || back != p {
			t.Fatalf("%q: %v writes as %q, which reads %v, %v", s, p, p.String(), back, err)
		}
		until := Rule{Period: p}.RetainUntil(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), time.UTC)
		if until.Year() > 2128 || !until.After(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%v gives %s", p, until)
		}
	})
}
