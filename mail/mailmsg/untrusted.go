package mailmsg

import "strings"

// trustedOnlyPrefixes name header fields that carry a statement only a
// trusted channel can make: De-Mail's provider-confirmed attributes
// (BSI TR 01201, e.g. X-de-mail-authoritative), the gateway's own
// annotations, and those of the EGVP and FIT-Connect bridges. On the plain
// e-mail channels anyone can write them, so they are recorded as untrusted
// and never decide a message's legal status.
var trustedOnlyPrefixes = []string{
	"x-de-mail",
	"x-demail",
	"x-poststelle",
	"x-egvp",
	"x-osci",
	"x-fitconnect",
}

// trustedOnlyFields are whole field names of that kind: authentication
// verdicts are only worth something when our own boundary wrote them, and
// the e-mail adapters write none into the stored bytes.
var trustedOnlyFields = []string{
	"authentication-results",
	"arc-authentication-results",
	"received-spf",
}

// TrustedOnly reports whether a header field may be believed only when a
// trusted channel set it.
func TrustedOnly(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, p := range trustedOnlyPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	for _, f := range trustedOnlyFields {
		if n == f {
			return true
		}
	}
	return false
}
