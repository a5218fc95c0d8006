package integrity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// vectorCheckpoint is the checkpoint testdata/vectors.py signs: partition 2,
// the three-leaf tree of TestFrontierGoldenRoot.
func vectorCheckpoint(t *testing.T) eventstore.Checkpoint {
	t.Helper()
	root, err := base64.StdEncoding.DecodeString("HsX+y6C0f04N8NvpVKo551KznxOUxjHCVdMc8Us5BVw=")
	if err != nil {
		t.Fatal(err)
	}
	c := eventstore.Checkpoint{Partition: 2, Size: 3, Time: time.Date(2024, 5, 1, 12, 34, 56, 789012345, time.UTC)}
	copy(c.Root[:], root)
	return c
}

func vectorKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func TestCheckpointGoldenVector(t *testing.T) {
	c := vectorCheckpoint(t)
	// A time in another zone must be written as the same instant in UTC.
	c.Time = c.Time.In(time.FixedZone("CEST", 2*3600))
	const note = "poststelle/checkpoint/v1\nlog test-log\npartition 2\nsize 3\n" +
		"root HsX+y6C0f04N8NvpVKo551KznxOUxjHCVdMc8Us5BVw=\ntime 2024-05-01T12:34:56.789012345Z\n"
	if got := string(CheckpointNote("test-log", &c)); got != note {
		t.Fatalf("CheckpointNote =\n%s\nwant\n%s", got, note)
	}
	if err := Sign(vectorKey(), "test-log", &c); err != nil {
		t.Fatal(err)
	}
	const sig = "FIc3GQxHFm14xj+r4SToksiBGQAxs+AsjLc0Fi7qiULFoiZmV9KOdmN8EDuU5Ysg/F91Ia/SMamnc0OPY9xMAA=="
	if c.KeyID != "a050837d85070582" || base64.StdEncoding.EncodeToString(c.Signature) != sig {
		t.Fatalf("key id %s signature %s, want a050837d85070582 %s", c.KeyID, base64.StdEncoding.EncodeToString(c.Signature), sig)
	}
	want := note + "sig a050837d85070582 " + sig + "\n"
	if got := string(FormatCheckpoint("test-log", &c)); got != want {
		t.Fatalf("FormatCheckpoint =\n%s\nwant\n%s", got, want)
	}
}

// pssSigner signs with RSASSA-PSS, which VerifyCheckpoint accepts besides
// PKCS #1 v1.5.
type pssSigner struct{ *rsa.PrivateKey }

func (s pssSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return rsa.SignPSS(r, s.PrivateKey, opts.HashFunc(), digest, nil)
}

func TestSignVerifyKeyTypes(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signers := map[string]crypto.Signer{"ed25519": vectorKey(), "ecdsa": ec, "rsa": rk, "rsa-pss": pssSigner{rk}}
	for name, s := range signers {
		t.Run(name, func(t *testing.T) {
			c := vectorCheckpoint(t)
			if err := Sign(s, "log-a", &c); err != nil {
				t.Fatal(err)
			}
			if err := VerifyCheckpoint(s.Public(), "log-a", &c); err != nil {
				t.Fatalf("own signature: %v", err)
			}
			tampered := map[string]func(c *eventstore.Checkpoint) string{
				"log id":    func(*eventstore.Checkpoint) string { return "log-b" },
				"partition": func(c *eventstore.Checkpoint) string { c.Partition++; return "log-a" },
				"size":      func(c *eventstore.Checkpoint) string { c.Size++; return "log-a" },
				"root":      func(c *eventstore.Checkpoint) string { c.Root[0] ^= 1; return "log-a" },
				"time":      func(c *eventstore.Checkpoint) string { c.Time = c.Time.Add(time.Nanosecond); return "log-a" },
				"signature": func(c *eventstore.Checkpoint) string {
					c.Signature = append([]byte(nil), c.Signature...)
					c.Signature[len(c.Signature)/2] ^= 1
					return "log-a"
				},
			}
			for field, edit := range tampered {
				d := c
				logID := edit(&d)
				if err := VerifyCheckpoint(s.Public(), logID, &d); !errors.Is(err, ErrBadSignature) {
					t.Errorf("altered %s: %v, want ErrBadSignature", field, err)
				}
			}
		})
	}
	c := vectorCheckpoint(t)
	if err := Sign(vectorKey(), "log-a", &c); err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpoint(ec.Public(), "log-a", &c); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verified with another key: %v", err)
	}
	if err := VerifyCheckpoint("not a key", "log-a", &c); err == nil || !strings.Contains(err.Error(), "unsupported public key") {
		t.Errorf("verified with a string as key: %v", err)
	}
}

func TestParseCheckpoint(t *testing.T) {
	c := vectorCheckpoint(t)
	if err := Sign(vectorKey(), "test-log", &c); err != nil {
		t.Fatal(err)
	}
	text := FormatCheckpoint("test-log", &c)
	logID, got, err := ParseCheckpoint(text)
	if err != nil {
		t.Fatal(err)
	}
	if logID != "test-log" || got.Partition != c.Partition || got.Size != c.Size || got.Root != c.Root ||
		!got.Time.Equal(c.Time) || got.KeyID != c.KeyID || !bytes.Equal(got.Signature, c.Signature) {
		t.Fatalf("ParseCheckpoint = %q %+v, want %+v", logID, got, c)
	}
	if err := VerifyCheckpoint(vectorKey().Public(), logID, &got); err != nil {
		t.Fatalf("parsed checkpoint does not verify: %v", err)
	}

	good := string(text)
	refused := map[string]string{
		"empty":          "",
		"other header":   strings.Replace(good, "checkpoint/v1", "checkpoint/v2", 1),
		"missing sig":    good[:strings.Index(good, "sig ")],
		"extra line":     good + "more\n",
		"renamed field":  strings.Replace(good, "\nsize ", "\nlength ", 1),
		"short root":     strings.Replace(good, "HsX+y6C0f04N8NvpVKo551KznxOUxjHCVdMc8Us5BVw=", "HsX+", 1),
		"negative size":  strings.Replace(good, "size 3", "size -3", 1),
		"huge partition": strings.Replace(good, "partition 2", "partition 4294967296", 1),
		"local time":     strings.Replace(good, "time 2024-05-01T12:34:56", "time 2024-05-01 12:34:56", 1),
		"bad signature":  strings.Replace(good, "sig a050837d85070582 ", "sig a050837d85070582 !", 1),
		"oversized":      good + strings.Repeat("x", 4096),
	}
	for name, in := range refused {
		if _, _, err := ParseCheckpoint([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseCheckpoint checks that ParseCheckpoint never panics and that
// whatever it accepts formats back to a checkpoint that parses the same.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("poststelle/checkpoint/v1\nlog test-log\npartition 2\nsize 3\n" +
		"root HsX+y6C0f04N8NvpVKo551KznxOUxjHCVdMc8Us5BVw=\ntime 2024-05-01T12:34:56.789012345Z\n" +
		"sig a050837d85070582 FIc3GQxHFm14xj+r4SToksiBGQAxs+AsjLc0Fi7qiULFoiZmV9KOdmN8EDuU5Ysg/F91Ia/SMamnc0OPY9xMAA==\n"))
	f.Add([]byte("poststelle/checkpoint/v1\nlog x\npartition 0\nsize 0\nroot \ntime \nsig  \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		logID, c, err := ParseCheckpoint(b)
		if err != nil {
			return
		}
		logID2, c2, err := ParseCheckpoint(FormatCheckpoint(logID, &c))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b, err)
		}
		if logID2 != logID || c2.Size != c.Size || c2.Root != c.Root || !c2.Time.Equal(c.Time) || c2.KeyID != c.KeyID {
			t.Fatalf("round trip of %q changed it: %+v vs %+v", b, c, c2)
		}
	})
}
