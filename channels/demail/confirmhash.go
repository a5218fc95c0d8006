package demail

import (
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// hashInspector compares a confirmation's Hash (table 23: the confirmed
// message's X-de-mail-integrity "as it was in the original message") with
// the message the recorder linked it to, and adds the outcome to the
// evidence:
//
//   - for one of our answers, the body hash (bh) of the Hash against the
//     body of the bytes the gateway accepted (ReplySent.Sent): the provider
//     hashed what it sent, and this shows it is what we submitted;
//   - for a message we received, the Hash against that message's own
//     X-de-mail-integrity field.
//
// A difference is a problem of the evidence; bytes we did not keep are
// said, not flagged.
func (a *adapter) hashInspector(hash string) gateway.EvidenceInspector {
	return func(ctx context.Context, link gateway.EvidenceLink, rec *gateway.DeliveryEvidenceRecorded) {
		detail, problem := a.compareHash(ctx, link, hash)
		if rec.Verification != nil {
			rec.Verification.Detail += "; Hash: " + detail
		}
		if problem {
			rec.Problems = append(rec.Problems, problemPrefix+"confirmation Hash "+detail)
		}
	}
}

func (a *adapter) compareHash(ctx context.Context, link gateway.EvidenceLink, hash string) (detail string, problem bool) {
	if hash == "" {
		return "missing (table 23 requires it)", true
	}
	events, err := a.evidence.Log.ReadStream(ctx, a.tenant, link.Stream)
	if err != nil {
		return "not compared: reading " + link.Stream + ": " + err.Error(), false
	}
	reg := gateway.NewRegistry()
	var received *gateway.MessageReceived
	var sent blob.Ref
	for i := range events {
		p, err := reg.Decode(&events[i])
		if err != nil {
			continue
		}
		switch m := p.(type) {
		case *gateway.MessageReceived:
			received = m
		case *gateway.ReplySent:
			if m.ReplyID == link.ReplyID && m.Sent.SHA256 != "" {
				sent = m.Sent
			}
		}
	}
	if link.ReplyID == "" {
		return a.compareReceived(ctx, received, hash)
	}
	if sent.SHA256 == "" {
		return "not compared: the bytes of answer " + link.ReplyID + " were not kept", false
	}
	return a.compareSent(ctx, sent, hash)
}

// compareSent checks the Hash's body hash against the body we submitted.
func (a *adapter) compareSent(ctx context.Context, sent blob.Ref, hash string) (string, bool) {
	tags, err := parseTags(hash)
	if err != nil {
		return "not readable: " + err.Error(), true
	}
	var in Integrity
	h, _, err := in.algorithm(tags)
	if err != nil {
		return "not readable: " + err.Error(), true
	}
	msg, err := a.read(ctx, sent, a.max)
	if err != nil {
		return "not compared: " + err.Error(), false
	}
	_, body, _ := splitMessage(msg)
	if err := checkBodyHash(tags, body, h); err != nil {
		return fmt.Sprintf("body hash differs from the answer as submitted (%s): the provider confirms other content", err), true
	}
	return "body hash matches the answer as submitted (" + sent.SHA256[:16] + "…)", false
}

// compareReceived checks the Hash against the received message's own
// X-de-mail-integrity field, whitespace aside (the provider may fold it).
func (a *adapter) compareReceived(ctx context.Context, received *gateway.MessageReceived, hash string) (string, bool) {
	if received == nil {
		return "not compared: the stream has no receipt", false
	}
	head, err := a.read(ctx, received.Raw, headerWindow)
	if err != nil {
		return "not compared: " + err.Error(), false
	}
	fields, _, _ := splitMessage(head)
	own := stripWhitespace(first(fields, FieldIntegrity))
	if own == "" {
		return "not compared: the confirmed message has no X-de-mail-integrity", false
	}
	if subtle.ConstantTimeCompare([]byte(own), []byte(stripWhitespace(hash))) != 1 {
		return "differs from the confirmed message's X-de-mail-integrity", true
	}
	return "matches the confirmed message's X-de-mail-integrity", false
}
