package gateway

import "github.com/poststelle/poststelle/eventstore/blob"

// Every payload lists the blobs it refers to (Payload.BlobRefs), so that an
// auditor's `log verify --blobs` re-hashes every stored byte the log vouches
// for: raw messages and their parts, verification reports, Prüfprotokolle,
// timestamp tokens, answer bodies and attachments. TestBlobRefsListsEveryRef
// fills every blob.Ref field of every registered payload by reflection and
// fails when a payload's list misses one. Unset references (zero Ref) are
// left out.

func (m *MessageReceived) BlobRefs() []blob.Ref {
	return refs(append([]blob.Ref{m.Raw}, partRefs(m.Parts)...)...)
}

func (r *ReplyRequested) BlobRefs() []blob.Ref {
	return refs(append([]blob.Ref{r.Body}, partRefs(r.Attachments)...)...)
}

func (s *SignaturesVerified) BlobRefs() []blob.Ref { return refs(s.Report, s.ReportHTML) }
func (t *TimestampApplied) BlobRefs() []blob.Ref   { return refs(t.Token) }

// Payloads without blobs.

func (*MessageRouted) BlobRefs() []blob.Ref       { return nil }
func (*RoutingFailed) BlobRefs() []blob.Ref       { return nil }
func (*MessageDelivered) BlobRefs() []blob.Ref    { return nil }
func (*MessageAcknowledged) BlobRefs() []blob.Ref { return nil }
func (p *ReplySent) BlobRefs() []blob.Ref {
	if p.Sent.SHA256 == "" {
		return nil
	}
	return []blob.Ref{p.Sent}
}
func (*ReplyFailed) BlobRefs() []blob.Ref      { return nil }
func (*ProcessingFailed) BlobRefs() []blob.Ref { return nil }

func partRefs(parts []Part) []blob.Ref {
	out := make([]blob.Ref, 0, len(parts))
	for i := range parts {
		out = append(out, parts[i].Blob)
	}
	return out
}

// refs drops unset references.
func refs(rs ...blob.Ref) []blob.Ref {
	out := rs[:0]
	for _, r := range rs {
		if r != (blob.Ref{}) {
			out = append(out, r)
		}
	}
	return out
}
