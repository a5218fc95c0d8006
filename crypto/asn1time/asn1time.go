// Package asn1time reads the ASN.1 times of X.509, CRLs, OCSP, CMS and
// RFC 3161 time-stamps in the strict DER forms those specifications profile,
// always as UTC.
//
// RFC 5280 §4.1.2.5 fixes two forms: UTCTime as YYMMDDHHMMSSZ, where YY of 50
// and above means 19YY and below 50 means 20YY, and GeneralizedTime as
// YYYYMMDDHHMMSSZ. Both must name seconds and end in "Z"; a time-zone offset,
// a missing seconds field or a fraction is malformed. RFC 5652 §11.3 (CMS
// signing-time) uses the same profile. RFC 3161 §2.4.2 (TSTInfo genTime)
// additionally allows a fraction of a second without trailing zeros, which
// ParseGeneralizedFraction reads.
//
// cryptobyte's own readers accept offsets, minute precision and fractions
// and return times in the offset's zone; this package exists so that every
// parser in the module reads times one way.
package asn1time

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxFractionDigits bounds a fraction of a second to nanoseconds, the
// precision time.Time holds.
const maxFractionDigits = 9

// Read reads a Time CHOICE (UTCTime or GeneralizedTime) as RFC 5280
// §4.1.2.5 profiles it, for certificate validity, CRL thisUpdate,
// nextUpdate and revocationDate, and CMS signing-time.
//
// A GeneralizedTime before 2050 is accepted although RFC 5280 tells issuers
// to use UTCTime there: the instant is unambiguous, and refusing it would
// make otherwise readable certificates unreadable.
func Read(s *cryptobyte.String) (time.Time, error) {
	var content cryptobyte.String
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1(&content, cbasn1.UTCTime) {
			return time.Time{}, errors.New("malformed UTCTime")
		}
		return ParseUTC(content)
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1(&content, cbasn1.GeneralizedTime) {
			return time.Time{}, errors.New("malformed GeneralizedTime")
		}
		return ParseGeneralized(content)
	default:
		return time.Time{}, errors.New("time is neither UTCTime nor GeneralizedTime")
	}
}

// ReadGeneralized reads a GeneralizedTime in the RFC 5280 §4.1.2.5.2 form
// (YYYYMMDDHHMMSSZ), as in the CRL extensions invalidityDate and
// expiredCertsOnCRL.
func ReadGeneralized(s *cryptobyte.String) (time.Time, error) {
	var content cryptobyte.String
	if !s.ReadASN1(&content, cbasn1.GeneralizedTime) {
		return time.Time{}, errors.New("malformed GeneralizedTime")
	}
	return ParseGeneralized(content)
}

// ReadGeneralizedFraction reads a GeneralizedTime that may carry a fraction
// of a second (see ParseGeneralizedFraction).
func ReadGeneralizedFraction(s *cryptobyte.String) (time.Time, error) {
	var content cryptobyte.String
	if !s.ReadASN1(&content, cbasn1.GeneralizedTime) {
		return time.Time{}, errors.New("malformed GeneralizedTime")
	}
	return ParseGeneralizedFraction(content)
}

// ParseUTC parses the content octets of a UTCTime, YYMMDDHHMMSSZ, with the
// RFC 5280 §4.1.2.5.1 century rule: YY ≥ 50 is 19YY, YY < 50 is 20YY.
func ParseUTC(b []byte) (time.Time, error) {
	if len(b) != 13 || b[12] != 'Z' {
		return time.Time{}, fmt.Errorf("malformed UTCTime %q: want YYMMDDHHMMSSZ", clip(b))
	}
	yy, ok := digits(b[0:2])
	if !ok {
		return time.Time{}, fmt.Errorf("malformed UTCTime %q: non-digit", clip(b))
	}
	year := 2000 + yy
	if yy >= 50 {
		year = 1900 + yy
	}
	t, err := clock(year, b[2:12])
	if err != nil {
		return time.Time{}, fmt.Errorf("malformed UTCTime %q: %w", clip(b), err)
	}
	return t, nil
}

// ParseGeneralized parses the content octets of a GeneralizedTime in the
// RFC 5280 §4.1.2.5.2 form YYYYMMDDHHMMSSZ: seconds required, no fraction,
// no offset.
func ParseGeneralized(b []byte) (time.Time, error) {
	if len(b) != 15 || b[14] != 'Z' {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: want YYYYMMDDHHMMSSZ", clip(b))
	}
	return parseGeneralized(b, b[:14])
}

// ParseGeneralizedFraction parses the content octets of a GeneralizedTime
// in the RFC 3161 §2.4.2 form YYYYMMDDHHMMSS[.f]Z, the form of TSTInfo
// genTime: the fraction has at least one and at most nine digits and no
// trailing zero, as DER requires (a whole second has no fraction at all).
func ParseGeneralizedFraction(b []byte) (time.Time, error) {
	if len(b) < 15 || len(b) > 15+1+maxFractionDigits || b[len(b)-1] != 'Z' {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: want YYYYMMDDHHMMSS[.fraction]Z", clip(b))
	}
	body := b[:len(b)-1]
	if len(body) == 14 {
		return parseGeneralized(b, body)
	}
	if body[14] != '.' {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: want YYYYMMDDHHMMSS[.fraction]Z", clip(b))
	}
	frac := body[15:]
	if len(frac) == 0 || frac[len(frac)-1] == '0' {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: fraction empty or with trailing zero", clip(b))
	}
	ns, ok := digits(frac)
	if !ok {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: non-digit in fraction", clip(b))
	}
	for i := len(frac); i < maxFractionDigits; i++ {
		ns *= 10
	}
	t, err := parseGeneralized(b, body[:14])
	if err != nil {
		return time.Time{}, err
	}
	return t.Add(time.Duration(ns)), nil
}

// parseGeneralized reads YYYYMMDDHHMMSS; whole is the complete content for
// error messages.
func parseGeneralized(whole, b []byte) (time.Time, error) {
	year, ok := digits(b[0:4])
	if !ok {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: non-digit", clip(whole))
	}
	t, err := clock(year, b[4:14])
	if err != nil {
		return time.Time{}, fmt.Errorf("malformed GeneralizedTime %q: %w", clip(whole), err)
	}
	return t, nil
}

// clock reads MMDDHHMMSS of the given year and checks every field's range,
// so that no value is silently normalised (31 February, 24:00, a leap
// second).
func clock(year int, b []byte) (time.Time, error) {
	var f [5]int
	for i := range f {
		v, ok := digits(b[2*i : 2*i+2])
		if !ok {
			return time.Time{}, errors.New("non-digit")
		}
		f[i] = v
	}
	month, day, hour, minute, sec := f[0], f[1], f[2], f[3], f[4]
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errors.New("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, errors.New("day out of range for the month")
	}
	return t, nil
}

// digits parses ASCII decimal digits; it refuses signs, spaces and anything
// else strconv would let through.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// clip bounds what an error message quotes of hostile input.
func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
