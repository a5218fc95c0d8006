package egvpenterprise

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// The bounds of polling a pending answer's state: the first poll a minute after
// the hand-over, the wait doubling to at most an hour, and no poll after a week
// (Enterprise retries its own sending for far less; an answer still pending then
// is an operator's matter, and the log says so).
const (
	pendingFirstWait = time.Minute
	pendingMaxWait   = time.Hour
	pendingMaxAge    = 7 * 24 * time.Hour
	// maxPending caps the answers polled at once; more are logged and left.
	maxPending = 10_000
	// pendingReadBatch is how many events one read of the log takes.
	pendingReadBatch = 500
)

// sentPrefix starts the response text of every ReplySent the Outbound recorded
// (Send): it tells an answer handed to Enterprise from one marked sent by a person.
const sentPrefix = "sendAsynchroniousMessage OK, customID "

// Pending polls the state of answers Enterprise accepted but had not sent yet when
// it was first asked (WS_ASEND, AU_RETRY, or the state not fetched), until a final
// state, which is recorded as delivery evidence as in the immediate case
// (stateEvidence). The set of such answers is derived from the log, so it survives
// a restart: every ReplySent of the Outbound (channel egvp, a customID, the
// response it writes) is pending until a DeliveryEvidenceRecorded names its
// customID. It reads the log from the beginning when it starts and follows it
// afterwards; the time of the next poll is in memory (after a restart every pending
// answer is asked once at the first round, then with backoff from its age).
type Pending struct {
	cfg      Config
	client   *egvpsoap.Client
	log      eventstore.Log
	evidence *gateway.EvidenceRecorder
	logger   *slog.Logger
	now      func() time.Time

	next    map[int32]int64
	answers map[string]*pendingAnswer
	// final are customIDs whose evidence was read before their ReplySent (the
	// immediate case records the evidence first); an entry goes with the ReplySent.
	final map[string]bool
}

type pendingAnswer struct {
	tenant, replyID, customID string
	sentAt, due               time.Time
	polls                     int
}

// newPending is the poller of cfg's outbound answers; nil without a log or an
// evidence recorder (nothing to derive the set from or to record into).
func newPending(cfg Config, client *egvpsoap.Client, log eventstore.Log, rec *gateway.EvidenceRecorder, logger *slog.Logger) *Pending {
	if !cfg.Outbound || log == nil || rec == nil {
		return nil
	}
	return &Pending{cfg: cfg, client: client, log: log, evidence: rec, logger: logger.With("role", "pending-answers"), now: time.Now,
		next: map[int32]int64{}, answers: map[string]*pendingAnswer{}, final: map[string]bool{}}
}

// Poll follows the log to its end and asks the state of every pending answer that
// is due. Not safe for concurrent use: the inbound side's loop calls it.
func (p *Pending) Poll(ctx context.Context) error {
	if err := p.follow(ctx); err != nil {
		return err
	}
	now := p.now()
	for id, a := range p.answers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now.Sub(a.sentAt) > pendingMaxAge {
			p.logger.Warn("giving up polling the answer's state: still not sent by EGVP Enterprise", "replyId", a.replyID, "customId", id,
				"sentAt", a.sentAt, "polls", a.polls)
			delete(p.answers, id)
			continue
		}
		if now.Before(a.due) {
			continue
		}
		a.polls++
		wait := pendingFirstWait << min(a.polls, 10)
		a.due = now.Add(min(wait, pendingMaxWait))
		st, err := p.client.GetState(ctx, p.cfg.UserID, id)
		if err != nil {
			p.logger.Warn("asking for a pending answer's state", "replyId", a.replyID, "customId", id, "err", err)
			continue
		}
		final, err := stateEvidence(ctx, p.evidence, a.tenant, p.cfg, a.replyID, id, st, p.now, p.logger)
		if err != nil {
			p.logger.Error("recording the answer's delivery evidence", "replyId", a.replyID, "state", st.State, "err", err)
			continue
		}
		if final {
			p.logger.Info("pending answer reached a final state", "replyId", a.replyID, "customId", id, "state", st.State, "polls", a.polls)
			delete(p.answers, id)
		}
	}
	return nil
}

// follow reads what the log appended since the last round.
func (p *Pending) follow(ctx context.Context) error {
	parts, err := p.log.Partitions(ctx)
	if err != nil {
		return fmt.Errorf("egvp_enterprise: pending answers: %w", err)
	}
	reg := gateway.NewRegistry()
	for part := int32(0); part < parts; part++ {
		for {
			evs, err := p.log.Read(ctx, part, p.next[part], pendingReadBatch)
			if err != nil {
				return fmt.Errorf("egvp_enterprise: pending answers: read partition %d: %w", part, err)
			}
			for i := range evs {
				p.next[part] = evs[i].Position.Offset + 1
				if evs[i].Type != "ReplySent" && evs[i].Type != "DeliveryEvidenceRecorded" {
					continue
				}
				pl, err := reg.Decode(&evs[i])
				if err != nil {
					return fmt.Errorf("egvp_enterprise: pending answers: %w", err)
				}
				p.fold(&evs[i], pl)
			}
			if len(evs) < pendingReadBatch {
				break
			}
		}
	}
	return nil
}

func (p *Pending) fold(e *eventstore.Event, pl gateway.Payload) {
	switch m := pl.(type) {
	case *gateway.ReplySent:
		if m.Channel != gateway.ChannelEGVP || m.ChannelMessageID == "" || !strings.HasPrefix(m.Response, sentPrefix) {
			return
		}
		if p.final[m.ChannelMessageID] {
			delete(p.final, m.ChannelMessageID)
			return
		}
		if len(p.answers) >= maxPending {
			p.logger.Warn("too many pending answers: this one's state is not polled", "replyId", m.ReplyID, "customId", m.ChannelMessageID)
			return
		}
		p.answers[m.ChannelMessageID] = &pendingAnswer{tenant: e.Tenant, replyID: m.ReplyID, customID: m.ChannelMessageID,
			sentAt: e.RecordedAt, due: e.RecordedAt.Add(pendingFirstWait)}
	case *gateway.DeliveryEvidenceRecorded:
		if m.Channel != gateway.ChannelEGVP || m.Attester.Role != "egvp-enterprise" {
			return
		}
		for _, r := range m.References {
			if r.Kind != refCustomID {
				continue
			}
			if _, ok := p.answers[r.Value]; ok {
				delete(p.answers, r.Value)
			} else if len(p.final) < maxPending {
				p.final[r.Value] = true
			}
		}
	}
}
