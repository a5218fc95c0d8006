package mailmsg

import (
	"bytes"
	"context"
	"testing"
)

// FuzzWalk feeds arbitrary bytes to the walker with small limits: it must
// not panic, must not fail (the store never does here), and every result
// must satisfy the invariants a receipt event relies on.
func FuzzWalk(f *testing.F) {
	f.Add([]byte("From: a@example.org\r\nSubject: =?utf-8?q?x?=\r\n\r\nbody\r\n"))
	f.Add(manyParts(20))
	f.Add(deepMultipart(20))
	f.Add(messageBomb(20, 10))
	f.Add(crlf("Content-Type: multipart/signed; boundary=s\n\n--s\nContent-Type: text/plain\n\nx\n--s\nContent-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\nMIIB\n--s--\n"))
	f.Add([]byte("Subject: a\x00b\r\nFrom: \"x\x1b[2J\" <a@example.org>\r\nReceived: from \x00\r\n\r\nbody\r\n"))
	f.Add([]byte("Subject: =?utf-8?q?x=00=1B=7F?= =?utf-8?b?wpsyShg=?=\r\nX-De-Mail-Authoritative: \x01\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := newMemStore()
		ref, err := st.Put(context.Background(), bytes.NewReader(raw), 0)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := Walk(context.Background(), st, ref, Limits{MaxDepth: 8, MaxParts: 50, MaxHeaderBytes: 4096})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		if len(msg.Parts) > 50 {
			t.Fatalf("%d parts over the limit", len(msg.Parts))
		}
		checkInvariants(t, msg, st)
	})
}
