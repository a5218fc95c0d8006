package evidencebundle

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
)

// CertifiedSealer is a Sealer that names the certificates its signatures
// carry (the seal certificate first). The bundle lists their hashes in
// evidence.json, which the seal covers, so that a certificate swapped in
// the unsigned certificates field of the seal is noticed.
type CertifiedSealer interface {
	asic.Sealer
	Certificates() []*x509.Certificate
}

// Builder makes bundles.
type Builder struct {
	// Log is read for the stream, its partitions' leaves and their newest
	// signed checkpoints.
	Log integrity.AuditedLog
	// Blobs holds the bytes the events refer to.
	Blobs blob.Opener
	// Signer is the gateway key: it signs the head the proofs lead to.
	Signer crypto.Signer
	// Sealer seals the container (the CAdES signature over the manifest).
	Sealer CertifiedSealer
	// TSA, when set, timestamps the head at bundle time; without it the
	// head goes into the bundle untimestamped.
	TSA *tsp.Client
	// WitnessDirs are the witnesses' head directories (witnesses.dir):
	// when no TSA timestamps a fresh head, the newest witnessed head with
	// a timestamp that covers the message's events is taken instead.
	WitnessDirs []string
	// OriginalRecord, when set, returns the current RFC 4998 evidence
	// record over the message's original (false: none yet), which goes in
	// as RecordName.
	OriginalRecord func(ctx context.Context, tenant, stream string) (blob.Ref, bool, error)
	// Version names the software in evidence.json.
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Errors of Build a caller tells apart.
var (
	// ErrNoStream means the stream has no events.
	ErrNoStream = errors.New("evidencebundle: no such message")
	// ErrNotCovered means an event of the stream is newer than its
	// partition's newest signed checkpoint, so it cannot be proven yet.
	ErrNotCovered = errors.New("evidencebundle: not yet covered by a signed checkpoint")
)

// erasedType is the event type crypto-shredding records when it destroyed
// a message's key; a bundle of such a message lists the bytes as erased.
const erasedType = "ContentErased"

// Build writes the bundle of one stream to w.
func (b *Builder) Build(ctx context.Context, tenant, stream string, w io.Writer) error {
	if b.Log == nil || b.Blobs == nil || b.Signer == nil || b.Sealer == nil {
		return errors.New("evidencebundle: Builder needs Log, Blobs, Signer and Sealer")
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	logger := b.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	evs, err := b.Log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return fmt.Errorf("evidencebundle: read stream %s: %w", stream, err)
	}
	if len(evs) == 0 {
		return fmt.Errorf("%w: stream %s", ErrNoStream, stream)
	}
	if len(evs) > maxEventsInBag {
		return fmt.Errorf("evidencebundle: stream %s has %d events, more than %d", stream, len(evs), maxEventsInBag)
	}
	heads, note, headStamp, source, err := b.head(ctx, evs, logger)
	if err != nil {
		return err
	}
	proofs, err := b.prove(ctx, evs, heads)
	if err != nil {
		return err
	}
	pubPEM, fp, err := publicKeyPEM(b.Signer.Public())
	if err != nil {
		return err
	}

	aw, err := asic.NewWriter(w, asic.Limits{MaxEntries: 4 * maxEventsInBag, MaxEntrySize: MaxBundle, MaxTotalSize: MaxBundle})
	if err != nil {
		return err
	}
	idx := &Index{Format: Format, CreatedAt: now().UTC(), CreatedBy: "poststelle " + b.Version, LogID: b.Log.LogID(),
		Tenant: tenant, Stream: stream, GatewayKey: KeyInfo{File: KeyName, Fingerprint: fp},
		Head: HeadInfo{File: HeadName, Source: source}, Seal: SealInfo{File: asic.SignatureName}}
	for i, c := range b.Sealer.Certificates() {
		if i == 0 {
			idx.Seal.Subject = c.Subject.String()
		}
		sum := sha256.Sum256(c.Raw)
		idx.Seal.Certificates = append(idx.Seal.Certificates, hex.EncodeToString(sum[:]))
	}
	if len(idx.Seal.Certificates) == 0 {
		return errors.New("evidencebundle: the sealer names no certificate")
	}
	for _, h := range heads {
		idx.Head.Partitions = append(idx.Head.Partitions, HeadPartition{Partition: h.Partition, Size: h.Size, Root: hex.EncodeToString(h.Root[:])})
	}
	// The index comes first in the archive but is written last: it lists
	// every file. Its place is kept by writing the fixed files in order
	// after it is known; the ZIP order does not matter to any reader.
	add := func(name, role, desc, mediaType string, r io.Reader, events ...string) error {
		wr, err := aw.Add(ctx, name, mediaType, r)
		if err != nil {
			return fmt.Errorf("evidencebundle: %w", err)
		}
		idx.Files = append(idx.Files, FileInfo{Name: name, Role: role, Description: desc, MediaType: wr.MediaType,
			SHA256: hex.EncodeToString(wr.SHA256[:]), Size: wr.Size, Events: events})
		return nil
	}
	if err := add(KeyName, "gateway-key", "the gateway's public key (PEM); it signs the log head", "application/x-pem-file", bytes.NewReader(pubPEM)); err != nil {
		return err
	}
	if err := add(HeadName, "head", "the log head: one C2SP signed note per partition (origin, size, base64 root), signed by the gateway key", "text/plain", bytes.NewReader(note)); err != nil {
		return err
	}
	if headStamp != nil {
		idx.Head.Timestamp = HeadStampName
		if err := add(HeadStampName, "head-timestamp", "RFC 3161 TimeStampResp over the bytes of "+HeadName, "application/timestamp-reply", bytes.NewReader(headStamp)); err != nil {
			return err
		}
	}
	pj, err := json.MarshalIndent(proofs, "", "  ")
	if err != nil {
		return err
	}
	if err := add(ProofsName, "proofs", "RFC 9162 inclusion proof of each event's leaf in the tree of its partition's head", "application/json", bytes.NewReader(pj)); err != nil {
		return err
	}

	reg := gateway.NewRegistry()
	blobs := newBlobPlan()
	for i := range evs {
		e := &evs[i]
		base := fmt.Sprintf("%s%03d-%s", eventsDir, e.StreamSeq, safeName(e.Type))
		leaf := integrity.EncodeLeaf(e)
		lh := integrity.LeafHash(e)
		idx.Events = append(idx.Events, EventInfo{Seq: e.StreamSeq, ID: e.ID, Type: e.Type, Partition: e.Position.Partition,
			Offset: e.Position.Offset, JSON: base + ".json", Leaf: base + ".leaf", LeafHash: hex.EncodeToString(lh[:])})
		js, err := json.MarshalIndent(toJSON(e), "", "  ")
		if err != nil {
			return fmt.Errorf("evidencebundle: event %s: %w", e.ID, err)
		}
		if err := add(base+".json", "event", "event "+e.Type+" as JSON (readable; the leaf is what the log hashed)", "application/json", bytes.NewReader(js), e.ID); err != nil {
			return err
		}
		if err := add(base+".leaf", "leaf", "event "+e.Type+" in its exact leaf encoding (docs/wire-format.md)", "application/octet-stream", bytes.NewReader(leaf), e.ID); err != nil {
			return err
		}
		if e.Type == erasedType {
			idx.Erased = erasure(e)
		}
		p, err := reg.Decode(e)
		if err != nil {
			// An event this version cannot read still goes in with its
			// proof; only its blobs cannot be found.
			logger.Warn("evidence bundle: event not decoded, its blobs are not included", "event", e.ID, "type", e.Type, "err", err)
			continue
		}
		blobs.plan(e, p, idx)
	}
	for _, pb := range blobs.order {
		rc, err := b.Blobs.Open(ctx, pb.ref)
		if err != nil {
			reason := err.Error()
			// A shredded blob reads as ErrErased (eventstore/cryptblob);
			// one erased by a store without keys is simply gone.
			if (errors.Is(err, blob.ErrErased) || errors.Is(err, blob.ErrNotFound)) && idx.Erased != nil {
				reason = "erased"
			}
			for _, ev := range pb.events {
				idx.Missing = append(idx.Missing, MissingBlob{SHA256: pb.ref.SHA256, Size: pb.ref.Size, Event: ev, Reason: reason})
			}
			if idx.Erased == nil {
				return fmt.Errorf("evidencebundle: blob %s of event %s: %w", pb.ref.SHA256, pb.events[0], err)
			}
			continue
		}
		err = add(pb.name, pb.role, pb.desc, pb.mediaType, rc, pb.events...)
		rc.Close()
		if err != nil {
			return err
		}
		if pb.role == "original" && idx.Message != nil {
			idx.Message.Original = pb.name
		}
	}
	if err := b.addRecord(ctx, tenant, stream, add); err != nil {
		return err
	}
	ij, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if _, err := aw.Add(ctx, IndexName, "application/json", bytes.NewReader(ij)); err != nil {
		return fmt.Errorf("evidencebundle: %w", err)
	}
	if err := aw.Seal(ctx, b.Sealer); err != nil {
		return fmt.Errorf("evidencebundle: %w", err)
	}
	return nil
}

// addRecord adds the evidence record over the original, when the gateway
// keeps one. It is not an event's blob: the log names it in the stream
// evidence-records, which the bundle does not prove; the record proves
// itself against the original and the TSAs' roots.
func (b *Builder) addRecord(ctx context.Context, tenant, stream string, add func(name, role, desc, mediaType string, r io.Reader, events ...string) error) error {
	if b.OriginalRecord == nil {
		return nil
	}
	ref, ok, err := b.OriginalRecord(ctx, tenant, stream)
	if err != nil {
		return fmt.Errorf("evidencebundle: evidence record of %s: %w", stream, err)
	}
	if !ok {
		return nil
	}
	rc, err := b.Blobs.Open(ctx, ref)
	if err != nil {
		return fmt.Errorf("evidencebundle: evidence record of %s: %w", stream, err)
	}
	defer rc.Close()
	return add(RecordName, RecordRole, "RFC 4998 evidence record (DER) over the original bytes, as the gateway keeps and renews it", "application/octet-stream", rc)
}

// head returns the signed head the proofs lead to: a fresh one, signed
// now and timestamped when a TSA answers; failing a timestamp, the newest
// timestamped head a witness keeps that covers every event of the stream;
// failing that, the fresh head without a timestamp.
func (b *Builder) head(ctx context.Context, evs []eventstore.Event, logger *slog.Logger) ([]integrity.Head, []byte, []byte, string, error) {
	heads, err := integrity.CurrentHeads(ctx, b.Log, b.Signer.Public())
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("evidencebundle: current head: %w", err)
	}
	note, err := integrity.SignHeads(b.Signer, heads)
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("evidencebundle: sign head: %w", err)
	}
	if b.TSA != nil {
		digest := sha256.Sum256(note)
		st, err := b.TSA.Timestamp(ctx, digest[:])
		if err == nil {
			return heads, note, witness.GrantedResponse(st.Raw), "signed and timestamped at bundle time", nil
		}
		logger.Warn("evidence bundle: fresh head not timestamped", "err", err)
	}
	if wh, wnote, wstamp, file, ok := b.witnessed(evs); ok {
		return wh, wnote, wstamp, "witnessed head " + filepath.Base(file), nil
	}
	return heads, note, nil, "signed at bundle time, without a timestamp", nil
}

// witnessed finds the newest head in the witness directories that has a
// timestamp over it and covers every event of evs.
func (b *Builder) witnessed(evs []eventstore.Event) ([]integrity.Head, []byte, []byte, string, bool) {
	type cand struct {
		file string
		size int64
	}
	var cands []cand
	for _, d := range b.WitnessDirs {
		files, _ := filepath.Glob(filepath.Join(d, "head-*.note"))
		for _, f := range files {
			n, _ := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(filepath.Base(f), "head-"), "-", 2)[0], 10, 64)
			cands = append(cands, cand{f, n})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Or(cmp.Compare(b.size, a.size), strings.Compare(b.file, a.file)) })
	for _, c := range cands {
		note, err1 := readSmall(c.file, integrity.MaxHeadFile)
		stamp, err2 := readSmall(strings.TrimSuffix(c.file, ".note")+".tsr", tsp.MaxTokenSize)
		if err1 != nil || err2 != nil {
			continue
		}
		heads, err := integrity.ParseHeads(note, b.Signer.Public())
		if err != nil || !covers(heads, b.Log.LogID(), evs) {
			continue
		}
		tok, err := witness.ParseStamp(stamp)
		if err != nil || !tok.Verify(tsp.VerifyOptions{Data: note}).Valid {
			continue
		}
		return heads, note, stamp, c.file, true
	}
	return nil, nil, nil, "", false
}

// covers reports whether heads of log logID hold every event of evs.
func covers(heads []integrity.Head, logID string, evs []eventstore.Event) bool {
	size := map[int32]int64{}
	for _, h := range heads {
		if h.LogID != logID {
			return false
		}
		size[h.Partition] = h.Size
	}
	for i := range evs {
		if evs[i].Position.Offset >= size[evs[i].Position.Partition] {
			return false
		}
	}
	return true
}

func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, err
}

// prove builds the inclusion proof of every event against the head of its
// partition. The heads are the newest checkpoints, so an event newer than
// its partition's checkpoint (on Kafka, younger than the checkpoint
// interval) cannot be proven yet: the bundle is refused rather than made
// with an unproven event.
func (b *Builder) prove(ctx context.Context, evs []eventstore.Event, heads []integrity.Head) (*Proofs, error) {
	byPart := map[int32]integrity.Head{}
	for _, h := range heads {
		byPart[h.Partition] = h
	}
	trees := map[int32]*integrity.Tree{}
	out := &Proofs{LogID: b.Log.LogID()}
	for i := range evs {
		e := &evs[i]
		p := e.Position.Partition
		head, ok := byPart[p]
		if !ok || e.Position.Offset >= head.Size {
			return nil, fmt.Errorf("%w: event %s (%d/%d); try again after the next checkpoint", ErrNotCovered, e.ID, p, e.Position.Offset)
		}
		t, ok := trees[p]
		if !ok {
			var err error
			if t, err = buildTree(ctx, b.Log, head); err != nil {
				return nil, err
			}
			trees[p] = t
		}
		path, err := t.InclusionProof(e.Position.Offset, head.Size)
		if err != nil {
			return nil, fmt.Errorf("evidencebundle: prove event %s: %w", e.ID, err)
		}
		pr := Proof{Leaf: fmt.Sprintf("%s%03d-%s.leaf", eventsDir, e.StreamSeq, safeName(e.Type)), Partition: p,
			Offset: e.Position.Offset, TreeSize: head.Size, Path: []string{}}
		for _, h := range path {
			pr.Path = append(pr.Path, hex.EncodeToString(h[:]))
		}
		out.Proofs = append(out.Proofs, pr)
	}
	return out, nil
}

// buildTree reads a partition's leaves up to the head and checks that they
// make its root.
func buildTree(ctx context.Context, l eventstore.Log, head integrity.Head) (*integrity.Tree, error) {
	t := &integrity.Tree{}
	for from := int64(0); from < head.Size; {
		evs, err := l.Read(ctx, head.Partition, from, 2000)
		if err != nil {
			return nil, fmt.Errorf("evidencebundle: read partition %d: %w", head.Partition, err)
		}
		if len(evs) == 0 {
			return nil, fmt.Errorf("evidencebundle: partition %d ends before its head at %d", head.Partition, head.Size)
		}
		for i := range evs {
			if evs[i].Position.Offset < head.Size {
				if err := t.Append(integrity.LeafHash(&evs[i])); err != nil {
					return nil, err
				}
			}
		}
		from = evs[len(evs)-1].Position.Offset + 1
	}
	if root, err := t.Root(head.Size); err != nil || root != head.Root {
		return nil, fmt.Errorf("evidencebundle: partition %d does not match its signed head; run log verify", head.Partition)
	}
	return t, nil
}

func toJSON(e *eventstore.Event) eventJSON {
	j := eventJSON{Partition: e.Position.Partition, Offset: e.Position.Offset, PrevHash: hex.EncodeToString(e.PrevHash[:]),
		RecordedAt: e.RecordedAt.UTC().Format(time.RFC3339Nano), ID: e.ID, Tenant: e.Tenant, Stream: e.Stream, Type: e.Type,
		StreamSeq: e.StreamSeq, Version: e.Version, MessageKey: e.MessageKey, CorrelationID: e.CorrelationID,
		CausationID: e.CausationID, Metadata: e.Metadata}
	if json.Valid(e.Data) {
		j.Data = json.RawMessage(e.Data)
	} else {
		j.DataBase64 = base64.StdEncoding.EncodeToString(e.Data)
	}
	return j
}

// erasure reads the fields of a ContentErased event without depending on
// its Go type: when, why and under which rule.
func erasure(e *eventstore.Event) *Erasure {
	var d struct {
		At       time.Time `json:"at"`
		ErasedAt time.Time `json:"erasedAt"`
		Rule     string    `json:"rule"`
		Reason   string    `json:"reason"`
	}
	json.Unmarshal(e.Data, &d)
	at := d.ErasedAt
	if at.IsZero() {
		at = d.At
	}
	if at.IsZero() {
		at = e.RecordedAt
	}
	return &Erasure{At: at.UTC(), Rule: d.Rule, Reason: d.Reason, Event: e.ID}
}

func publicKeyPEM(pub crypto.PublicKey) ([]byte, string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("evidencebundle: gateway key: %w", err)
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		return nil, "", fmt.Errorf("evidencebundle: gateway key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), fp, nil
}

// safeName keeps letters, digits, '-', '_' and '.', so that every name in
// the bundle extracts the same on every system.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 || strings.Trim(b.String(), ".") == "" {
		return "x"
	}
	return b.String()
}

// plannedBlob is one blob to include.
type plannedBlob struct {
	ref                         blob.Ref
	name, role, desc, mediaType string
	events                      []string
}

// blobPlan names each blob once, after the first event and role that refer
// to it.
type blobPlan struct {
	bySum map[string]*plannedBlob
	names map[string]bool
	order []*plannedBlob
	count map[string]int
}

func newBlobPlan() *blobPlan {
	return &blobPlan{bySum: map[string]*plannedBlob{}, names: map[string]bool{}, count: map[string]int{}}
}

func (bp *blobPlan) add(e *eventstore.Event, ref blob.Ref, dir, stem, ext, role, desc, mediaType string) {
	if ref == (blob.Ref{}) {
		return
	}
	if pb, ok := bp.bySum[ref.SHA256]; ok {
		if len(pb.events) == 0 || pb.events[len(pb.events)-1] != e.ID {
			pb.events = append(pb.events, e.ID)
		}
		return
	}
	name := path.Join(dir, stem) + ext
	for n := 2; bp.names[strings.ToLower(name)]; n++ {
		name = fmt.Sprintf("%s-%d%s", path.Join(dir, stem), n, ext)
	}
	bp.names[strings.ToLower(name)] = true
	pb := &plannedBlob{ref: ref, name: name, role: role, desc: desc, mediaType: mediaType, events: []string{e.ID}}
	bp.bySum[ref.SHA256] = pb
	bp.order = append(bp.order, pb)
}

// plan names the blobs of one event by what they are; blobs of payload
// types without a name here go to blobs/<sha256>.
func (bp *blobPlan) plan(e *eventstore.Event, p gateway.Payload, idx *Index) {
	seq := fmt.Sprintf("%03d", e.StreamSeq)
	switch v := p.(type) {
	case *gateway.MessageReceived:
		ext, mt := ".bin", "application/octet-stream"
		switch v.Channel {
		case gateway.ChannelSMTP, gateway.ChannelIMAP, gateway.ChannelDeMail:
			ext, mt = ".eml", "message/rfc822"
		}
		if idx.Message == nil {
			idx.Message = &MessageSummary{Channel: string(v.Channel), SenderMessageID: v.SenderMessageID,
				From: v.From.Address, Subject: v.Subject, ReceivedAt: v.ReceivedAt.UTC()}
		}
		bp.add(e, v.Raw, "message", "original", ext, "original", "the message's bytes exactly as received ("+string(v.Channel)+")", mt)
		for _, part := range v.Parts {
			bp.add(e, part.Blob, "message/parts", safeName(part.Path), "", "part", "MIME part "+part.Path+" as extracted from the original", orOctet(part.MediaType))
		}
	case *gateway.TimestampApplied:
		if idx.Message != nil && idx.Message.ReceiptTimestamp == nil {
			t := v.GenTime.UTC()
			idx.Message.ReceiptTimestamp, idx.Message.ReceiptTSA = &t, v.TSA
		}
		bp.add(e, v.Token, "timestamps", "receipt-"+seq, ".tst", "receipt-timestamp",
			"RFC 3161 TimeStampToken (DER) over the original bytes, from "+v.TSA, "application/vnd.etsi.timestamp-token")
	case *gateway.SignaturesVerified:
		bp.add(e, v.Report, "verification", "report-"+seq, ".json", "report", "machine-readable verification report of the message's signatures", "application/json")
		bp.add(e, v.ReportHTML, "verification", "pruefprotokoll-"+seq, ".html", "pruefprotokoll", "the Prüfprotokoll (human-readable verification report)", "text/html")
	case *gateway.DeliveryEvidenceRecorded:
		bp.add(e, v.Evidence, "transport", "evidence-"+seq+"-"+safeName(string(v.Kind)), "", "transport-evidence",
			"delivery evidence ("+string(v.Kind)+") of the "+string(v.Channel)+" channel, as received", orOctet(v.MediaType))
	case *gateway.ReplyRequested:
		bp.add(e, v.Body, "answers", "answer-"+seq+"-body", "", "answer", "body of the answer the office requested", "application/octet-stream")
		for i, a := range v.Attachments {
			bp.add(e, a.Blob, "answers", fmt.Sprintf("answer-%s-attachment-%d", seq, i+1), "", "answer", "attachment of the answer", orOctet(a.MediaType))
		}
	case *gateway.ReplySent:
		bp.add(e, v.Sent, "answers", "sent-"+seq, "", "answer", "the answer's bytes as handed to the peer", "application/octet-stream")
	default:
		for _, r := range p.BlobRefs() {
			bp.add(e, r, "blobs", r.SHA256, "", "blob", "bytes an event of type "+e.Type+" refers to", "application/octet-stream")
		}
	}
}

func orOctet(mt string) string {
	if mt == "" || strings.ContainsAny(mt, "\"<>&") {
		return "application/octet-stream"
	}
	return mt
}
