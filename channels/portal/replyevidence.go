package portal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// The reply events of the event log and what they attest of an answer.
var replyEventKinds = map[string]gateway.EvidenceKind{
	eventPrefix + "submit-reply": gateway.EvidenceDispatched,
	eventPrefix + "accept-reply": gateway.EvidenceRetrieved,
	eventPrefix + "reject-reply": gateway.EvidenceNotDelivered,
}

// finalReplyKind reports the kinds of evidence after which the platform has
// nothing more to tell of a reply: the sender's side took it or refused it,
// or the watch gave up (expired).
func finalReplyKind(k gateway.EvidenceKind) bool {
	return k == gateway.EvidenceRetrieved || k == gateway.EvidenceNotDelivered || k == gateway.EvidenceExpired
}

// replyEvidence records the SETs of a case's event log that concern one
// reply as delivery evidence of the answer, each once: its EvidenceID is
// the SET's jti, so the EvidenceRecorder keeps one event per SET however
// often the log is read (at sending, by every round of the watch, on every
// node).
type replyEvidence struct {
	evidence *gateway.EvidenceRecorder
	blobs    gateway.BlobStore
	tenant   string
	log      *slog.Logger
	// senders verifies the SETs the sender's side writes (accept-reply,
	// reject-reply); nil when reply_sender_keys_file is not configured.
	senders *fitconnect.KeySet
}

// loadSenderKeys reads reply_sender_keys_file, a JWK Set (RFC 7517 §5).
func loadSenderKeys(cfg *Config) (*fitconnect.KeySet, error) {
	if cfg.ReplySenderKeysFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.ReplySenderKeysFile)
	if err != nil {
		return nil, fmt.Errorf("portal: reply_sender_keys_file: %w", err)
	}
	ks, err := fitconnect.ParseJWKSet(b)
	if err != nil {
		return nil, fmt.Errorf("portal: reply_sender_keys_file %s: %w", cfg.ReplySenderKeysFile, err)
	}
	return ks, nil
}

// verify is the verdict on one SET: the platform's keys first (submit-reply
// is the platform's), then the sender's.
func (r *replyEvidence) verify(set string, platformKeys *fitconnect.KeySet, keysErr error) *gateway.EvidenceVerification {
	var why []string
	if keysErr != nil {
		why = append(why, "the platform's keys: "+keysErr.Error())
	} else if s, err := fitconnect.ParseSET(set, platformKeys, fitconnect.VerifyOptions{}); err == nil {
		return &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "JWS", Signer: "kid " + s.KeyID + " (the platform's key)"}
	} else {
		why = append(why, "with the platform's keys: "+err.Error())
	}
	if r.senders != nil {
		s, err := fitconnect.ParseSET(set, r.senders, fitconnect.VerifyOptions{})
		if err == nil {
			return &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "JWS", Signer: "kid " + s.KeyID + " (a sender's key)"}
		}
		why = append(why, "with the senders' keys: "+err.Error())
	} else {
		why = append(why, "no sender keys configured (reply_sender_keys_file)")
	}
	return &gateway.EvidenceVerification{Indication: "INDETERMINATE", Format: "JWS", Detail: clipText(strings.Join(why, "; "), 300)}
}

// record records the SETs about platform reply replyID (the answer
// answerID) found in events; it returns how many it recorded for the first
// time and whether one of them ends the reply's story (accept-reply,
// reject-reply).
func (r *replyEvidence) record(ctx context.Context, answerID, replyID string, events []string, platformKeys *fitconnect.KeySet, keysErr error) (n int, final bool) {
	if r.evidence == nil {
		return 0, false
	}
	for _, e := range events {
		p, err := parseSET(e)
		if err != nil || p.Sub != "reply:"+replyID || p.JTI == "" {
			continue
		}
		var verification *gateway.EvidenceVerification
		for typ, raw := range p.Events {
			kind, ok := replyEventKinds[typ]
			if !ok {
				continue
			}
			if verification == nil {
				verification = r.verify(e, platformKeys, keysErr)
			}
			ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelPortal, Kind: kind,
				References: []gateway.EvidenceReference{{Kind: "replyId", Value: answerID}, {Kind: "fitconnectReplyId", Value: replyID}},
				Attester:   gateway.Attester{Role: "portal", Name: "FIT-Connect", ID: clipText(p.Iss, 200)}, AttestedAt: time.Unix(p.Iat, 0).UTC(),
				EvidenceID: "fitconnect:" + clipText(p.JTI, 200), MediaType: "application/jose", Verification: verification}
			if verification.Indication != "TOTAL_PASSED" {
				ev.Problems = []string{"a FIT-Connect event log SET whose signature was verified neither with the platform's nor with a sender's keys"}
			}
			if kind == gateway.EvidenceNotDelivered {
				ev.Reason = clipText("reject-reply: "+strings.TrimSpace(string(raw)), 500)
			}
			if ref, err := r.blobs.Put(ctx, strings.NewReader(e), maxSETBytes); err == nil {
				ev.Evidence = ref
			}
			rc, err := r.evidence.Record(ctx, r.tenant, ev)
			switch {
			case err != nil:
				r.log.Error("recording the reply's evidence", "replyId", answerID, "kind", kind, "err", err)
				continue
			case !rc.Linked:
				r.log.Warn("the reply's evidence is not linked", "replyId", answerID, "kind", kind, "stream", rc.Stream)
			case !rc.Duplicate:
				n++
			}
			if finalReplyKind(kind) {
				final = true
			}
		}
	}
	return n, final
}
