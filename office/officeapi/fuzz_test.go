package officeapi

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerifySignature feeds arbitrary headers: no panics, and only the
// real signature verifies.
func FuzzVerifySignature(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	secret := []byte("0123456789abcdef")
	f.Add(Sign(secret, now, []byte("{}")), []byte("{}"))
	f.Add("t=1,v1=zz", []byte("x"))
	f.Add("v1=,t=", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifySignature(secret, header, body, now, 0)
		if err == nil && !strings.Contains(header, Sign(secret, now, body)[len("t=1800000000,"):]) {
			// A header verifies only if it carries the MAC of this body at some t.
			for _, f := range strings.Split(header, ",") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(f), "t="); ok {
					if strings.Contains(header, Sign(secret, time.Unix(parseUnix(v), 0), body)[len("t=")+len(v)+1:]) {
						return
					}
				}
			}
			t.Fatalf("forged header %q verified", header)
		}
	})
}

func parseUnix(s string) int64 {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
