package preservation

import (
	"context"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// LatestRecords reads the stream evidence-records from the log itself, not
// from the projection, and returns the newest EvidenceRecordSaved of each
// data object by its ObjectName: what the commands beside the gateway (the
// export, a bundle made offline) read, where serve's state database may be
// absent or behind.
func LatestRecords(ctx context.Context, l eventstore.Log, tenant string) (map[string]*gateway.EvidenceRecordSaved, error) {
	evs, err := l.ReadStream(ctx, tenant, gateway.EvidenceRecordsStream)
	if err != nil {
		return nil, fmt.Errorf("preservation: read evidence records: %w", err)
	}
	reg := gateway.NewRegistry()
	latest := map[string]*gateway.EvidenceRecordSaved{}
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("preservation: event %s: %w", evs[i].ID, err)
		}
		if s, ok := p.(*gateway.EvidenceRecordSaved); ok {
			latest[ObjectName(s.Object.Kind, s.Object.Stream, s.Object.Data)] = s
		}
	}
	return latest, nil
}

// OriginalRecordFromLog is OriginalRecord read from the log (LatestRecords),
// for an evidence bundle made by the command.
func OriginalRecordFromLog(l eventstore.Log) func(ctx context.Context, tenant, stream string) (blob.Ref, bool, error) {
	return func(ctx context.Context, tenant, stream string) (blob.Ref, bool, error) {
		latest, err := LatestRecords(ctx, l, tenant)
		if err != nil {
			return blob.Ref{}, false, err
		}
		s, ok := latest[ObjectName(gateway.PreservedOriginal, stream, blob.Ref{})]
		if !ok {
			return blob.Ref{}, false, nil
		}
		return s.Record, true, nil
	}
}
