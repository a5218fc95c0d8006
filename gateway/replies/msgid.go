package replies

import (
	"strings"

	"github.com/poststelle/poststelle/gateway"
)

// MaxMessageIDLen caps a Message-ID we repeat in a header of ours.
const MaxMessageIDLen = 250

// OriginalMessageID is the RFC 5322 Message-ID the sender gave a received
// message, or "" when it has none we can repeat. Every reader that needs "the
// original's Message-ID" (reply threading, the office copy, submission)
// asks here. Since MessageReceived v2 it is SenderMessageID on every e-mail
// channel; v1 events are decoded into that shape (gateway/legacy.go).
func OriginalMessageID(m *gateway.MessageReceived) string {
	if m == nil {
		return ""
	}
	return FirstMessageID(m.SenderMessageID)
}

// MessageIDs extracts the "<…>" tokens of a header value (Message-ID,
// In-Reply-To, References) that are safe to repeat in a header of ours.
func MessageIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return out
		}
		id := v[i : i+j+1]
		v = v[i+j+1:]
		if ValidMessageID(id) {
			out = append(out, id)
		}
	}
}

// FirstMessageID is the first safe Message-ID in a header value, or "".
func FirstMessageID(v string) string {
	if ids := MessageIDs(v); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// ValidMessageID reports whether id is "<left@right>" of atext, dots and
// domain-literal brackets, short enough to repeat (RFC 5322 section 3.6.4,
// without quoted local parts and the obsolete forms).
func ValidMessageID(id string) bool {
	if len(id) < 5 || len(id) > MaxMessageIDLen || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	inner := id[1 : len(id)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),:;<>\`, c) >= 0 {
			return false
		}
	}
	at := strings.LastIndexByte(inner, '@')
	return at > 0 && at < len(inner)-1
}
