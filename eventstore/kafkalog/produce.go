package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/poststelle/poststelle/eventstore"
)

// The producer gathers the records of all concurrent Append calls and sends
// them in one produce request per leader broker, covering every partition
// that broker leads. kafka-go's Writer sends one request per partition
// instead, so with many partitions a round of appends cost a dozen round
// trips where one does; on a busy machine each of them waits for the
// scheduler, and the appenders wait for the slowest.
//
// Batching needs no timer: while a request is in flight, new appends queue,
// and the next request takes all of them. An Append's records of one
// partition always travel in one batch, which the broker stores or refuses
// as a whole, so a retry never reorders the events of one call.

// Producer limits.
const (
	produceQueue       = 4096             // Append calls waiting for the producer
	produceMaxRecords  = 8192             // records in one request
	produceMaxBytes    = 1 << 20          // record bytes in one request, below the topic's max.message.bytes (2 MiB) per partition batch
	produceInFlight    = 1                // requests in flight at once (2 and more measured slower: smaller batches)
	produceAttempts    = 10               // sends of one record before its Append fails
	produceAckTimeout  = 10 * time.Second // how long the broker waits for the replicas
	produceBackoffMin  = 50 * time.Millisecond
	produceBackoffMax  = 2 * time.Second
	produceRoundTripTO = produceAckTimeout + 20*time.Second
)

// produceRecord is one record of an Append call.
type produceRecord struct {
	partition int32
	key       []byte
	value     []byte
	time      time.Time
	nonce     string
}

// produceJob is the records of one Append call that are not yet stored.
type produceJob struct {
	ctx      context.Context
	recs     []produceRecord
	attempts int
	lastErr  error
	done     chan error // receives once
}

func (j *produceJob) size() int {
	n := 0
	for i := range j.recs {
		n += len(j.recs[i].key) + len(j.recs[i].value) + 64
	}
	return n
}

// write hands an Append call's records to the producer and waits until the
// brokers acknowledged all of them (acks=all) or the producer gave up.
func (l *Log) write(ctx context.Context, recs []produceRecord) error {
	j := &produceJob{ctx: ctx, recs: recs, done: make(chan error, 1)}
	select {
	case <-l.live.Done():
		return eventstore.ErrClosed
	default:
	}
	select {
	case l.produceQ <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.live.Done():
		return eventstore.ErrClosed
	}
	// A job queued while Close stops the producer may never be answered;
	// l.done ends the wait then.
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The records may still be stored; a retry of the same events is
		// idempotent. The producer drops the job if it has not sent it yet.
		return ctx.Err()
	case <-l.done:
		return eventstore.ErrClosed
	}
}

// producer sends the queued records until ctx ends. The requests in
// flight then still complete (they run on l.ctx, which Close keeps alive
// until its deadline), so that the notary's final checkpoints at Close see
// every record this process will ever store.
func (l *Log) producer(ctx context.Context) {
	results := make(chan []*produceJob, produceInFlight)
	inFlight := 0
	var retry []*produceJob
	var carry *produceJob // taken from the queue but did not fit the last request
	var backoff time.Duration
	for {
		// Retries are resent after everything in flight has come back, so
		// after the round that failed.
		if inFlight == produceInFlight || (len(retry) > 0 && inFlight > 0) {
			select {
			case <-ctx.Done():
				l.failUnsettled(results, inFlight, retry, carry)
				return
			case failed := <-results:
				inFlight--
				retry, backoff = l.settle(failed, retry, backoff)
			}
			continue
		}
		var batch []*produceJob
		if len(retry) > 0 {
			select {
			case <-ctx.Done():
				l.failUnsettled(results, inFlight, retry, carry)
				return
			case <-time.After(backoff):
			}
			batch, retry = retry, nil
		} else if carry == nil {
			select {
			case <-ctx.Done():
				l.failUnsettled(results, inFlight, retry, carry)
				return
			case j := <-l.produceQ:
				batch = append(batch, j)
			case failed := <-results:
				inFlight--
				retry, backoff = l.settle(failed, retry, backoff)
				continue
			}
		}
		if batch, carry = l.fillBatch(batch, carry); len(batch) == 0 {
			continue
		}
		inFlight++
		go func() { results <- l.send(l.ctx, batch) }()
	}
}

// fillBatch adds queued jobs up to the request limits and drops jobs whose
// caller gave up before anything was sent. A job that does not fit any more
// is returned as the next request's first.
func (l *Log) fillBatch(batch []*produceJob, carry *produceJob) ([]*produceJob, *produceJob) {
	n, size := 0, 0
	for _, j := range batch {
		n, size = n+len(j.recs), size+j.size()
	}
	for n < produceMaxRecords && size < produceMaxBytes {
		j := carry
		if j == nil {
			select {
			case j = <-l.produceQ:
			default:
			}
		}
		if j == nil {
			break
		}
		carry = nil
		if len(batch) > 0 && (n+len(j.recs) > produceMaxRecords || size+j.size() > produceMaxBytes) {
			carry = j
			break
		}
		batch = append(batch, j)
		n, size = n+len(j.recs), size+j.size()
	}
	kept := batch[:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil && j.attempts == 0 {
			j.done <- err
			continue
		}
		kept = append(kept, j)
	}
	return kept, carry
}

// settle queues the failed jobs of a round for a retry, or fails them when
// they are out of attempts, and adjusts the backoff.
func (l *Log) settle(failed, retry []*produceJob, backoff time.Duration) ([]*produceJob, time.Duration) {
	if len(failed) == 0 {
		return retry, 0
	}
	for _, j := range failed {
		if j.attempts >= produceAttempts || !retriable(j.lastErr) || j.ctx.Err() != nil {
			// Some records may have been stored; a retry of the same events
			// is idempotent and reports them as existing.
			j.done <- fmt.Errorf("%d records unsent after %d attempts: %w", len(j.recs), j.attempts, j.lastErr)
			continue
		}
		retry = append(retry, j)
	}
	return retry, min(max(2*backoff, produceBackoffMin), produceBackoffMax)
}

// failUnsettled fails every job that has not been settled when the log closes.
func (l *Log) failUnsettled(results chan []*produceJob, inFlight int, retry []*produceJob, carry *produceJob) {
	fail := func(jobs []*produceJob) {
		for _, j := range jobs {
			j.done <- eventstore.ErrClosed
		}
	}
	fail(retry)
	if carry != nil {
		fail([]*produceJob{carry})
	}
	for range inFlight {
		fail(<-results)
	}
	for {
		select {
		case j := <-l.produceQ:
			j.done <- eventstore.ErrClosed
		default:
			return
		}
	}
}

// retriable reports whether a failed produce may succeed when sent again.
// Everything but a broker's definite refusal of the records is.
func retriable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	return !errors.Is(err, context.Canceled)
}

// send produces one round of jobs: one request per leader broker. It
// completes the jobs whose records are all stored and returns the others,
// trimmed to the records still to send.
func (l *Log) send(ctx context.Context, batch []*produceJob) []*produceJob {
	leaders, err := l.leaders(ctx)
	if err != nil {
		for _, j := range batch {
			j.attempts++
			j.lastErr = err
		}
		return batch
	}
	// Per leader, per partition: the records in job order.
	type part struct {
		recs []protocol.Record
	}
	byLeader := map[int]map[int32]*part{}
	for _, j := range batch {
		j.attempts++
		for _, r := range j.recs {
			ps := byLeader[leaders[r.partition]]
			if ps == nil {
				ps = map[int32]*part{}
				byLeader[leaders[r.partition]] = ps
			}
			pp := ps[r.partition]
			if pp == nil {
				pp = &part{}
				ps[r.partition] = pp
			}
			pp.recs = append(pp.recs, protocol.Record{Time: r.time, Key: protocol.NewBytes(r.key),
				Value: protocol.NewBytes(r.value), Headers: []protocol.Header{{Key: nonceHeader, Value: []byte(r.nonce)}}})
		}
	}
	// The outcome per partition: nil when stored.
	outcome := map[int32]error{}
	type reply struct {
		parts []int32
		res   map[int32]error
	}
	replies := make(chan reply, len(byLeader))
	for _, ps := range byLeader {
		req := &produceAPI.Request{Acks: int16(kafka.RequireAll), Timeout: int32(produceAckTimeout / time.Millisecond)}
		t := produceAPI.RequestTopic{Topic: l.cfg.Topic}
		var ids []int32
		for p, pp := range ps {
			ids = append(ids, p)
			t.Partitions = append(t.Partitions, produceAPI.RequestPartition{Partition: p,
				RecordSet: protocol.RecordSet{Version: 2, Records: protocol.NewRecordReader(pp.recs...)}})
		}
		req.Topics = []produceAPI.RequestTopic{t}
		go func() { replies <- reply{ids, l.roundTripProduce(ctx, req, ids)} }()
	}
	for range byLeader {
		r := <-replies
		for _, p := range r.parts {
			outcome[p] = r.res[p]
		}
	}
	var failed []*produceJob
	for _, j := range batch {
		rest := j.recs[:0:0]
		for _, r := range j.recs {
			if err := outcome[r.partition]; err != nil {
				rest = append(rest, r)
				j.lastErr = err
			}
		}
		if len(rest) == 0 {
			j.done <- nil
			continue
		}
		j.recs = rest
		failed = append(failed, j)
	}
	if len(failed) > 0 {
		l.refreshLeaders()
	}
	return failed
}

// roundTripProduce sends one produce request and returns the error of each
// of its partitions (nil when stored).
func (l *Log) roundTripProduce(ctx context.Context, req *produceAPI.Request, ids []int32) map[int32]error {
	res := make(map[int32]error, len(ids))
	fail := func(err error) map[int32]error {
		for _, p := range ids {
			res[p] = err
		}
		return res
	}
	rctx, cancel := context.WithTimeout(ctx, produceRoundTripTO)
	defer cancel()
	m, err := l.client.Transport.RoundTrip(rctx, l.brokerAddr(), req)
	if err != nil {
		return fail(err)
	}
	pr, ok := m.(*produceAPI.Response)
	if !ok {
		return fail(fmt.Errorf("unexpected response %T", m))
	}
	for _, p := range ids {
		res[p] = errors.New("partition missing from the produce response")
	}
	for _, t := range pr.Topics {
		if t.Topic != l.cfg.Topic {
			continue
		}
		for _, pp := range t.Partitions {
			if _, ok := res[pp.Partition]; !ok {
				continue
			}
			res[pp.Partition] = nil
			if pp.ErrorCode != 0 {
				res[pp.Partition] = fmt.Errorf("partition %d: %w", pp.Partition, kafka.Error(pp.ErrorCode))
			}
		}
	}
	return res
}

// leaders maps each partition to its leader's id in the transport's cached
// metadata, which is also what routes the requests.
func (l *Log) leaders(ctx context.Context) ([]int, error) {
	l.leaderMu.Lock()
	defer l.leaderMu.Unlock()
	if l.leaderOf != nil {
		return l.leaderOf, nil
	}
	groups, ids, err := l.leaderGroups(ctx)
	if err != nil {
		return nil, err
	}
	of := make([]int, l.cfg.Partitions)
	for i, g := range groups {
		for _, p := range g {
			of[p] = ids[i]
		}
	}
	l.leaderOf = of
	return of, nil
}

// refreshLeaders forgets the cached leaders after a failed request.
func (l *Log) refreshLeaders() {
	l.leaderMu.Lock()
	l.leaderOf = nil
	l.leaderMu.Unlock()
}
