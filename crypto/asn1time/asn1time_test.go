package asn1time

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func date(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

func TestParseUTC(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  string // substring of the error; empty means success
	}{
		{in: "240229235959Z", want: date(2024, 2, 29, 23, 59, 59, 0)},
		{in: "491231235959Z", want: date(2049, 12, 31, 23, 59, 59, 0)}, // last year of the 20YY half
		{in: "500101000000Z", want: date(1950, 1, 1, 0, 0, 0, 0)},      // 50 means 1950
		{in: "991231235959Z", want: date(1999, 12, 31, 23, 59, 59, 0)},
		{in: "000101000000Z", want: date(2000, 1, 1, 0, 0, 0, 0)},
		{in: "2402292359Z", err: "want YYMMDDHHMMSSZ"},       // no seconds
		{in: "240229235959+0100", err: "want YYMMDDHHMMSSZ"}, // offset
		{in: "240229235959z", err: "want YYMMDDHHMMSSZ"},
		{in: "240229235959.5Z", err: "want YYMMDDHHMMSSZ"},
		{in: "230229120000Z", err: "day out of range"}, // 2023 is no leap year
		{in: "241301120000Z", err: "out of range"},
		{in: "240100120000Z", err: "out of range"},
		{in: "240101240000Z", err: "out of range"},
		{in: "240101126000Z", err: "out of range"},
		{in: "240101120060Z", err: "out of range"}, // no leap seconds
		{in: "24010112000 Z", err: "non-digit"},
		{in: "+40101120000Z", err: "non-digit"},
		{in: "", err: "want YYMMDDHHMMSSZ"},
	}
	for _, tt := range tests {
		got, err := ParseUTC([]byte(tt.in))
		check(t, "ParseUTC", tt.in, got, err, tt.want, tt.err)
	}
}

func TestParseGeneralized(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "20500101000000Z", want: date(2050, 1, 1, 0, 0, 0, 0)},
		{in: "19491231235959Z", want: date(1949, 12, 31, 23, 59, 59, 0)},
		{in: "20240229120000Z", want: date(2024, 2, 29, 12, 0, 0, 0)},
		{in: "99991231235959Z", want: date(9999, 12, 31, 23, 59, 59, 0)},
		{in: "20240229120000.5Z", err: "want YYYYMMDDHHMMSSZ"}, // RFC 5280 forbids fractions
		{in: "20240229120000+0000", err: "want YYYYMMDDHHMMSSZ"},
		{in: "202402291200Z", err: "want YYYYMMDDHHMMSSZ"},
		{in: "21000229120000Z", err: "day out of range"}, // 2100 is no leap year
		{in: "2024-229120000Z", err: "non-digit"},
		{in: "20240431120000Z", err: "day out of range"},
	}
	for _, tt := range tests {
		got, err := ParseGeneralized([]byte(tt.in))
		check(t, "ParseGeneralized", tt.in, got, err, tt.want, tt.err)
	}
}

func TestParseGeneralizedFraction(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "20240229120000Z", want: date(2024, 2, 29, 12, 0, 0, 0)},
		{in: "20240229120000.5Z", want: date(2024, 2, 29, 12, 0, 0, 500_000_000)},
		{in: "20240229120000.123Z", want: date(2024, 2, 29, 12, 0, 0, 123_000_000)},
		{in: "20240229120000.000000001Z", want: date(2024, 2, 29, 12, 0, 0, 1)},
		{in: "20240229120000.999999999Z", want: date(2024, 2, 29, 12, 0, 0, 999_999_999)},
		{in: "20240229120000.1234567891Z", err: "want YYYYMMDDHHMMSS[.fraction]Z"}, // finer than nanoseconds
		{in: "20240229120000.50Z", err: "trailing zero"},
		{in: "20240229120000.0Z", err: "trailing zero"},
		{in: "20240229120000.Z", err: "fraction empty"},
		{in: "20240229120000,5Z", err: "want YYYYMMDDHHMMSS[.fraction]Z"},
		{in: "20240229120000.-5Z", err: "non-digit in fraction"},
		{in: "20240229120000.5", err: "want YYYYMMDDHHMMSS[.fraction]Z"},
		{in: "20240229120000.5+0100", err: "want YYYYMMDDHHMMSS[.fraction]Z"},
		{in: "20240229250000.5Z", err: "out of range"},
	}
	for _, tt := range tests {
		got, err := ParseGeneralizedFraction([]byte(tt.in))
		check(t, "ParseGeneralizedFraction", tt.in, got, err, tt.want, tt.err)
	}
}

func check(t *testing.T, fn, in string, got time.Time, err error, want time.Time, wantErr string) {
	t.Helper()
	switch {
	case wantErr != "" && err == nil:
		t.Errorf("%s(%q) = %v, want error containing %q", fn, in, got, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("%s(%q) error %q, want it to contain %q", fn, in, err, wantErr)
	case wantErr == "" && err != nil:
		t.Errorf("%s(%q): %v", fn, in, err)
	case wantErr == "" && (!got.Equal(want) || got.Location() != time.UTC):
		t.Errorf("%s(%q) = %v (%v), want %v in UTC", fn, in, got, got.Location(), want)
	}
}

// der wraps content octets in a tag, as an encoder would.
func der(tag cbasn1.Tag, content string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(content)) })
	return b.BytesOrPanic()
}

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want time.Time
		err  string
	}{
		{name: "UTCTime", in: der(cbasn1.UTCTime, "491231235959Z"), want: date(2049, 12, 31, 23, 59, 59, 0)},
		{name: "GeneralizedTime from 2050", in: der(cbasn1.GeneralizedTime, "20500101000000Z"), want: date(2050, 1, 1, 0, 0, 0, 0)},
		{name: "GeneralizedTime before 2050 is accepted", in: der(cbasn1.GeneralizedTime, "20240101000000Z"), want: date(2024, 1, 1, 0, 0, 0, 0)},
		{name: "offset UTCTime", in: der(cbasn1.UTCTime, "240101000000+0100"), err: "malformed UTCTime"},
		{name: "fraction in Time", in: der(cbasn1.GeneralizedTime, "20500101000000.5Z"), err: "malformed GeneralizedTime"},
		{name: "other tag", in: der(cbasn1.PrintableString, "240101000000Z"), err: "neither UTCTime nor GeneralizedTime"},
		{name: "truncated", in: der(cbasn1.UTCTime, "240101000000Z")[:5], err: "malformed UTCTime"},
		{name: "empty", in: nil, err: "neither"},
	}
	for _, tt := range tests {
		s := cryptobyte.String(tt.in)
		got, err := Read(&s)
		check(t, "Read", tt.name, got, err, tt.want, tt.err)
		if err == nil && !s.Empty() {
			t.Errorf("Read(%s) left %d bytes", tt.name, len(s))
		}
	}
}

func TestReadGeneralized(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		fraction bool
		want     time.Time
		err      string
	}{
		{name: "whole seconds", in: der(cbasn1.GeneralizedTime, "20240101000000Z"), want: date(2024, 1, 1, 0, 0, 0, 0)},
		{name: "fraction refused", in: der(cbasn1.GeneralizedTime, "20240101000000.25Z"), err: "want YYYYMMDDHHMMSSZ"},
		{name: "fraction allowed", in: der(cbasn1.GeneralizedTime, "20240101000000.25Z"), fraction: true, want: date(2024, 1, 1, 0, 0, 0, 250_000_000)},
		{name: "UTCTime where GeneralizedTime is required", in: der(cbasn1.UTCTime, "240101000000Z"), err: "malformed GeneralizedTime"},
		{name: "UTCTime refused with fraction too", in: der(cbasn1.UTCTime, "240101000000Z"), fraction: true, err: "malformed GeneralizedTime"},
	}
	for _, tt := range tests {
		s := cryptobyte.String(tt.in)
		read := ReadGeneralized
		if tt.fraction {
			read = ReadGeneralizedFraction
		}
		got, err := read(&s)
		check(t, "ReadGeneralized", tt.name, got, err, tt.want, tt.err)
	}
}

// FuzzParse checks that every accepted time is UTC and is the only
// encoding of its instant: formatting it back gives the input bytes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"240229235959Z", "500101000000Z", "2402292359Z", "240229235959+0100",
		"20500101000000Z", "20240229120000.123Z", "20240229120000.50Z", "20240229120000.Z",
		"21000229120000Z", "20240229120000.999999999Z",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if tm, err := ParseUTC(b); err == nil {
			if tm.Location() != time.UTC || tm.Year() < 1950 || tm.Year() > 2049 {
				t.Fatalf("ParseUTC(%q) = %v", b, tm)
			}
			if got := tm.Format("060102150405Z"); got != string(b) {
				t.Fatalf("ParseUTC(%q) = %v, formats as %q", b, tm, got)
			}
		}
		strict, errStrict := ParseGeneralized(b)
		if errStrict == nil && strict.Format("20060102150405Z") != string(b) {
			t.Fatalf("ParseGeneralized(%q) = %v", b, strict)
		}
		frac, err := ParseGeneralizedFraction(b)
		if err != nil {
			if errStrict == nil {
				t.Fatalf("ParseGeneralized accepts %q, ParseGeneralizedFraction refuses: %v", b, err)
			}
			return
		}
		if frac.Location() != time.UTC || frac.Format("20060102150405.999999999Z") != string(b) {
			t.Fatalf("ParseGeneralizedFraction(%q) = %v", b, frac)
		}
		if errStrict == nil && !strict.Equal(frac) {
			t.Fatalf("%q: strict %v, with fraction %v", b, strict, frac)
		}
	})
}
