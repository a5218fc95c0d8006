package officeapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/adapters/mailmsg"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// Headers that let `poststelle route test` simulate in an .eml file what
// other channels put in the receipt. ParseEML alone reads them; the gateway's
// inbound adapters never do.
const (
	TestChannelHeader  = "X-Poststelle-Channel"
	TestMetadataPrefix = "X-Poststelle-Metadata-"
)

// ParseEML describes an e-mail message as the SMTP adapter would record it,
// for `poststelle route test` (routing.TestCommand's parser). An
// "X-Poststelle-Channel: egvp" header pretends another channel, and
// "X-Poststelle-Metadata-<key>: <value>" headers set channel metadata (e.g.
// X-Poststelle-Metadata-xjustiz.recipient).
func ParseEML(raw []byte) (*gateway.MessageReceived, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := mailmsg.WalkReader(ctx, &memStore{}, bytes.NewReader(raw), int64(len(raw)), mailmsg.Limits{})
	if err != nil {
		return nil, err
	}
	rec := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, ChannelMessageID: m.MessageID, From: m.From, To: m.To,
		Cc: m.Cc, Subject: m.Subject, ReceivedAt: time.Now().UTC(), Parts: m.Parts, Problems: m.Problems}
	if ch := strings.TrimSpace(m.Header.Get(TestChannelHeader)); ch != "" {
		rec.Channel = gateway.Channel(strings.ToLower(ch))
	}
	for _, f := range m.Header {
		if len(f.Name) > len(TestMetadataPrefix) && strings.EqualFold(f.Name[:len(TestMetadataPrefix)], TestMetadataPrefix) {
			if rec.Metadata == nil {
				rec.Metadata = map[string]string{}
			}
			rec.Metadata[f.Name[len(TestMetadataPrefix):]] = strings.TrimSpace(f.Value)
		}
	}
	return rec, nil
}

// memStore keeps the parts of one message in memory; the walk's storage
// budget bounds it.
type memStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func (s *memStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	b, err := io.ReadAll(src)
	if err != nil {
		return blob.Ref{}, err
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return blob.Ref{}, blob.ErrTooLarge
	}
	sum := sha256.Sum256(b)
	ref := blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs = map[string][]byte{}
	}
	s.blobs[ref.SHA256] = b
	return ref, nil
}

func (s *memStore) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[ref.SHA256]
	if !ok {
		return nil, errors.Join(blob.ErrNotFound, errors.New(ref.SHA256))
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
