package osci

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFeedbackCodes(t *testing.T) {
	codes := Codes()
	if len(codes) != 64 {
		t.Fatalf("%d codes, the library's table has 64", len(codes))
	}
	for _, c := range codes {
		if !c.Known() || c.Text() == "" || len(c.String()) != 4 {
			t.Errorf("code %s: %q", c, c.Text())
		}
		if n := btoi(c.Success()) + btoi(c.Warning()) + btoi(c.Error()); n != 1 {
			t.Errorf("code %s is in %d classes", c, n)
		}
	}
	for code, want := range map[Code]string{CodeDialogClosed: "0800", CodeDialogOpen: "0801", CodeNotDecryptable: "9202", CodeMoreDeliveries: "3800"} {
		if code.String() != want {
			t.Errorf("%d written %s, want %s", code, code, want)
		}
	}
	if Code(1234).Known() || Code(1234).Text() != "" {
		t.Error("1234 is not a code")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSOAPFault(t *testing.T) {
	for _, code := range []Code{CodeNotDecryptable, CodeInternalError} {
		var msg bytes.Buffer
		// The library starts a fault with an empty line before MIME-Version.
		msg.WriteString("\r\n")
		if err := WriteMessage(&msg, NewBoundary(), true, ComposeFault(code), nil); err != nil {
			t.Fatal(err)
		}
		mp, err := ReadMessage(context.Background(), &msg, Limits{}, DirSpool{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		env, err := ParseEnvelope(mp.Envelope, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		want := "soap:Client"
		if code == CodeInternalError {
			want = "soap:Server"
		}
		if env.Type != Fault || env.SOAPFault.Code != code || env.SOAPFault.FaultCode != want || env.SOAPFault.FaultString != code.Text() {
			t.Errorf("fault %+v", env.SOAPFault)
		}
	}
	bad := strings.Replace(string(ComposeFault(CodeNotOSCI)), "<osci:Code>9100</osci:Code>", "<osci:Code>91</osci:Code>", 1)
	if _, err := ParseEnvelope([]byte(bad), Limits{}); !errors.Is(err, ErrFormat) {
		t.Errorf("short code accepted: %v", err)
	}
}
