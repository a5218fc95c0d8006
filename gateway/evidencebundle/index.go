// Package evidencebundle builds and checks the evidence bundle of one
// message: a single ASiC-E file (EN 319 162-1) that proves to a court, an
// auditor or the other party what the gateway received and did, checkable
// without Poststelle.
//
// The bundle holds the original bytes, the receipt timestamp, the
// verification reports and Prüfprotokolle, the channel's transport evidence,
// every event of the message's stream as JSON and in its exact leaf encoding
// (docs/wire-format.md), an RFC 9162 inclusion proof of each event against
// the log head signed by the gateway key (a C2SP signed note), the RFC 3161
// timestamp over that head when a TSA is configured, and the gateway's
// public key. evidence.json says what each file is. The ASiCManifest lists
// every file with its SHA-256, and a CAdES seal (the seal certificate of the
// configuration) signs the manifest, so that the EU DSS validator checks the
// container as it is. docs/evidence.md walks an auditor through checking it
// by hand.
package evidencebundle

import (
	"encoding/json"
	"time"
)

// Format names the layout of evidence.json and the files it lists; a
// verifier refuses other formats rather than guess.
const Format = "poststelle-evidence-bundle/1"

// Names of the fixed files in a bundle.
const (
	IndexName     = "evidence.json"
	KeyName       = "gateway.pub"
	HeadName      = "log/head.note"
	HeadStampName = "log/head.tsr"
	ProofsName    = "log/proofs.json"
	// RecordName is the RFC 4998 evidence record over the original, when
	// the gateway keeps one (role RecordRole).
	RecordName     = "records/original.ers"
	RecordRole     = "evidence-record"
	eventsDir      = "log/events/"
	maxIndexSize   = 8 << 20
	maxProofsSize  = 16 << 20
	maxEventsInBag = 10_000
)

// Index is evidence.json: what the bundle is about and what each file in it
// is. It is a data object of the container, covered by the seal.
type Index struct {
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	LogID     string    `json:"logId"`
	Tenant    string    `json:"tenant"`
	Stream    string    `json:"stream"`
	// Message summarises the receipt (from its MessageReceived event).
	Message *MessageSummary `json:"message,omitempty"`
	// GatewayKey is the public key that signs the log head.
	GatewayKey KeyInfo `json:"gatewayKey"`
	// Seal names the certificates the seal carries, so that none of them
	// can be swapped: the seal's SignedData is checked to hold exactly these.
	Seal SealInfo `json:"seal"`
	// Head is the signed log head the proofs lead to.
	Head HeadInfo `json:"head"`
	// Erased is set when the message's contents were erased (crypto-
	// shredding): the bundle then proves the events but cannot hold the
	// erased bytes.
	Erased *Erasure `json:"erased,omitempty"`
	// Files lists every file of the container but mimetype, META-INF/ and
	// this index.
	Files []FileInfo `json:"files"`
	// Events lists the stream's events in stream order.
	Events []EventInfo `json:"events"`
	// Missing lists blobs the events refer to that the bundle does not
	// hold, and why.
	Missing []MissingBlob `json:"missing,omitempty"`
}

// MessageSummary is what a reader of the index wants to know first.
type MessageSummary struct {
	Channel         string    `json:"channel"`
	SenderMessageID string    `json:"senderMessageId,omitempty"`
	From            string    `json:"from,omitempty"`
	Subject         string    `json:"subject,omitempty"`
	ReceivedAt      time.Time `json:"receivedAt"`
	// ReceiptTimestamp is the TSA's time of the receipt timestamp over the
	// original bytes, when there is one: the time a court can rely on
	// without trusting the gateway's clock.
	ReceiptTimestamp *time.Time `json:"receiptTimestamp,omitempty"`
	ReceiptTSA       string     `json:"receiptTsa,omitempty"`
	// Original is the file with the bytes as received.
	Original string `json:"original,omitempty"`
}

// KeyInfo names the gateway key file and its fingerprint (as `keys init`
// prints it), to compare with the fingerprint the authority published.
type KeyInfo struct {
	File        string `json:"file"`
	Fingerprint string `json:"fingerprint"`
}

// SealInfo describes the seal over the manifest.
type SealInfo struct {
	File string `json:"file"`
	// Subject is the seal certificate's subject.
	Subject string `json:"subject"`
	// Certificates are the hex SHA-256 of the DER of every certificate in
	// the seal's SignedData, the seal certificate first.
	Certificates []string `json:"certificates"`
}

// HeadInfo describes the signed head.
type HeadInfo struct {
	File string `json:"file"`
	// Timestamp is the RFC 3161 TimeStampResp over the head file's bytes;
	// empty when no TSA was configured.
	Timestamp string `json:"timestamp,omitempty"`
	// Source says where the head came from: "signed at bundle time".
	Source string `json:"source"`
	// Partitions are the heads in the file: size and root per partition.
	Partitions []HeadPartition `json:"partitions"`
}

// HeadPartition is one partition's head.
type HeadPartition struct {
	Partition int32  `json:"partition"`
	Size      int64  `json:"size"`
	Root      string `json:"root"` // hex
}

// Erasure records that the message's contents were erased.
type Erasure struct {
	At     time.Time `json:"at,omitzero"`
	Rule   string    `json:"rule,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Event is the id of the event that records the erasure.
	Event string `json:"event"`
}

// FileInfo is one file of the bundle.
type FileInfo struct {
	Name string `json:"name"`
	// Role is machine-readable: original, report, pruefprotokoll,
	// receipt-timestamp, transport-evidence, answer, blob, event, leaf,
	// proofs, head, head-timestamp, gateway-key.
	Role        string `json:"role"`
	Description string `json:"description"`
	MediaType   string `json:"mediaType"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	// Events are the ids of the events that refer to this file.
	Events []string `json:"events,omitempty"`
}

// EventInfo is one event of the stream.
type EventInfo struct {
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	Type      string `json:"type"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// JSON is the readable file, Leaf the exact bytes hashed into the log.
	JSON string `json:"json"`
	Leaf string `json:"leaf"`
	// LeafHash is the hex RFC 9162 leaf hash, SHA-256(0x00 || leaf).
	LeafHash string `json:"leafHash"`
}

// MissingBlob is a blob an event refers to that is not in the bundle.
type MissingBlob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Event  string `json:"event"`
	Reason string `json:"reason"`
}

// Proofs is log/proofs.json: one inclusion proof per event.
type Proofs struct {
	LogID  string  `json:"logId"`
	Proofs []Proof `json:"proofs"`
}

// Proof is the RFC 9162 inclusion proof of one leaf in the tree of its
// partition's head.
type Proof struct {
	Leaf      string `json:"leaf"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	TreeSize  int64  `json:"treeSize"`
	// Path is the audit path, hex, from the leaf's sibling up.
	Path []string `json:"path"`
}

// eventJSON is the readable form of an event (the fields of the leaf).
type eventJSON struct {
	Partition     int32             `json:"partition"`
	Offset        int64             `json:"offset"`
	PrevHash      string            `json:"prevHash"`
	RecordedAt    string            `json:"recordedAt"`
	ID            string            `json:"id"`
	Tenant        string            `json:"tenant"`
	Stream        string            `json:"stream"`
	Type          string            `json:"type"`
	StreamSeq     int64             `json:"streamSeq"`
	Version       int               `json:"version"`
	MessageKey    string            `json:"messageKey"`
	CorrelationID string            `json:"correlationId"`
	CausationID   string            `json:"causationId"`
	Metadata      map[string]string `json:"metadata"`
	// Data is the payload as recorded when it is JSON (it always is for
	// the gateway's events); DataBase64 otherwise.
	Data       json.RawMessage `json:"data,omitempty"`
	DataBase64 string          `json:"dataBase64,omitempty"`
}
