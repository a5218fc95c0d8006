package demail

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// TestConfirmationFuzzSeeds writes the committed seed corpus of
// FuzzConfirmation with -update (signed, hash-only, tampered and malformed
// confirmations) and otherwise checks it is there.
func TestConfirmationFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzConfirmation")
	if *update {
		w := newWorld(t)
		receipt := stamp{fields: confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*"),
			body: confirmationBody(ackXML), alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
		seeds := [][]byte{
			receipt,
			stamp{fields: confirmationFields(TypeConfirmationOfRetrieve, "*Abholbestätigung*"),
				body: confirmationBody(ackXML), alg: "sha256"}.message(t),
			replace(receipt, "JVBERi0xLjQK", "JVBERi0xLjUK"),
			build(confirmationFields(TypeConfirmationOfDispatch, "*Versandbestätigung*")),
			[]byte("X-de-mail-message-type: confirmation of receipt\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" +
				"--x\r\nContent-Type: text/xml\r\n\r\n<Acknowledge-Message xmlns=\"urn:de-mail\"><Time>x</Time><ds:Signature/>\r\n--x--\r\n"),
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "seed*")); len(m) < 5 {
		t.Errorf("%s: %d seeds, want the committed corpus (go test -update)", dir, len(m))
	}
}

// FuzzConfirmation: no input panics; only the three confirmation types are
// read as evidence; without any configured provider nothing passes; every
// reference has a value. Seeds are in testdata/fuzz/FuzzConfirmation.
func FuzzConfirmation(f *testing.F) {
	f.Add(build(confirmationFields(TypeConfirmationOfReceipt, "*Eingangsbestätigung*")))
	at := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, ok := Confirmation(msg, blob.Ref{}, nil, at)
		_, isConfirmation := confirmationKinds[Parse(msg).Type]
		if ok != isConfirmation || ok != (ev != nil) {
			t.Fatalf("ok %v for type %q", ok, Parse(msg).Type)
		}
		if !ok {
			return
		}
		if !ev.Kind.Valid() || ev.Verification == nil || ev.Verification.Indication == "TOTAL_PASSED" {
			t.Fatalf("kind %q verification %+v without a configured provider", ev.Kind, ev.Verification)
		}
		if len(ev.References) > 3 {
			t.Fatalf("%d references", len(ev.References))
		}
		for _, r := range ev.References {
			if r.Value == "" || strings.TrimSpace(r.Value) != r.Value {
				t.Fatalf("reference %+v", r)
			}
		}
		if strings.Contains(ev.Verification.Detail, "XML signature: verified") {
			t.Fatal("XML signature verified without a configured provider")
		}
	})
}
