// Package eventstore defines Poststelle's append-only event log: the one source
// of truth from which every read model is derived (see ARCHITECTURE.md).
//
// The log is divided into partitions. Each partition is a totally ordered
// sequence of events addressed by offset (0, 1, 2, …). All events of one stream
// (one message's history) land in the same partition, so a stream is ordered.
// The embedded backend has a single partition; the Kafka backend has as many as
// its topic. Each partition is also an integrity chain: every event carries the
// hash of its predecessor, and the backend writes signed tree heads over the
// partition (package integrity).
//
// The log knows nothing about channels or message contents: payloads are opaque
// bytes with a type name and a schema version.
package eventstore

import (
	"context"
	"errors"
	"time"
)

// Event is one entry of the log. The fields up to Data are supplied by the
// appender; the rest are assigned by the log when the event is appended.
type Event struct {
	// ID identifies the event; appending an ID that exists is a no-op that
	// returns the stored event (idempotent retry).
	ID string
	// Tenant is the authority the event belongs to.
	Tenant string
	// Stream groups the events of one message (or one other aggregate).
	Stream string
	// Type names the payload schema, e.g. "MessageReceived".
	Type string
	// Version is the payload schema version.
	Version int
	// MessageKey, when set, must be unique within the tenant: a second event
	// with the same key but another ID is refused with ErrDuplicateMessage.
	// Inbound adapters set it from the channel's own message id or the raw
	// bytes' hash so that a redelivered message never becomes two.
	MessageKey string
	// CorrelationID ties together all events caused by one inbound message.
	CorrelationID string
	// CausationID is the ID of the event that caused this one, if any.
	CausationID string
	// Metadata carries small string attributes (transport headers, actor).
	Metadata map[string]string
	// Data is the encoded payload.
	Data []byte

	// Position is where the log stored the event.
	Position Position
	// StreamSeq is the event's 1-based number within its stream.
	StreamSeq int64
	// RecordedAt is when the log accepted the event (UTC).
	RecordedAt time.Time
	// PrevHash is the leaf hash of the previous event in the partition (zero
	// for the first event).
	PrevHash [32]byte
}

// Position addresses an event within the log.
type Position struct {
	Partition int32
	Offset    int64
}

// Result reports the outcome of appending one event.
type Result struct {
	Position Position
	// Existing is true when the event ID was already in the log; Position
	// then refers to the stored event.
	Existing bool
}

// Errors returned by Log implementations. They are compared with errors.Is.
var (
	// ErrDuplicateMessage means another event already claimed the MessageKey.
	ErrDuplicateMessage = errors.New("eventstore: message key already recorded")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("eventstore: log closed")
	// ErrInvalidEvent means an event lacks a required field or is too large.
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrConflict means the same event ID was appended with other content.
	ErrConflict = errors.New("eventstore: event id reused with different content")
)

// DuplicateError carries the event that holds a MessageKey already. It
// matches ErrDuplicateMessage with errors.Is.
type DuplicateError struct {
	Key      string
	Existing Event
}

func (e *DuplicateError) Error() string {
	return "eventstore: message key " + e.Key + " already recorded as event " + e.Existing.ID
}

// Is reports that a DuplicateError is an ErrDuplicateMessage.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicateMessage }

// MaxDataSize caps one event's payload. Raw message bytes never travel in
// events; they live in the blob store and events refer to them by hash.
const MaxDataSize = 1 << 20

// Log is the append-only event log. Implementations are safe for concurrent
// use. Append returns only after the events are durable: acknowledged events
// survive a crash of the process and of the machine.
type Log interface {
	// Append stores events atomically per event, in the given order. A batch
	// is not a transaction: each event succeeds or fails on its own, and the
	// first failure is returned after the earlier events are durable.
	Append(ctx context.Context, events ...Event) ([]Result, error)
	// Partitions reports how many partitions the log has.
	Partitions(ctx context.Context) (int32, error)
	// Read returns up to limit events of a partition starting at offset from.
	// It returns no events and no error at the end of the partition.
	Read(ctx context.Context, partition int32, from int64, limit int) ([]Event, error)
	// ReadStream returns all events of one stream in order.
	ReadStream(ctx context.Context, tenant, stream string) ([]Event, error)
	// End reports the offset the next event of a partition will get.
	End(ctx context.Context, partition int32) (int64, error)
	// Subscribe delivers events to h until ctx ends or h fails. Within a
	// group, each partition is delivered to one subscriber at a time (the
	// embedded backend has one partition and one process). For every
	// partition it takes over, Subscribe asks start for the offset to begin
	// at, so that a projection can keep its position in its own store, in
	// the same transaction as its read model. Events of a partition are
	// delivered one at a time in offset order; after a handover, events
	// after the last position the projection recorded are delivered again.
	Subscribe(ctx context.Context, group string, start StartFunc, h Handler) error
	// Close releases the log's resources; pending appends fail with ErrClosed.
	Close() error
}

// Follower is implemented by logs with several partitions that can deliver
// all of them to one process outside any group, so that every process keeps
// a complete read model of its own. Projections use it when the log offers
// it; handlers with side effects use Subscribe, so that each event is
// handled by one process of the group.
type Follower interface {
	// Follow delivers every partition's events to h, from the offset start
	// returns for each, until ctx ends or h fails. Partitions are delivered
	// concurrently, each in offset order.
	Follow(ctx context.Context, start StartFunc, h Handler) error
}

// StartFunc returns the offset from which to deliver a partition.
type StartFunc func(ctx context.Context, partition int32) (int64, error)

// Handler processes one event. An error stops the subscription.
type Handler func(ctx context.Context, e Event) error

// Heads is implemented by logs that record signed tree heads (checkpoints)
// for their partitions, which is every backend in this repository.
type Heads interface {
	// LogID identifies the log in its signed checkpoints.
	LogID() string
	// Checkpoints returns the signed heads of a partition in increasing size.
	Checkpoints(ctx context.Context, partition int32) ([]Checkpoint, error)
}

// Checkpoint is a signed statement of a partition's Merkle tree head: the
// first Size events of the partition hash to Root. See package integrity.
type Checkpoint struct {
	Partition int32
	Size      int64
	Root      [32]byte
	Time      time.Time
	KeyID     string
	Signature []byte
}

// Validate checks the fields an appender must supply.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return errors.Join(ErrInvalidEvent, errors.New("missing id"))
	case e.Tenant == "":
		return errors.Join(ErrInvalidEvent, errors.New("missing tenant"))
	case e.Stream == "":
		return errors.Join(ErrInvalidEvent, errors.New("missing stream"))
	case e.Type == "":
		return errors.Join(ErrInvalidEvent, errors.New("missing type"))
	case e.Version < 1:
		return errors.Join(ErrInvalidEvent, errors.New("version must be at least 1"))
	case len(e.Data) > MaxDataSize:
		return errors.Join(ErrInvalidEvent, errors.New("payload exceeds 1 MiB"))
	case len(e.ID) > 200 || len(e.Tenant) > 200 || len(e.Stream) > 200 || len(e.Type) > 200 || len(e.MessageKey) > 1000:
		return errors.Join(ErrInvalidEvent, errors.New("identifier too long"))
	}
	return nil
}
