package officeimap_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// erasingBlobs reads the references in refs as erased, as eventstore/cryptblob
// does once a blob's key was destroyed.
type erasingBlobs struct {
	blob.Backend
	mu   sync.Mutex
	refs map[string]bool
}

func (b *erasingBlobs) erase(raw []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sum := sha256.Sum256(raw)
	b.refs[hex.EncodeToString(sum[:])] = true
}

func (b *erasingBlobs) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	b.mu.Lock()
	gone := b.refs[ref.SHA256]
	b.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("open %s: %w", ref.SHA256, blob.ErrErased)
	}
	return b.Backend.Open(ctx, ref)
}

// TestErasedMessage: the body of an erased message is answered NO
// [UNAVAILABLE] (RFC 5530), its envelope still listed under the same UID,
// the other messages unaffected, and a text SEARCH does not match it.
func TestErasedMessage(t *testing.T) {
	e := newEnv(t, nil)
	raw1, _ := e.deliver(t, "Bauantrag Muster", "bauamt")
	e.deliver(t, "Bauantrag Beispiel", "bauamt")
	c := e.login(t, "alice")
	before := list(t, c)
	if len(before) != 2 {
		t.Fatalf("%d messages before erasure, want 2", len(before))
	}
	e.erased.erase(raw1)

	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fetch(imap.UIDSetNum(before[0].UID), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("fetch of the erased body: %v, want NO [UNAVAILABLE]", err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(before[0].UID, before[1].UID), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("envelopes after erasure: %d, %v", len(msgs), err)
	}
	other, err := c.Fetch(imap.UIDSetNum(before[1].UID), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(other) != 1 || string(other[0].BodySection[0].Bytes) != before[1].Body {
		t.Fatalf("the other message after erasure: %v", err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{"Text"}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uids := found.AllUIDs(); len(uids) != 1 || uids[0] != before[1].UID {
		t.Fatalf("BODY search after erasure: %v, want only %d", uids, before[1].UID)
	}
}
