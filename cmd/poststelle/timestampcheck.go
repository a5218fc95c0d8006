package main

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// timestampChecker holds each TimestampApplied to what it claims: that its
// token timestamps the raw bytes of the message it follows. The blob hash
// check proves only that the token's bytes are the ones stored; a token
// over other data (from a TSA that answered another request, or swapped in
// by whoever holds the signing key and rewrote the log) would pass it.
type timestampChecker struct {
	store blob.Backend
	log   eventstore.Log
	reg   *gateway.Registry
}

// check compares the token's messageImprint with the imprint the event
// records, and with the raw message's bytes hashed with the token's
// algorithm, and the token's genTime and serial with the event's.
func (c *timestampChecker) check(ctx context.Context, e *eventstore.Event, ts *gateway.TimestampApplied) error {
	der, err := c.store.ReadAll(ctx, ts.Token, tsp.MaxTokenSize)
	if err != nil {
		return fmt.Errorf("read the timestamp token: %w", err)
	}
	tok, err := tsp.ParseToken(der)
	if err != nil {
		return fmt.Errorf("the timestamp token does not parse: %w", err)
	}
	info := tok.Info
	if info.Hash == 0 {
		return fmt.Errorf("the timestamp token's imprint algorithm %s is not supported", info.HashAlgorithm.OID)
	}
	alg := sigalg.HashName(info.Hash)
	recorded, err := hex.DecodeString(strings.TrimSpace(ts.Imprint))
	if err != nil || subtle.ConstantTimeCompare(recorded, info.HashedMessage) != 1 {
		return fmt.Errorf("the timestamp token covers %s %x, but the event records the imprint %q", alg, info.HashedMessage, ts.Imprint)
	}
	if !ts.GenTime.Equal(info.GenTime) {
		return fmt.Errorf("the timestamp token's genTime is %s, but the event records %s", info.GenTime.UTC().Format(timeLayout), ts.GenTime.UTC().Format(timeLayout))
	}
	if info.SerialNumber != nil && ts.Serial != "" && ts.Serial != info.SerialNumber.String() {
		return fmt.Errorf("the timestamp token's serial is %s, but the event records %s", info.SerialNumber, ts.Serial)
	}
	raw, err := c.rawOf(ctx, e)
	if err != nil {
		return err
	}
	sum, err := c.hashBlob(ctx, raw, info)
	if errors.Is(err, blob.ErrErased) {
		// The raw bytes are gone; their SHA-256 is what the receipt
		// event recorded, so a SHA-256 token is still held to it.
		if info.Hash != crypto.SHA256 {
			return &erasedRaw{ref: raw}
		}
		sum, err = hex.DecodeString(raw.SHA256)
		if err == nil {
			if subtle.ConstantTimeCompare(sum, info.HashedMessage) != 1 {
				return fmt.Errorf("the timestamp token covers %s %x, but the erased raw message it follows had SHA-256 %s: the token timestamps other data",
					alg, info.HashedMessage, raw.SHA256)
			}
			return &erasedRaw{ref: raw}
		}
	}
	if err != nil {
		return fmt.Errorf("hash the raw message %s: %w", raw.SHA256, err)
	}
	if subtle.ConstantTimeCompare(sum, info.HashedMessage) != 1 {
		return fmt.Errorf("the timestamp token covers %s %x, but the raw message %s it follows hashes to %x: the token timestamps other data",
			alg, info.HashedMessage, raw.SHA256, sum)
	}
	return nil
}

// erasedRaw is a timestamp whose raw message was erased: what could be
// checked without the bytes held; the erasure must be on record.
type erasedRaw struct{ ref blob.Ref }

func (e *erasedRaw) Error() string { return "the raw message " + e.ref.SHA256 + " is erased" }

// timeLayout prints times to the nanosecond, since a genTime may carry
// fractions.
const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// rawOf finds the raw message the timestamp follows: the MessageReceived
// that caused it, in its stream.
func (c *timestampChecker) rawOf(ctx context.Context, e *eventstore.Event) (blob.Ref, error) {
	evs, err := c.log.ReadStream(ctx, e.Tenant, e.Stream)
	if err != nil {
		return blob.Ref{}, fmt.Errorf("read the message the timestamp follows: %w", err)
	}
	for i := range evs {
		if evs[i].ID != e.CausationID {
			continue
		}
		p, err := c.reg.Decode(&evs[i])
		if err != nil {
			return blob.Ref{}, fmt.Errorf("decode the message the timestamp follows (%s): %w", evs[i].ID, err)
		}
		m, ok := p.(*gateway.MessageReceived)
		if !ok {
			return blob.Ref{}, fmt.Errorf("the timestamp follows %s, a %s, not a MessageReceived", evs[i].ID, evs[i].Type)
		}
		if m.Raw == (blob.Ref{}) {
			return blob.Ref{}, fmt.Errorf("the message %s the timestamp follows has no raw bytes", evs[i].ID)
		}
		return m.Raw, nil
	}
	return blob.Ref{}, fmt.Errorf("the message %q the timestamp follows is not in its stream %s", e.CausationID, e.Stream)
}

// hashBlob hashes a blob with the token's imprint algorithm, streaming:
// raw messages may be large.
func (c *timestampChecker) hashBlob(ctx context.Context, ref blob.Ref, info *tsp.TSTInfo) ([]byte, error) {
	rc, err := c.store.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h := info.Hash.New()
	if _, err := io.Copy(h, rc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return h.Sum(nil), nil
}
