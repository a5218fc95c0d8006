package egvp

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/poststelle/poststelle/xjustiz"
)

// replyIDForm is the form of the ids replies.ReplyID gives: 128 bits in hex.
var replyIDForm = regexp.MustCompile(`^rpl-[0-9a-f]{32}$`)

// XJustizID is the eigeneNachrichtenID of the answer ReplyID: the ReplyID's 128 bits
// in the form of a UUID, so that a resend after a crash carries the same id and a
// returning eEB's fremdeNachrichtenID leads back to the answer (ReplyIDOf). A ReplyID
// of another form (none of the gateway's) gets a version 8 UUID from its SHA-256.
func XJustizID(replyID string) string {
	if replyIDForm.MatchString(replyID) {
		b, _ := hex.DecodeString(replyID[len("rpl-"):])
		return xjustiz.UUIDFromBytes(b, false)
	}
	sum := sha256.Sum256([]byte("poststelle xjustiz message\x00" + replyID))
	return xjustiz.UUIDFromBytes(sum[:], true)
}

// ReplyIDOf is the ReplyID an XJustiz id of ours stands for; false for an id of
// another form.
func ReplyIDOf(xjustizID string) (string, bool) {
	if !uuidForm.MatchString(xjustizID) {
		return "", false
	}
	return "rpl-" + strings.ToLower(strings.ReplaceAll(xjustizID, "-", "")), true
}

var uuidForm = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
