package egvp

import (
	"strings"
	"testing"
)

func TestXJustizID(t *testing.T) {
	id := "rpl-0123456789abcdef0123456789abcdef"
	x := XJustizID(id)
	back, ok := ReplyIDOf(x)
	if !ok || back != id || XJustizID(id) != x {
		t.Errorf("%s -> %s -> %s %v", id, x, back, ok)
	}
	if other := XJustizID("r1"); other == XJustizID("r2") || len(other) != 36 {
		t.Errorf("ids of other ReplyIDs: %s", other)
	}
	for _, bad := range []string{"", "714967a2", "714967a2-5e13-4c07-91c2-41adb4537bbz", strings.Repeat("a", 36)} {
		if _, ok := ReplyIDOf(bad); ok {
			t.Errorf("%q read as an id of ours", bad)
		}
	}
}

// FuzzReplyIDOf: a returning eEB's fremdeNachrichtenID, whatever it is, is read as one
// of our ReplyIDs only when it is a UUID, and then it leads back to the same id.
func FuzzReplyIDOf(f *testing.F) {
	f.Add("714967a2-5e13-4c07-91c2-41adb4537bbc")
	f.Add("F9D36902-B60A-4A38-AA40-69ED89874A2F")
	f.Add("rpl-0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, id string) {
		replyID, ok := ReplyIDOf(id)
		if !ok {
			return
		}
		if !replyIDForm.MatchString(replyID) || !strings.EqualFold(XJustizID(replyID), id) {
			t.Fatalf("%q -> %q -> %q", id, replyID, XJustizID(replyID))
		}
	})
}
