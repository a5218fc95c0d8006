package integrity

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
)

// AuditedLog is what an auditor needs of a log: its events and signed heads.
type AuditedLog interface {
	eventstore.Log
	eventstore.Heads
}

// LogSummary is the outcome of verifying a whole log.
type LogSummary struct {
	Partitions []Summary
	Events     int64
}

// VerifyLog checks every partition of the log against its signed checkpoints.
// It returns a *Problem naming the first broken position, or an error when the
// log cannot be read at all. each, when set, sees every verified event (the
// CLI reports progress and checks blobs with it).
func VerifyLog(ctx context.Context, l AuditedLog, pub crypto.PublicKey, each func(*eventstore.Event) error) (LogSummary, error) {
	var out LogSummary
	parts, err := l.Partitions(ctx)
	if err != nil {
		return out, fmt.Errorf("integrity: count partitions: %w", err)
	}
	for p := range parts {
		s, err := verifyPartition(ctx, l, pub, p, each)
		if err != nil {
			return out, err
		}
		out.Partitions = append(out.Partitions, s)
		out.Events += s.Events
	}
	return out, nil
}

func verifyPartition(ctx context.Context, l AuditedLog, pub crypto.PublicKey, p int32, each func(*eventstore.Event) error) (Summary, error) {
	cps, err := l.Checkpoints(ctx, p)
	if err != nil {
		return Summary{}, &Problem{Partition: p, Offset: 0, Reason: "checkpoints unreadable: " + err.Error()}
	}
	v, err := NewVerifier(pub, l.LogID(), p, cps)
	if err != nil {
		return Summary{}, err
	}
	// Reading and hashing overlap: a reader goroutine fetches the next
	// batches while this one hashes, which doubles the rate on two cores.
	batches := make(chan readBatch, 4)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go readAhead(ctx, l, p, batches)
	for b := range batches {
		if b.err != nil {
			if ctx.Err() != nil {
				return Summary{}, ctx.Err()
			}
			return Summary{}, &Problem{Partition: p, Offset: b.from, Reason: "events unreadable: " + b.err.Error()}
		}
		for i := range b.evs {
			if err := v.Add(&b.evs[i]); err != nil {
				return Summary{}, err
			}
			if each != nil {
				if err := each(&b.evs[i]); err != nil {
					return Summary{}, &Problem{Partition: p, Offset: b.evs[i].Position.Offset, Reason: err.Error()}
				}
			}
		}
	}
	return v.Finish()
}

type readBatch struct {
	from int64
	evs  []eventstore.Event
	err  error
}

// readAhead sends a partition's events in batches and closes the channel at
// the end or after the first error.
func readAhead(ctx context.Context, l AuditedLog, p int32, out chan<- readBatch) {
	defer close(out)
	for from := int64(0); ; {
		evs, err := l.Read(ctx, p, from, 2000)
		if len(evs) == 0 && err == nil {
			return
		}
		select {
		case out <- readBatch{from: from, evs: evs, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		from = evs[len(evs)-1].Position.Offset + 1
	}
}

// StreamProof lets a third party check that one message's events are in the
// log without seeing any other event: the events themselves, each with an
// inclusion proof against one signed checkpoint of its partition.
type StreamProof struct {
	LogID  string        `json:"logId"`
	Events []ProvenEvent `json:"events"`
	// Checkpoints are the signed heads the proofs refer to, in the text
	// form of FormatCheckpoint, one per partition involved.
	Checkpoints []string `json:"checkpoints"`
}

// ProvenEvent is one event with its proof.
type ProvenEvent struct {
	// Leaf is the event's canonical encoding (EncodeLeaf), base64.
	Leaf      string   `json:"leaf"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TreeSize  int64    `json:"treeSize"`
	Proof     []string `json:"proof"`
}

// ProveStream builds the proof for one stream against the newest checkpoint
// of its partition; events newer than that checkpoint are not yet provable.
func ProveStream(ctx context.Context, l AuditedLog, tenant, stream string) (*StreamProof, error) {
	evs, err := l.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("integrity: read stream %s: %w", stream, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("integrity: stream %s has no events", stream)
	}
	out := &StreamProof{LogID: l.LogID()}
	trees := map[int32]*Tree{}
	heads := map[int32]eventstore.Checkpoint{}
	for i := range evs {
		p := evs[i].Position.Partition
		if _, ok := trees[p]; !ok {
			t, head, err := buildTree(ctx, l, p)
			if err != nil {
				return nil, err
			}
			trees[p], heads[p] = t, head
			out.Checkpoints = append(out.Checkpoints, string(FormatCheckpoint(l.LogID(), &head)))
		}
		head := heads[p]
		if evs[i].Position.Offset >= head.Size {
			continue
		}
		proof, err := trees[p].InclusionProof(evs[i].Position.Offset, head.Size)
		if err != nil {
			return nil, err
		}
		pe := ProvenEvent{Leaf: base64.StdEncoding.EncodeToString(EncodeLeaf(&evs[i])), Partition: p,
			Offset: evs[i].Position.Offset, TreeSize: head.Size}
		for _, h := range proof {
			pe.Proof = append(pe.Proof, base64.StdEncoding.EncodeToString(h[:]))
		}
		out.Events = append(out.Events, pe)
	}
	if len(out.Events) == 0 {
		return nil, fmt.Errorf("integrity: no checkpoint covers stream %s yet", stream)
	}
	return out, nil
}

// buildTree reads a partition's leaves up to its newest checkpoint.
func buildTree(ctx context.Context, l AuditedLog, p int32) (*Tree, eventstore.Checkpoint, error) {
	cps, err := l.Checkpoints(ctx, p)
	if err != nil || len(cps) == 0 {
		return nil, eventstore.Checkpoint{}, fmt.Errorf("integrity: partition %d has no checkpoint: %v", p, err)
	}
	head := cps[len(cps)-1]
	t := &Tree{}
	for from := int64(0); from < head.Size; {
		evs, err := l.Read(ctx, p, from, 2000)
		if err != nil {
			return nil, head, err
		}
		if len(evs) == 0 {
			return nil, head, fmt.Errorf("integrity: partition %d ends before its checkpoint", p)
		}
		for i := range evs {
			if evs[i].Position.Offset < head.Size {
				if err := t.Append(LeafHash(&evs[i])); err != nil {
					return nil, head, err
				}
			}
		}
		from = evs[len(evs)-1].Position.Offset + 1
	}
	if root, _ := t.Root(head.Size); root != head.Root {
		return nil, head, fmt.Errorf("integrity: partition %d does not match its newest checkpoint; run log verify", p)
	}
	return t, head, nil
}

// CheckStreamProof verifies a StreamProof with the gateway's public key and
// returns the proven leaf encodings.
func CheckStreamProof(pub crypto.PublicKey, sp *StreamProof) ([][]byte, error) {
	heads := map[int32]eventstore.Checkpoint{}
	for _, text := range sp.Checkpoints {
		logID, c, err := ParseCheckpoint([]byte(text))
		if err != nil {
			return nil, err
		}
		if logID != sp.LogID {
			return nil, errors.New("integrity: checkpoint of another log")
		}
		if err := VerifyCheckpoint(pub, logID, &c); err != nil {
			return nil, err
		}
		heads[c.Partition] = c
	}
	var leaves [][]byte
	for i, pe := range sp.Events {
		head, ok := heads[pe.Partition]
		if !ok || head.Size != pe.TreeSize {
			return nil, fmt.Errorf("integrity: event %d refers to no supplied checkpoint", i)
		}
		leaf, err := base64.StdEncoding.DecodeString(pe.Leaf)
		if err != nil {
			return nil, fmt.Errorf("integrity: event %d: %w", i, err)
		}
		proof := make([][32]byte, len(pe.Proof))
		for j, s := range pe.Proof {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("integrity: event %d: malformed proof hash %d", i, j)
			}
			copy(proof[j][:], b)
		}
		if err := CheckInclusion(proof, head.Size, head.Root, pe.Offset, recordHash(leaf)); err != nil {
			return nil, err
		}
		leaves = append(leaves, leaf)
	}
	return leaves, nil
}
