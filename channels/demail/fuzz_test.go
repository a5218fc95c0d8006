package demail

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFuzzSeeds writes the committed seed corpus with -update (signed,
// hashed, tampered and malformed messages from the test provider) and
// otherwise checks it is there.
func TestFuzzSeeds(t *testing.T) {
	if *update {
		w := newWorld(t)
		signed := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
		seeds := [][]byte{
			signed,
			stamp{fields: normalFields("no"), body: body, alg: "sha256"}.message(t),
			stamp{fields: normalFields("yes"), body: body, alg: "sha384/rsassa-pss", key: w.rsaKey, cert: w.rsaCert}.message(t),
			replace(signed, "anbei mein", "anbei kein"),
			build(with("X-de-mail-chosen-recipient", "to=a@x.example; to=b@x.example")),
			build(with("X-de-mail-integrity", "v=1; a=sha256; h=From; bh=; b=; b=")),
			[]byte("X-de-mail-integrity: a=sha1/rsa;\r\n\r\n"),
		}
		for _, dir := range []string{"FuzzParse", "FuzzVerify"} {
			d := filepath.Join("testdata", "fuzz", dir)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, dir := range []string{"FuzzParse", "FuzzVerify"} {
		if m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "seed*")); len(m) < 5 {
			t.Errorf("%s: %d seeds, want the committed corpus (go test -update)", dir, len(m))
		}
	}
}

// FuzzParse: no input panics, and a message with problems never claims
// an option it could not read as "yes". Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(build(normalFields("yes")))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := Parse(msg)
		if len(h.PrivateID) > 4*MaxPrivateIDChars {
			t.Fatalf("private id of %d bytes kept", len(h.PrivateID))
		}
		if h.Type != "" && h.Type.Class() == ClassUnknown {
			t.Fatalf("unknown type %q kept", h.Type)
		}
	})
}

// FuzzVerify: the integrity parser and checker never panic and never call
// an unsigned or unconfigured message provider-signed. Seeds are in
// testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add(build(normalFields("no")))
	at := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, msg []byte) {
		i := Verify(msg, nil, at)
		if i.Trusted() {
			t.Fatal("provider-signed without any configured provider")
		}
		if i.Verdict == "" {
			t.Fatal("no verdict")
		}
		if tags, err := parseTags(string(msg)); err == nil && len(tags) > maxTags {
			t.Fatalf("%d tags kept", len(tags))
		}
	})
}
