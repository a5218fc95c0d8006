package gateway

import (
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// EvidenceRecordsStream is the stream of every EvidenceRecordSaved. One
// stream for all of them, so that in a cluster one owner (the owner of its
// partition) builds and renews the records and no two nodes renew the same
// one.
const EvidenceRecordsStream = "evidence-records"

// Kinds of data objects kept under evidence records.
const (
	// PreservedOriginal is a received message's raw bytes (MessageReceived.Raw).
	PreservedOriginal = "original"
	// PreservedLogHead is a signed head note of the log (integrity.SignHeads),
	// stored as a blob by the preservation job.
	PreservedLogHead = "log-head"
)

// Causes of an EvidenceRecordSaved, in the notions of RFC 4998 and BSI
// TR-ESOR.
const (
	// RecordBuilt: the first record of the object (RFC 4998 section 4.2).
	RecordBuilt = "built"
	// RecordTimestampRenewal: a new archive timestamp in the newest chain
	// ("Erneuerung von Zeitstempeln", RFC 4998 section 5.2).
	RecordTimestampRenewal = "timestamp-renewal"
	// RecordHashTreeRenewal: a new chain under a new hash algorithm
	// ("Hashbaum-Erneuerung", RFC 4998 section 5.2).
	RecordHashTreeRenewal = "hash-tree-renewal"
)

// PreservedObject is the data object an evidence record covers.
type PreservedObject struct {
	// Kind is PreservedOriginal or PreservedLogHead.
	Kind string `json:"kind"`
	// Stream is the message's stream for an original, empty for a log head.
	Stream string `json:"stream,omitempty"`
	// Data is the object's blob.
	Data blob.Ref `json:"data"`
}

// EvidenceRecordSaved records that an RFC 4998 evidence record over a data
// object was built or renewed and stored as a blob (DER). The newest event
// of an object names its current record; each renewal's record contains the
// previous one, so the latest is all an auditor needs. Appended by
// gateway/preservation in the stream EvidenceRecordsStream.
type EvidenceRecordSaved struct {
	Object PreservedObject `json:"object"`
	// Record is the DER EvidenceRecord.
	Record blob.Ref `json:"record"`
	// Cause is RecordBuilt, RecordTimestampRenewal or RecordHashTreeRenewal.
	Cause string `json:"cause"`
	// Hash names the newest chain's digest algorithm ("SHA-256").
	Hash string `json:"hash"`
	// GenTime and TSA describe the newest archive timestamp: its genTime
	// and the subject of the TSA certificate that signed it.
	GenTime time.Time `json:"genTime"`
	TSA     string    `json:"tsa"`
	// NextDue is when the renewal policy foresees the next renewal (zero:
	// none foreseen by the catalogue).
	NextDue time.Time `json:"nextDue,omitzero"`
}

// EventType implements Payload.
func (EvidenceRecordSaved) EventType() string { return "EvidenceRecordSaved" }

// SchemaVersion implements Payload.
func (EvidenceRecordSaved) SchemaVersion() int { return 1 }

// BlobRefs lists the record and the data object. An original's raw bytes
// may have been erased at the end of their retention; log verify skips
// blobs a ContentErased lists, and the record stays checkable with the
// hash alone (timestamp renewal does not need the bytes).
func (s *EvidenceRecordSaved) BlobRefs() []blob.Ref { return refs(s.Record, s.Object.Data) }

// EvidenceRecordEventID is the id of the EvidenceRecordSaved that replaces
// previous (the record's blob hash, empty for the first) of an object for a
// cause: a second node or a rerun doing the same step appends nothing new.
func EvidenceRecordEventID(tenant, object, cause, previous string) string {
	return digestID("ers-", tenant, object, cause, previous)
}
