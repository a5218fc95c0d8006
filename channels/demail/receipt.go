package demail

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/poststelle/poststelle/gateway"
)

// Evidence is what a receipt on the De-Mail channel records of the
// provider's header fields h and the integrity check in. It is the only
// place that decides "written form satisfied by De-Mail": the message must
// be sent absenderbestätigt (clause 3.1.5) and carry the provider's
// signature, verified against the configured trust (clause 3.1.21), and
// that signature must be a qualified seal or signature as the configured
// trusted lists decide (De-Mail-Gesetz § 5 Abs. 5).
func Evidence(h *Headers, in *Integrity) *gateway.DeMailEvidence {
	ev := &gateway.DeMailEvidence{
		MessageType:        string(h.Type),
		MessageID:          h.MessageID,
		PrivateID:          h.PrivateID,
		Sender:             h.Sender,
		AccountHolder:      h.AccountHolder,
		AuthLevel:          h.AuthLevel,
		AuthMechanism:      h.AuthMechanism,
		OriginatorProvider: h.OriginatorProvider,
		Version:            h.Version,
		ConfirmDispatch:    h.Options.ConfirmDispatch,
		ConfirmReceipt:     h.Options.ConfirmReceipt,
		ConfirmRetrieval:   h.Options.ConfirmRetrieval,
		Authoritative:      h.Options.Authoritative,
		Personal:           h.Options.Personal,
		Verdict:            string(in.Verdict),
		VerdictDetail:      in.Detail,
	}
	if in.Certificate != nil {
		fp := sha256.Sum256(in.Certificate.Raw)
		ev.ProviderCertificate = hex.EncodeToString(fp[:])
	}
	ev.Qualification = in.Qualification
	ev.QualificationDetail = in.QualificationDetail
	ev.WrittenForm = h.Options.Authoritative && in.Qualified()
	return ev
}

// writtenFormProblem says why an absenderbestätigt message whose provider
// signature holds still does not satisfy the written form; "" when it does
// or when the message was not sent absenderbestätigt.
func writtenFormProblem(h *Headers, in *Integrity) string {
	if !h.Options.Authoritative || !in.Trusted() || in.Qualified() {
		return ""
	}
	return problemPrefix + "written form not established: the provider signature is " +
		in.Qualification + ", not a qualified seal or signature (" + in.QualificationDetail + ")"
}

// problemPrefix starts every problem the De-Mail channel adds to a
// receipt, so that triage can find them.
const problemPrefix = "demail: "

// Problems lists what makes the De-Mail evidence doubtful: every header
// problem, and an integrity verdict other than provider-signed. An empty
// list is a message whose provider vouches for it.
func Problems(h *Headers, in *Integrity) []string {
	var out []string
	for _, p := range h.Problems {
		out = append(out, problemPrefix+"header "+p.String())
	}
	if !in.Trusted() {
		out = append(out, problemPrefix+"integrity "+string(in.Verdict)+": "+in.Detail)
	}
	if p := writtenFormProblem(h, in); p != "" {
		out = append(out, p)
	}
	return out
}

// Apply completes a receipt taken in from the provider gateway: the
// De-Mail evidence, the problems, and the sender's message id, which on
// De-Mail is the provider's X-de-mail-message-id.
func Apply(rec *gateway.MessageReceived, h *Headers, in *Integrity) {
	rec.DeMail = Evidence(h, in)
	rec.Problems = append(rec.Problems, Problems(h, in)...)
	if id := strings.TrimSpace(h.MessageID); id != "" {
		rec.SenderMessageID = id
	}
	if !in.Trusted() {
		return
	}
	// The provider vouches for its fields now: they are evidence in
	// DeMail, no longer untrusted claims. Other untrusted fields stay.
	kept := rec.Transport.Untrusted[:0]
	for _, u := range rec.Transport.Untrusted {
		if !strings.HasPrefix(strings.ToLower(u.Name), "x-de-mail-") {
			kept = append(kept, u)
		}
	}
	rec.Transport.Untrusted = kept
}
