package ers_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/ers"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dss", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splice rebuilds a record's outer SEQUENCE with its elements edited.
func splice(t *testing.T, der []byte, edit func(elems [][]byte) [][]byte) []byte {
	t.Helper()
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		t.Fatal("fixture not a SEQUENCE")
	}
	var elems [][]byte
	for !seq.Empty() {
		var e cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1Element(&e, &tag) {
			t.Fatal("fixture element")
		}
		elems = append(elems, e)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range edit(elems) {
			b.AddBytes(e)
		}
	})
	return b.BytesOrPanic()
}

func element(tag cbasn1.Tag, body func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, body)
	return b.BytesOrPanic()
}

func TestParseRefuses(t *testing.T) {
	good := fixture(t, "rehashed-1.ers")
	oid := func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier([]int{1, 2, 3}) }
	cases := []struct {
		name string
		der  []byte
		want string
	}{
		{"empty", nil, "not a DER EvidenceRecord"},
		{"trailing data", append(bytes.Clone(good), 0), "not a DER EvidenceRecord"},
		{"truncated", good[:len(good)-1], "not a DER EvidenceRecord"},
		{"version 2", splice(t, good, func(e [][]byte) [][]byte {
			e[0] = element(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddUint8(2) })
			return e
		}), "version 2"},
		{"no chains", splice(t, good, func(e [][]byte) [][]byte {
			e[2] = element(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
			return e
		}), "empty archiveTimeStampSequence"},
		{"an empty chain", splice(t, good, func(e [][]byte) [][]byte {
			e[2] = element(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) })
			return e
		}), "chain 0 is empty"},
		{"too many chains", splice(t, good, func(e [][]byte) [][]byte {
			seq := cryptobyte.String(e[2])
			var body, chain cryptobyte.String
			seq.ReadASN1(&body, cbasn1.SEQUENCE)
			body.ReadASN1Element(&chain, cbasn1.SEQUENCE)
			e[2] = element(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range ers.MaxChains + 1 {
					b.AddBytes(chain)
				}
			})
			return e
		}), "more than 64"},
		{"malformed encryptionInfo", splice(t, good, func(e [][]byte) [][]byte {
			return [][]byte{e[0], e[1], element(cbasn1.Tag(1).Constructed().ContextSpecific(), oid), e[2]}
		}), "malformed encryptionInfo"},
		{"empty cryptoInfos", splice(t, good, func(e [][]byte) [][]byte {
			return [][]byte{e[0], e[1], element(cbasn1.Tag(0).Constructed().ContextSpecific(), func(*cryptobyte.Builder) {}), e[2]}
		}), "malformed cryptoInfos"},
		{"oversized", make([]byte, ers.MaxRecordSize+1), "exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ers.Parse(c.der)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// TestOptionalFields: cryptoInfos are kept through a round trip;
// encryptionInfo parses but Verify refuses it as unsupported.
func TestOptionalFields(t *testing.T) {
	good := fixture(t, "rehashed-1.ers")
	attr := element(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier([]int{1, 2, 3, 4})
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1NULL() })
	})
	withCI := splice(t, good, func(e [][]byte) [][]byte {
		return [][]byte{e[0], e[1], element(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(attr) }), e[2]}
	})
	er, err := ers.Parse(withCI)
	must(t, err)
	if !bytes.Equal(er.CryptoInfos, attr) {
		t.Fatal("cryptoInfos not kept")
	}
	again, err := er.Marshal()
	must(t, err)
	if !bytes.Equal(again, withCI) {
		t.Fatal("cryptoInfos not re-encoded as they were")
	}
	withEI := splice(t, good, func(e [][]byte) [][]byte {
		return [][]byte{e[0], e[1], element(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier([]int{1, 2, 3})
			b.AddASN1NULL()
		}), e[2]}
	})
	er, err = ers.Parse(withEI)
	must(t, err)
	_, err = er.Verify(ers.VerifyOptions{Data: []byte("x")})
	if !errors.Is(err, ers.ErrUnsupported) || !strings.Contains(err.Error(), "encryptionInfo") {
		t.Fatalf("Verify with encryptionInfo: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"built-0.ers", "renewed-1.ers", "rehashed-2.ers", "single-rehashed.ers", "rehashed-1-changed.ers"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		er, err := ers.Parse(der)
		if err != nil {
			return
		}
		again, err := er.Marshal()
		if err != nil {
			t.Fatalf("parsed record does not marshal: %v", err)
		}
		if !bytes.Equal(again, der) {
			t.Fatal("Marshal(Parse(der)) != der")
		}
		_ = er.Covers(make([]byte, 32))
		_ = ers.DefaultPolicy().Decide(er, er.Chains[0].Stamps[0].Token.Info.GenTime)
	})
}
