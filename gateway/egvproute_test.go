package gateway

import "testing"

func TestEGVPSecureRoute(t *testing.T) {
	for _, tc := range []struct {
		f    *EGVPFields
		want string
	}{
		{nil, ""},
		{&EGVPFields{Origin: "vhn", OriginMailbox: "bebpo"}, "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO (beBPo)"},
		{&EGVPFields{Origin: "vhn", OriginMailbox: "bea"}, "§ 130a Abs. 4 Satz 1 Nr. 2 ZPO (beA)"},
		{&EGVPFields{Origin: "vhn", OriginMailbox: "justiz"}, ""},
		{&EGVPFields{Origin: "sender-signed", OriginMailbox: "bebpo"}, ""},
		{&EGVPFields{Origin: "none"}, ""},
	} {
		if got := tc.f.SecureRoute(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
