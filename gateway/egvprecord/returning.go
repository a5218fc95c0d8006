package egvprecord

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
)

// SentAnswers is the record of the answers this gateway sent on the EGVP channel,
// whichever transport sent them: the log's, read through the evidence links' index of
// ReplyIDs. Both transports check a returning eEB against it.
type SentAnswers struct {
	// Evidence is the recorder of the gateway; without it (or its Links) nothing is
	// checked.
	Evidence *gateway.EvidenceRecorder
	Tenant   string
}

// CheckReturningEEB flags a returning eEB whose fremdeNachrichtenID is no XJustiz id
// of an answer recorded on the channel (egvp.XJustizID), the index caught up before an id
// is called unknown. It returns the ReplyID of the answer the eEB is for, "" when it
// is for none of ours or m is no returning eEB.
func (s SentAnswers) CheckReturningEEB(ctx context.Context, m *egvp.Message) string {
	ev := s.Evidence
	if m.Receipt == nil || ev == nil || ev.Links == nil {
		return ""
	}
	var answered string
	known := func(id string) bool {
		replyID, ok := egvp.ReplyIDOf(id)
		if !ok {
			return false
		}
		found, err := s.sent(ctx, replyID)
		if err == nil && !found && ev.CatchUp != nil {
			if err = ev.CatchUp(ctx); err == nil {
				found, err = s.sent(ctx, replyID)
			}
		}
		if err != nil {
			m.Problems = append(m.Problems, fmt.Sprintf("eEB: the request %q could not be looked up: %v", id, err))
			return true
		}
		if found {
			answered = replyID
		}
		return found
	}
	m.CheckReceiptRequest(known)
	return answered
}

// sent reports whether replyID is an answer recorded on the EGVP channel.
func (s SentAnswers) sent(ctx context.Context, replyID string) (bool, error) {
	links, err := s.Evidence.Links.Links(ctx, s.Tenant, gateway.ChannelEGVP, replyID)
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if l.ReplyID == replyID {
			return true, nil
		}
	}
	return false, nil
}

// ReturningEEBEvidence is what a returning eEB attests of the answer replyID: read
// (the addressee acknowledges receipt, on the date it states) or, refused, not
// delivered (service failed, with the refusal's code and reason). The addressee
// attests it; the evidence bytes are the eEB message as received (msg.Raw, of
// mediaType).
func ReturningEEBEvidence(m *egvp.Message, replyID string, msg *gateway.MessageReceived, mediaType string) *gateway.DeliveryEvidenceRecorded {
	ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelEGVP, Kind: gateway.EvidenceRead,
		References: []gateway.EvidenceReference{{Kind: "replyId", Value: replyID}, {Kind: "xjustizMessageId", Value: m.AnswersXJustizID}},
		Attester:   gateway.Attester{Role: "addressee", Name: m.SenderSafeID, ID: m.SenderSafeID},
		AttestedAt: m.Receipt.Received, Evidence: msg.Raw, MediaType: mediaType, EvidenceID: "eeb:" + msg.SenderMessageID}
	if msg.SenderMessageID == "" {
		ev.EvidenceID = ""
	}
	if r := m.Receipt.Refusal; r != nil {
		ev.Kind, ev.Reason = gateway.EvidenceNotDelivered, fmt.Sprintf("eEB refused (eeb.stoerungs-id %s): %s", r.Code, r.Reason)
		ev.AttestedAt = m.XJustiz.Header.CreatedTime
	}
	if ev.AttestedAt.IsZero() {
		ev.AttestedAt = msg.ReceivedAt
	}
	return ev
}

// LinkReturningEEB records the evidence of a returning eEB once the eEB itself is
// recorded; a failure is logged, since the eEB is in the log and routed either way.
func (s SentAnswers) LinkReturningEEB(ctx context.Context, ev *gateway.DeliveryEvidenceRecorded, log *slog.Logger) {
	if ev == nil || s.Evidence == nil {
		return
	}
	if _, err := s.Evidence.Record(ctx, s.Tenant, ev); err != nil {
		log.Error("linking the returning eEB to its answer", "replyId", ev.References[0].Value, "err", err)
	}
}
