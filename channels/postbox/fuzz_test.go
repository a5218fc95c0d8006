package postbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// FuzzParseSubmission feeds hostile multipart bodies to the submission
// parser: it must never panic, store an attachment over the cap, or accept
// a submission without a valid envelope. Seeds: f.Add below and
// testdata/fuzz/FuzzParseSubmission.
func FuzzParseSubmission(f *testing.F) {
	f.Add(multipartBody(f, "b", goodParts...), "b")
	f.Add(multipartBody(f, "b", goodParts[0]), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{}\r\n--b--\r\n"), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=attachment; filename*=UTF-8''%e2%82%ac.pdf\r\n\r\nx\r\n--b--"), "b")
	f.Add([]byte("preamble\r\n--b\r\n\r\n--b--"), "b")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		var mem blob.Memory
		const max = 1 << 10
		sub, err := parseSubmission(bytes.NewReader(body), boundary, max, 4, func(r io.Reader, limit int64) (blob.Ref, error) {
			return mem.Put(context.Background(), r, limit)
		})
		var reqErr *requestError
		if err != nil {
			if !errors.As(err, &reqErr) && !errors.Is(err, blob.ErrTooLarge) {
				t.Fatalf("an error that is neither a refusal nor the cap: %v", err)
			}
			return
		}
		if err := checkEnvelope(&sub.env); err != nil {
			t.Fatalf("accepted an invalid envelope: %v", err)
		}
		if len(sub.parts) > 4 {
			t.Fatalf("%d attachments over the cap", len(sub.parts))
		}
		for _, p := range sub.parts {
			if p.Blob.Size > max || p.Filename == "" || !printable(p.Filename) {
				t.Fatalf("attachment %+v", p)
			}
		}
	})
}
