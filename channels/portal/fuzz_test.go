package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzDecryptJWE feeds arbitrary compact serializations: no panic, bounded
// output, and a valid JWE with a flipped byte never decrypts.
func FuzzDecryptJWE(f *testing.F) {
	good := encrypt(f, []byte(`{"a":1}`), &testKeys().sign.PublicKey, false)
	f.Add(good)
	f.Add(encrypt(f, []byte("zipped zipped zipped"), &testKeys().sign.PublicKey, true))
	f.Add("a.b.c.d.e")
	f.Add("....")
	f.Add(withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"GZ"}`))
	f.Add(withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["x"]}`))
	f.Fuzz(func(t *testing.T, s string) {
		r, _, err := decryptJWE(strings.NewReader(s), int64(len(s)), testKeys().Decrypter(), 1<<16)
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, r)
		if n > 1<<16 {
			t.Fatalf("%d bytes of plaintext past the cap", n)
		}
	})
}

// FuzzMetadata feeds arbitrary decrypted metadata through the checks: no
// panic.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte(`{"$schema":"https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json","contentStructure":{"attachments":[{"attachmentId":"x","hash":{"type":"sha512","content":"00"}}]}}`))
	f.Add([]byte(`{"contentStructure":{"data":{}},"replyChannel":{"fitConnect":{"encryptionPublicKey":{}}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var md metadata
		if json.Unmarshal(doc, &md) != nil {
			return
		}
		_ = md.checkStructure()
		_ = md.replyKind()
		_ = md.attachment("x")
		_ = metadataSchemaURI.MatchString(md.Schema)
	})
}

// FuzzCallback feeds arbitrary callback headers and bodies: no panic, and
// nothing verifies without the secret.
func FuzzCallback(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add("1800000000", sign("s", "1800000000", "{}"), []byte("{}"))
	f.Add("-1", "00", []byte(nil))
	f.Add("99999999999999999999", "", []byte("x"))
	f.Fuzz(func(t *testing.T, ts, auth string, body []byte) {
		err := verifyCallback([]byte("secret-not-in-the-corpus"), ts, auth, body, now, newReplayCache())
		if err == nil {
			t.Fatalf("a callback verified without the secret: %q %q", ts, auth)
		}
	})
}

// FuzzEnvelope: whatever the platform answers, the raw envelope is JSON that
// gives back the answer and the attachment bytes.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"submissionId":"x"}`), []byte("a.b.c.d.e"))
	f.Add([]byte("<html>"), []byte("\"\\\x00\xff"))
	f.Add([]byte(""), []byte(""))
	f.Add([]byte("null"), []byte(" "))
	f.Add([]byte(" 1 "), []byte("a\n"))
	f.Fuzz(func(t *testing.T, sub, att []byte) {
		name := filepath.Join(t.TempDir(), "a")
		if err := os.WriteFile(name, att, 0o600); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := writeEnvelope(&b, sub, []fetchedAttachment{{id: "a1", file: name, size: int64(len(att))}}); err != nil {
			t.Fatal(err)
		}
		var env struct {
			Format           string          `json:"format"`
			Submission       json.RawMessage `json:"submission"`
			SubmissionBase64 []byte          `json:"submissionBase64"`
			Attachments      []struct {
				AttachmentID              string `json:"attachmentId"`
				EncryptedAttachment       string `json:"encryptedAttachment"`
				EncryptedAttachmentBase64 []byte `json:"encryptedAttachmentBase64"`
			} `json:"attachments"`
		}
		if err := json.Unmarshal(b.Bytes(), &env); err != nil {
			t.Fatalf("not JSON: %v\n%q", err, b.Bytes())
		}
		gotSub, wantSub := env.SubmissionBase64, sub
		if env.Submission != nil {
			// Embedded verbatim; the decoder drops the whitespace around it.
			gotSub, wantSub = env.Submission, bytes.TrimSpace(sub)
		}
		gotAtt := env.Attachments[0].EncryptedAttachmentBase64
		if env.Attachments[0].EncryptedAttachment != "" {
			gotAtt = []byte(env.Attachments[0].EncryptedAttachment)
		}
		if env.Format != envelopeFormat || !bytes.Equal(gotSub, wantSub) || !bytes.Equal(gotAtt, att) {
			t.Fatalf("envelope %q does not give back %q and %q", b.Bytes(), sub, att)
		}
	})
}

// FuzzReplyEvents feeds arbitrary event log entries to the recording of a
// reply's events: no panic, and nothing is recorded for an entry that is
// not a SET about the reply.
func FuzzReplyEvents(f *testing.F) {
	payload, _ := json.Marshal(setPayload{JTI: "j-1", Iss: "x", Iat: 1, Sub: "reply:r-1", Txn: "case:c-1",
		Events: map[string]json.RawMessage{eventPrefix + "accept-reply": json.RawMessage(`{}`)}})
	set, err := testKeys().SignSET(payload)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(set)
	f.Add("a.b.c")
	f.Add("..")
	f.Add(strings.Replace(set, ".", "..", 1))
	e := newEnv(f, nil)
	rec := replyEvidence{evidence: e.in.deps.Evidence, blobs: e.env.Blobs, tenant: "default", log: e.in.log}
	f.Fuzz(func(t *testing.T, s string) {
		n, _ := rec.record(context.Background(), "rpl-1", "r-1", []string{s}, nil, errors.New("no keys"))
		if p, err := parseSET(s); (err != nil || p.Sub != "reply:r-1") && n != 0 {
			t.Fatalf("%d recorded from %q", n, s)
		}
	})
}
