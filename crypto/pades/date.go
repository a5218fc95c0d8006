package pades

import (
	"strconv"
	"strings"
	"time"
)

// ParseDate reads a PDF date (ISO 32000-1 section 7.9.4),
// "D:YYYYMMDDHHmmSSOHH'mm'", where everything after the year is optional
// and O is Z, + or -. ok is false for anything else.
func ParseDate(s string) (time.Time, bool) {
	s = strings.TrimPrefix(s, "D:")
	fields := []struct {
		n        int
		def, max int
	}{{4, 0, 9999}, {2, 1, 12}, {2, 1, 31}, {2, 0, 23}, {2, 0, 59}, {2, 0, 59}}
	var v [6]int
	for i, f := range fields {
		if len(s) < f.n || !digits(s[:f.n]) {
			if i == 0 {
				return time.Time{}, false
			}
			for j := i; j < len(fields); j++ {
				v[j] = fields[j].def
			}
			break
		}
		v[i], _ = strconv.Atoi(s[:f.n])
		if v[i] > f.max || (f.def == 1 && v[i] == 0) {
			return time.Time{}, false
		}
		s = s[f.n:]
	}
	loc := time.UTC
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		rest := strings.ReplaceAll(s[1:], "'", "")
		if len(rest) < 2 || !digits(rest[:2]) {
			return time.Time{}, false
		}
		h, _ := strconv.Atoi(rest[:2])
		m := 0
		if len(rest) >= 4 && digits(rest[2:4]) {
			m, _ = strconv.Atoi(rest[2:4])
		}
		off := (h*60 + m) * 60
		if s[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, loc).UTC(), true
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
