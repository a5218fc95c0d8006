package osci

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

// fuzzLimits keep each run small, so the fuzzer explores rather than copies.
var fuzzLimits = Limits{MaxMessageBytes: 1 << 20, MaxEnvelopeBytes: 256 << 10, MaxAttachmentBytes: 256 << 10, MaxParts: 16, MaxHeaderBytes: 4096}

func egvpEnvelopes(f *testing.F) [][]byte {
	var out [][]byte
	for _, m := range []string{"Testnachricht_1", "TestnachrichtEeb_1", "Testnachricht_xjustiz321"} {
		raw, err := os.ReadFile(corpus.Path(f, "egvp", "Messages", m, "oscicontentdata.osci"))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, firstPartF(f, raw))
	}
	return out
}

func firstPartF(f *testing.F, raw []byte) []byte {
	i := bytes.Index(raw, []byte("<?xml"))
	j := bytes.Index(raw[i:], []byte("\n--MIME_boundary"))
	if i < 0 || j < 0 {
		f.Fatal("no SOAP part")
	}
	return bytes.TrimRight(raw[i:i+j], "\r")
}

// FuzzReadMessage: the framing never panics, and what it accepts is within its limits.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte(rawMessage(soapPart, "Content-ID: <a>\r\nContent-Length: 3\r\n\r\nxyz")))
	f.Add([]byte(rawMessage(soapPart)))
	f.Add([]byte("MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=B; type=text/xml\r\n\r\n--B\r\n"))
	// The real thing: an EGVP export and the library's plaintext request.
	for _, p := range []string{
		corpus.Path(f, "egvp", "Messages", "TestnachrichtEeb_1", "oscicontentdata.osci"),
		filepath.Join("testdata", "library", "fetchdelivery-rsa-sha256", "request.plain.mime"),
	} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		spool := DirSpool{Dir: dir}
		m, err := ReadMessage(context.Background(), bytes.NewReader(data), fuzzLimits, spool)
		if err != nil {
			return
		}
		defer spool.Remove(m.Spooled()...)
		if len(m.Envelope) > fuzzLimits.MaxEnvelopeBytes || len(m.Parts)+1 > fuzzLimits.MaxParts {
			t.Fatalf("accepted beyond the limits: %d bytes, %d parts", len(m.Envelope), len(m.Parts))
		}
		seen := map[string]bool{EnvelopeContentID: true}
		for _, p := range m.Parts {
			if seen[p.ContentID] || p.Size > fuzzLimits.MaxAttachmentBytes {
				t.Fatalf("part <%s> of %d bytes accepted", p.ContentID, p.Size)
			}
			seen[p.ContentID] = true
		}
	})
}

// FuzzParseEnvelope: no panic; an accepted envelope has a type, a control block unless
// it is transport encrypted, and its signature check runs without error or panic.
func FuzzParseEnvelope(f *testing.F) {
	for _, e := range egvpEnvelopes(f) {
		f.Add(e)
	}
	for _, d := range []string{"storedelivery-rsa-pss", "fetchprocesscard-rsa-sha256", "forwarddelivery-rsa-sha256"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "library", d, "request.plain.mime"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(firstPartF(f, raw))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data, fuzzLimits)
		if err != nil {
			return
		}
		if env.Type == "" || (env.Type != Encrypted && env.Type != Fault && (env.ControlBlock == nil || env.Operation == nil)) {
			t.Fatalf("accepted without type or control block: %+v", env)
		}
		if env.ClientSignature != nil || env.SupplierSignature != nil {
			if _, err := env.VerifySignature(context.Background(), &Multipart{}); err != nil {
				t.Fatalf("signature check failed to run: %v", err)
			}
		}
		_ = env.ProcessCards()
	})
}

// FuzzContainer: a decrypted content container, as plaintext of any sender, parses
// or is refused without panic.
func FuzzContainer(f *testing.F) {
	f.Add([]byte(plainContainer))
	f.Add([]byte(`<?xml version="1.0"?><osci:ContentContainer Id="a"><osci:Content><osci:ContentContainer Id="b"><osci:Content>text</osci:Content></osci:ContentContainer></osci:Content><xenc:EncryptedData/></osci:ContentContainer>`))
	for _, e := range egvpEnvelopes(f) {
		i := bytes.Index(e, []byte("<osci:ContentContainer"))
		j := bytes.Index(e, []byte("</osci:ContentContainer>"))
		if i > 0 && j > i {
			f.Add(e[i : j+len("</osci:ContentContainer>")])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, c, err := parseDecryptedContainer(data, fuzzLimits.withDefaults())
		if err != nil {
			return
		}
		if c.ID == "" {
			t.Fatal("container without Id accepted")
		}
		if _, err := VerifyContainer(context.Background(), doc, c, nil, func(string) *Part { return nil }); err != nil {
			t.Fatalf("content signature check failed to run: %v", err)
		}
	})
}

// FuzzProcessCard: process card bundles as an intermediary sends them.
func FuzzProcessCard(f *testing.F) {
	var b bytes.Buffer
	if err := writeProcessCardBundle(&b, testBundle()); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	for _, e := range egvpEnvelopes(f) {
		i := bytes.Index(e, []byte("<osci:ProcessCardBundle>"))
		j := bytes.Index(e, []byte("</osci:ProcessCardBundle>"))
		if i > 0 && j > i {
			f.Add(e[i : j+len("</osci:ProcessCardBundle>")])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, _, err := parseWrapped(data, fuzzLimits.withDefaults())
		if err != nil {
			return
		}
		pc, err := parseProcessCardBundle(doc)
		if err != nil {
			return
		}
		// What was read writes again and reads back the same.
		var out bytes.Buffer
		if err := writeProcessCardBundle(&out, pc); err != nil {
			t.Fatal(err)
		}
		again, _, err := parseWrapped(out.Bytes(), fuzzLimits.withDefaults())
		if err != nil {
			t.Fatalf("rewritten bundle does not parse: %v\n%s", err, out.Bytes())
		}
		pc2, err := parseProcessCardBundle(again)
		if err != nil || pc2.MessageID != pc.MessageID || len(pc2.Report) != len(pc.Report) || pc2.Card.Subject != pc.Card.Subject {
			t.Fatalf("rewritten bundle reads differently: %v", err)
		}
	})
}
