package kafkalog

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore/integrity"
)

// publicKeyRecord is the key of the record by which a notary announces its
// public key on partition 0 of the checkpoints topic. Checkpoint readers skip
// it because it does not parse as a checkpoint.
const publicKeyRecord = "public-key"

// maxKeyScan bounds how many checkpoint records PublishedKeys reads looking
// for announcements, so a hostile or huge topic cannot hold an audit forever.
const maxKeyScan = 1 << 20

// publishKey announces the signer's public key (PKIX DER) beside the
// checkpoints, so that an auditor who has only the brokers can find the key
// the heads claim to be signed with. Like a key read from the data
// directory it proves nothing alone: log verify warns unless it is pinned.
func (l *Log) publishKey(ctx context.Context, w *kafka.Writer) error {
	der, err := x509.MarshalPKIXPublicKey(l.cfg.Signer.Public())
	if err != nil {
		return fmt.Errorf("kafkalog: encode the public key: %w", err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(publicKeyRecord), Value: der, Time: time.Now().UTC()}); err != nil {
		return fmt.Errorf("kafkalog: publish the public key: %w", err)
	}
	return nil
}

// PublishedKeys returns the distinct public keys notaries announced on the
// checkpoints topic, by KeyID, oldest first. Records that do not parse are
// skipped.
func (l *Log) PublishedKeys(ctx context.Context) (map[string]crypto.PublicKey, error) {
	out := map[string]crypto.PublicKey{}
	for off, seen := int64(0), 0; seen < maxKeyScan; {
		res, err := l.client.Fetch(ctx, &kafka.FetchRequest{Topic: l.cpTopic, Partition: 0,
			Offset: off, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 50 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return nil, fmt.Errorf("kafkalog: read published keys at %d: %w", off, err)
		}
		recs, err := readRecords(res.Records, res.HighWatermark)
		if err != nil {
			return nil, fmt.Errorf("kafkalog: read published keys: %w", err)
		}
		for _, r := range recs {
			if r.offset < off {
				continue
			}
			off, seen = r.offset+1, seen+1
			if string(r.key) != publicKeyRecord || len(r.value) > maxCheckpointRecord {
				continue
			}
			pub, err := x509.ParsePKIXPublicKey(r.value)
			if err != nil {
				continue
			}
			id, err := integrity.KeyID(pub)
			if err != nil {
				continue
			}
			out[id] = pub
		}
		if off >= res.HighWatermark || len(recs) == 0 {
			break
		}
	}
	return out, nil
}
