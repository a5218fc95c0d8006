package gateway

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
)

// This file is the channel contract: what every inbound channel (SMTP,
// IMAP, and later De-Mail, EGVP/OSCI, the FIT-Connect portal, paper scans)
// must do with a message, in this order, and what it may rely on. The
// channel conformance suite (gateway/channeltest) checks each step against
// a real adapter.
//
//  1. Store the raw bytes first. Put the message's bytes, exactly as the
//     peer transmitted them, into the blob store, enforcing the channel's size
//     limit while they stream in (never read a message whole into memory).
//     A message over the limit is refused with the channel's own "too large"
//     answer and nothing is recorded.
//  2. Derive the message key. The key (MessageKey) names one delivery, from
//     what the channel can see again when the same message arrives twice: for
//     SMTP the raw bytes' hash and the envelope, for IMAP the account and the
//     raw bytes' hash. It must not depend on the time of receipt or on
//     anything the channel invents per attempt.
//  3. Record. Build the MessageReceived (for e-mail with mailmsg's receipt
//     builder) and call Recorder.Record. Whatever cannot be parsed is listed
//     in Problems and recorded all the same: hostile or broken input goes to
//     triage with its raw bytes, it is never dropped and never refused for
//     its content.
//  4. Acknowledge only after Record returned without error: the receipt is
//     then durable. If Record fails, the peer must be told to retry (SMTP
//     4xx, IMAP: leave the message unmarked) and nothing may be
//     acknowledged. A Receipt with Duplicate set is a redelivery of a message
//     already recorded; acknowledge it as success, so that the peer stops
//     retrying, and record nothing new.
//
// A crash between 3 and 4 leaves a recorded, unacknowledged message: the
// peer retries, step 2 derives the same key, and Record reports Duplicate.
// A crash before 3 leaves at most an unreferenced blob: the peer retries and
// the message is recorded once.

// Recorder records a received message; *Intake is the one the gateway uses.
// Record is durable when it returns nil: only then may the channel
// acknowledge the message to its peer.
type Recorder interface {
	Record(ctx context.Context, tenant, messageKey string, msg *MessageReceived) (Receipt, error)
}

// BlobStore keeps raw messages and their parts; *blob.Store is one. Put
// must refuse input longer than maxSize with an error wrapping
// blob.ErrTooLarge, having stored nothing.
type BlobStore interface {
	Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error)
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
}

// Inbound is the receiving side of a channel: a listener or a collector
// that follows the contract above for every message until ctx ends.
type Inbound interface {
	// Run receives until ctx ends. It returns nil after a clean stop and an
	// error only when the channel cannot go on (a lost listener); a failing
	// peer or message is the channel's to log and retry, not Run's to
	// return.
	Run(ctx context.Context) error
}

// IntakeDeps are what every inbound channel is built with.
type IntakeDeps struct {
	// Intake records the receipts.
	Intake Recorder
	// Evidence records the delivery evidence a channel receives (De-Mail
	// confirmations, OSCI receipts, portal status reports) about the
	// messages and answers it carries; see EvidenceRecorder.Record. Nil
	// when the gateway was built without it (most tests).
	Evidence *EvidenceRecorder
	// Blobs stores the raw messages and their parts.
	Blobs BlobStore
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// Tenant is the authority the received messages belong to (default
	// DefaultTenant).
	Tenant string
	// Now returns the time of receipt (default time.Now).
	Now func() time.Time
	// Log and State, when set, are the gateway's log and its read-model
	// database (state.db), for a channel that keeps a read model of its own
	// (the postbox API's answer queue, channels/postbox). Nil in most tests;
	// such a channel then offers only its intake.
	Log   eventstore.Log
	State *sql.DB
	// AfterRecord, when set, runs after a message is recorded and before the
	// channel acknowledges it. Fault-injection tests use it to crash in the
	// window a lost acknowledgement falls into.
	AfterRecord func(Receipt)
}

// ErrIntakeDeps reports IntakeDeps without a Recorder or a BlobStore.
var ErrIntakeDeps = errors.New("gateway: IntakeDeps.Intake and IntakeDeps.Blobs are required")

// WithDefaults checks d and fills in its defaults.
func (d IntakeDeps) WithDefaults() (IntakeDeps, error) {
	if d.Intake == nil || d.Blobs == nil {
		return d, ErrIntakeDeps
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tenant == "" {
		d.Tenant = DefaultTenant
	}
	return d, nil
}
