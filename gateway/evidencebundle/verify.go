package evidencebundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
)

// MaxBundle caps the bundle Verify reads whole: the seal is checked by
// crypto/verify, which reads no larger file.
const MaxBundle = verify.MaxInputSize

// VerifyOptions are what the checker brings from outside the bundle.
type VerifyOptions struct {
	// Key is the gateway's public key as the authority published it; nil
	// takes the key in the bundle, which then proves only as much as the
	// seal over it.
	Key crypto.PublicKey
	// Trust holds the anchors the seal's and the TSAs' certificates must
	// chain to; nil checks the signatures' integrity only.
	Trust *trust.Store
	// Time is the validation time (zero: now).
	Time time.Time
}

// Finding is the outcome of one check.
type Finding struct {
	// Check names what was checked: container, seal, manifest, index,
	// gateway-key, head, head-timestamp, event, inclusion, blobs,
	// original, receipt-timestamp, evidence-record, erased.
	Check  string
	OK     bool
	Detail string
}

// Result is every finding of a verification.
type Result struct {
	Findings []Finding
	Index    *Index
}

// Failed returns the failed findings.
func (r *Result) Failed() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if !f.OK {
			out = append(out, f)
		}
	}
	return out
}

// OK reports whether every check passed.
func (r *Result) OK() bool { return len(r.Failed()) == 0 }

type checker struct {
	ctx  context.Context
	opts VerifyOptions
	res  *Result
	c    *asic.Container
	idx  *Index
}

func (k *checker) ok(check, format string, a ...any) {
	k.res.Findings = append(k.res.Findings, Finding{Check: check, OK: true, Detail: fmt.Sprintf(format, a...)})
}

func (k *checker) fail(check, format string, a ...any) {
	k.res.Findings = append(k.res.Findings, Finding{Check: check, Detail: fmt.Sprintf(format, a...)})
}

func (k *checker) file(name string) ([]byte, bool) { return k.c.DataObject(name) }

// Verify checks a bundle offline: the container, the seal over the
// manifest and the manifest's digest of every file, the index, every
// event's leaf, its inclusion proof and the head it leads to with the
// head's signature and timestamp, the blobs against the events that refer
// to them, and the receipt timestamp against the original bytes. It
// returns an error only when ctx ends; everything else is a finding.
func Verify(ctx context.Context, data []byte, opts VerifyOptions) (*Result, error) {
	k := &checker{ctx: ctx, opts: opts, res: &Result{}}
	k.run(data)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return k.res, nil
}

func (k *checker) run(data []byte) {
	if len(data) > MaxBundle {
		k.fail("container", "%d bytes, more than %d", len(data), MaxBundle)
		return
	}
	if !k.container(data) || !k.index() || !k.seal(data) {
		return
	}
	pub, ok := k.gatewayKey()
	if !ok {
		return
	}
	heads, note, ok := k.head(pub)
	if !ok {
		return
	}
	k.headStamp(note)
	evs, ok := k.events()
	if !ok {
		return
	}
	k.inclusion(evs, heads)
	k.blobs(evs)
}

// container checks the ASiC-E structure: the writer's layout and nothing
// else.
func (k *checker) container(data []byte) bool {
	c, err := asic.Open(k.ctx, data, asic.Limits{MaxEntries: 4*maxEventsInBag + 10, MaxEntrySize: MaxBundle, MaxTotalSize: MaxBundle * 2})
	if err != nil {
		k.fail("container", "%v", err)
		return false
	}
	switch {
	case c.MimeType != asic.MimeTypeE:
		k.fail("container", "mimetype is %q, want %q", c.MimeType, asic.MimeTypeE)
	case len(c.CAdESSignatures) != 1 || c.CAdESSignatures[0].Name != asic.SignatureName:
		k.fail("container", "want exactly one seal %s, found %d CAdES signatures", asic.SignatureName, len(c.CAdESSignatures))
	case len(c.Manifests) != 1 || c.Manifests[0].Name != asic.ManifestName:
		k.fail("container", "want exactly one %s, found %d manifests", asic.ManifestName, len(c.Manifests))
	case len(c.XAdESSignatures)+len(c.Timestamps)+len(c.Other) > 0:
		k.fail("container", "unexpected entries in META-INF/ (%d XAdES, %d timestamps, %d others)", len(c.XAdESSignatures), len(c.Timestamps), len(c.Other))
	default:
		k.c = c
		k.ok("container", "ASiC-E with %d data objects, one ASiCManifest and one CAdES seal", len(c.DataObjects))
		return true
	}
	return false
}

// seal checks the CAdES signature over the manifest (crypto/verify, as for
// any ASiC-E) and that the manifest lists every data object with its
// digest.
func (k *checker) seal(data []byte) bool {
	m, err := k.c.ManifestFor(asic.SignatureName)
	if err != nil {
		k.fail("manifest", "%v", err)
		return false
	}
	listed := map[string]bool{}
	good := true
	for _, cr := range m.Check(k.c) {
		listed[cr.Name] = true
		if cr.Status != asic.RefOK {
			k.fail("manifest", "%s: %s %s", cr.URI, cr.Status, cr.Detail)
			good = false
		}
	}
	if un := k.c.Uncovered(listed); len(un) > 0 {
		k.fail("manifest", "files the manifest does not list: %s", strings.Join(un, ", "))
		good = false
	}
	if !good {
		return false
	}
	k.ok("manifest", "%d files, each with the SHA-256 the manifest lists", len(m.References))
	if !k.sealShape() {
		return false
	}

	rep, err := verify.Verify(k.ctx, data, verify.Options{Trust: k.opts.Trust, Time: k.opts.Time, Name: "bundle"})
	if err != nil {
		k.fail("seal", "%v", err)
		return false
	}
	if len(rep.Signatures) != 1 {
		k.fail("seal", "%d signatures, want the one seal", len(rep.Signatures))
		return false
	}
	s := rep.Signatures[0]
	signer := "an unnamed signer"
	if s.Signer != nil {
		signer = s.Signer.Subject
	}
	var broken []string
	for _, c := range s.Checks {
		if c.Result == report.CheckFailed && !trustCheck(c.ID) {
			broken = append(broken, c.ID+": "+c.Detail)
		}
	}
	switch {
	case len(broken) > 0 || s.Indication == report.TotalFailed:
		k.fail("seal", "the seal over the manifest is broken (%s %s): %s", s.Indication, s.SubIndication, strings.Join(broken, "; "))
		return false
	case k.opts.Trust == nil:
		k.ok("seal", "intact, by %s; its certificate was not checked against trust anchors (give them to check it)", signer)
	case s.Indication == report.Indeterminate && anchored(s.Checks):
		// A seal certificate whose CA publishes no revocation data (the
		// demo's self-issued one) chains to the anchor, and the validator
		// cannot say more; DSS says the same.
		k.ok("seal", "intact, by %s, chains to a trust anchor; %s %s (revocation not established)", signer, s.Indication, s.SubIndication)
	case s.Indication != report.TotalPassed:
		k.fail("seal", "intact, by %s, but %s %s against the trust anchors given", signer, s.Indication, s.SubIndication)
		return false
	default:
		k.ok("seal", "%s, by %s", s.Indication, signer)
	}
	return true
}

// sealShape holds the seal's SignedData to what the writer makes: one
// signer over detached id-data, DER, exactly the certificates the index
// names (the index is covered by the seal; the certificates field is not),
// no revocation data and no unsigned attributes but a signature timestamp.
// Without it a changed byte in an unsigned part of the seal could pass.
func (k *checker) sealShape() bool {
	raw := k.c.CAdESSignatures[0].Data
	sd, err := cms.Parse(raw)
	if err != nil {
		k.fail("seal", "%v", err)
		return false
	}
	var certs []string
	for _, c := range sd.Certificates {
		sum := sha256.Sum256(c.Raw)
		certs = append(certs, hex.EncodeToString(sum[:]))
	}
	slices.Sort(certs)
	want := slices.Clone(k.idx.Seal.Certificates)
	slices.Sort(want)
	switch {
	case sd.BER || len(sd.Signers) != 1 || sd.HasContent:
		k.fail("seal", "the seal is not one DER signer over detached content")
	case !slices.Equal(certs, want) || len(sd.CertificateErrors)+len(sd.OtherCertificates) > 0:
		k.fail("seal", "the seal carries other certificates than the %d evidence.json names", len(want))
	case len(sd.CRLs)+len(sd.OCSPResponses)+len(sd.OtherRevocationInfo) > 0:
		k.fail("seal", "the seal carries revocation data, which the bundle's seal never does")
	case len(sd.DigestAlgorithms) != 1 || !sd.DigestAlgorithms[0].OID.Equal(sd.Signers[0].DigestAlgorithm.OID) ||
		!bytes.Equal(sd.DigestAlgorithms[0].Parameters, sd.Signers[0].DigestAlgorithm.Parameters):
		k.fail("seal", "the seal's digest algorithms are not its signer's")
	default:
		for _, a := range sd.Signers[0].UnsignedAttrs {
			if !a.Type.Equal(oidSignatureTimeStamp) {
				k.fail("seal", "the seal has the unsigned attribute %s", a.Type)
				return false
			}
		}
		return true
	}
	return false
}

// oidSignatureTimeStamp is id-aa-signatureTimeStampToken (RFC 3161
// appendix A), the one unsigned attribute a CAdES-B-T seal has.
var oidSignatureTimeStamp = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}

// anchored reports whether the chain reached a trust anchor and no check
// failed outright.
func anchored(checks []report.Check) bool {
	found := false
	for _, c := range checks {
		if c.Result == report.CheckFailed {
			return false
		}
		found = found || (c.ID == "trust.trustAnchor" && c.Result == report.CheckOK)
	}
	return found
}

// trustCheck names the checks that fail only because no chain to an anchor
// was built: without anchors they say nothing about the seal's integrity.
func trustCheck(id string) bool {
	for _, s := range []string{"chain", "trust", "revocation", "qualif", "anchor", "policy"} {
		if strings.Contains(id, s) {
			return true
		}
	}
	return false
}

// index reads evidence.json and holds it to the container's files.
func (k *checker) index() bool {
	raw, ok := k.file(IndexName)
	if !ok {
		k.fail("index", "no %s", IndexName)
		return false
	}
	if len(raw) > maxIndexSize {
		k.fail("index", "%s has %d bytes, more than %d", IndexName, len(raw), maxIndexSize)
		return false
	}
	var idx Index
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		k.fail("index", "%s: %v", IndexName, err)
		return false
	}
	if idx.Format != Format {
		k.fail("index", "format %q, this verifier reads %q", idx.Format, Format)
		return false
	}
	k.idx, k.res.Index = &idx, &idx
	inIndex := map[string]bool{IndexName: true}
	for _, f := range idx.Files {
		b, ok := k.file(f.Name)
		if !ok {
			k.fail("index", "%s lists %s, which is not in the container", IndexName, f.Name)
			return false
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Size {
			k.fail("index", "%s: its SHA-256 or size is not the one %s lists", f.Name, IndexName)
			return false
		}
		inIndex[f.Name] = true
	}
	if un := k.c.Uncovered(inIndex); len(un) > 0 {
		k.fail("index", "files %s does not list: %s", IndexName, strings.Join(un, ", "))
		return false
	}
	k.ok("index", "%s of stream %s in log %s, %d files, made %s", Format, idx.Stream, idx.LogID, len(idx.Files), idx.CreatedAt.Format(time.RFC3339))
	return true
}

// gatewayKey takes the bundle's key and holds it to the one given.
func (k *checker) gatewayKey() (crypto.PublicKey, bool) {
	raw, ok := k.file(k.idx.GatewayKey.File)
	if !ok || k.idx.GatewayKey.File != KeyName {
		k.fail("gateway-key", "no %s", KeyName)
		return nil, false
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		k.fail("gateway-key", "%s is no PEM public key", KeyName)
		return nil, false
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		k.fail("gateway-key", "%s: %v", KeyName, err)
		return nil, false
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil || fp != k.idx.GatewayKey.Fingerprint {
		k.fail("gateway-key", "%s has fingerprint %s, the index says %s", KeyName, fp, k.idx.GatewayKey.Fingerprint)
		return nil, false
	}
	if k.opts.Key == nil {
		k.ok("gateway-key", "%s from the bundle (compare it with the fingerprint the authority published, or give the key)", fp)
		return pub, true
	}
	want, err := x509.MarshalPKIXPublicKey(k.opts.Key)
	if err != nil || !bytes.Equal(want, blk.Bytes) {
		gfp, _ := keys.Fingerprint(k.opts.Key)
		k.fail("gateway-key", "the bundle's gateway key %s is not the key given (%s)", fp, gfp)
		return nil, false
	}
	k.ok("gateway-key", "%s, the key given", fp)
	return pub, true
}

// head checks the signed head's note signatures and that it is the head
// of the bundle's log.
func (k *checker) head(pub crypto.PublicKey) (map[int32]integrity.Head, []byte, bool) {
	note, ok := k.file(k.idx.Head.File)
	if !ok {
		k.fail("head", "no %s", k.idx.Head.File)
		return nil, nil, false
	}
	heads, err := integrity.ParseHeads(note, pub)
	if err != nil {
		k.fail("head", "%s: %v", k.idx.Head.File, err)
		return nil, nil, false
	}
	out := map[int32]integrity.Head{}
	var size int64
	for _, h := range heads {
		if h.LogID != k.idx.LogID {
			k.fail("head", "the head is of log %q, the bundle of %q", h.LogID, k.idx.LogID)
			return nil, nil, false
		}
		out[h.Partition] = h
		size += h.Size
	}
	k.ok("head", "signed by the gateway key: %d partition(s), %d events", len(heads), size)
	return out, note, true
}

// headStamp checks the RFC 3161 token over the head file.
func (k *checker) headStamp(note []byte) {
	if k.idx.Head.Timestamp == "" {
		k.ok("head-timestamp", "none (%s): the head's time rests on the seal", k.idx.Head.Source)
		return
	}
	raw, ok := k.file(k.idx.Head.Timestamp)
	if !ok {
		k.fail("head-timestamp", "no %s", k.idx.Head.Timestamp)
		return
	}
	tok, err := witness.ParseStamp(raw)
	if err != nil {
		k.fail("head-timestamp", "%v", err)
		return
	}
	k.token("head-timestamp", tok, note, "the head")
}

// token checks that a timestamp token is intact and covers data, and with
// trust anchors that its TSA chains to one.
func (k *checker) token(check string, tok *tsp.Token, data []byte, what string) bool {
	res := tok.Verify(tsp.VerifyOptions{Data: data})
	if !res.Valid {
		var failed []string
		for _, c := range res.Checks {
			if c.Outcome != cms.Passed {
				failed = append(failed, fmt.Sprintf("%s: %s", c.ID, c.Detail))
			}
		}
		k.fail(check, "the token does not cover %s: %s", what, strings.Join(failed, "; "))
		return false
	}
	tsa := "an unnamed TSA"
	if res.TSACertificate != nil {
		tsa = res.TSACertificate.Subject.String()
	}
	at := tok.Info.GenTime.UTC().Format(time.RFC3339)
	if k.opts.Trust == nil {
		k.ok(check, "covers %s, at %s by %s (TSA certificate not checked against trust anchors)", what, at, tsa)
		return true
	}
	rep, err := verify.Verify(k.ctx, tok.Raw, verify.Options{Trust: k.opts.Trust, Time: k.opts.Time, Detached: data})
	if err != nil || len(rep.Timestamps) != 1 {
		k.fail(check, "the token's TSA could not be validated: %v", err)
		return false
	}
	ts := rep.Timestamps[0]
	switch {
	case ts.Indication == report.Passed || ts.Indication == report.TotalPassed:
	case ts.Indication == report.Indeterminate && anchored(ts.Checks):
		// As for the seal: a TSA whose CA publishes no revocation data
		// (the demo's) chains to the anchor, and nothing more can be said.
		k.ok(check, "covers %s, at %s by %s, chained to a trust anchor; %s %s (revocation not established)", what, at, tsa, ts.Indication, ts.SubIndication)
		return true
	default:
		k.fail(check, "covers %s at %s, but the TSA %s is %s %s against the trust anchors", what, at, tsa, ts.Indication, ts.SubIndication)
		return false
	}
	k.ok(check, "covers %s, at %s by %s, chained to a trust anchor", what, at, tsa)
	return true
}

// provenEvent is an event read back from its leaf.
type provenEvent struct {
	info EventInfo
	leaf []byte
	ev   *eventstore.Event
}

// events reads every leaf, holds the JSON beside it to it, and checks that
// the stream is complete (1..n, one stream).
func (k *checker) events() ([]provenEvent, bool) {
	if len(k.idx.Events) == 0 {
		k.fail("event", "the bundle lists no events")
		return nil, false
	}
	var out []provenEvent
	for i, ei := range k.idx.Events {
		leaf, ok := k.file(ei.Leaf)
		if !ok {
			k.fail("event", "event %s: no %s", ei.ID, ei.Leaf)
			return nil, false
		}
		e, err := integrity.DecodeLeaf(leaf)
		if err != nil {
			k.fail("event", "%s: %v", ei.Leaf, err)
			return nil, false
		}
		lh := integrity.LeafHash(e)
		switch {
		case e.ID != ei.ID || e.Type != ei.Type || e.StreamSeq != ei.Seq || e.Position.Partition != ei.Partition || e.Position.Offset != ei.Offset:
			k.fail("event", "%s is event %s (%s, seq %d at %d/%d), the index says %s (%s, seq %d at %d/%d)", ei.Leaf,
				e.ID, e.Type, e.StreamSeq, e.Position.Partition, e.Position.Offset, ei.ID, ei.Type, ei.Seq, ei.Partition, ei.Offset)
			return nil, false
		case e.Tenant != k.idx.Tenant || e.Stream != k.idx.Stream:
			k.fail("event", "%s is of stream %s/%s, the bundle of %s/%s", ei.Leaf, e.Tenant, e.Stream, k.idx.Tenant, k.idx.Stream)
			return nil, false
		case e.StreamSeq != int64(i+1):
			k.fail("event", "event %d of the bundle has stream sequence %d: the stream is incomplete or out of order", i+1, e.StreamSeq)
			return nil, false
		case hex.EncodeToString(lh[:]) != ei.LeafHash:
			k.fail("event", "%s hashes to %x, the index says %s", ei.Leaf, lh, ei.LeafHash)
			return nil, false
		}
		if msg := k.sameAsJSON(ei.JSON, e); msg != "" {
			k.fail("event", "%s does not say what %s says: %s", ei.JSON, ei.Leaf, msg)
			return nil, false
		}
		out = append(out, provenEvent{info: ei, leaf: leaf, ev: e})
	}
	k.ok("event", "%d events, stream sequence 1 to %d, each JSON file saying what its leaf says", len(out), len(out))
	return out, true
}

// sameAsJSON compares the readable file with the leaf it stands beside.
func (k *checker) sameAsJSON(name string, e *eventstore.Event) string {
	raw, ok := k.file(name)
	if !ok {
		return "missing"
	}
	var got eventJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		return err.Error()
	}
	want := toJSON(e)
	gotData, wantData := got.Data, want.Data
	got.Data, want.Data = nil, nil
	if len(got.Metadata) == 0 && len(want.Metadata) == 0 {
		got.Metadata, want.Metadata = nil, nil
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		return "the fields differ"
	}
	var ca, cb bytes.Buffer
	if (gotData == nil) != (wantData == nil) {
		return "the payload differs"
	}
	if gotData != nil {
		if json.Compact(&ca, gotData) != nil || json.Compact(&cb, wantData) != nil || !bytes.Equal(ca.Bytes(), cb.Bytes()) {
			return "the payload differs"
		}
	}
	return ""
}

// inclusion checks each leaf's audit path up to its partition's head.
func (k *checker) inclusion(evs []provenEvent, heads map[int32]integrity.Head) {
	raw, ok := k.file(ProofsName)
	if !ok || len(raw) > maxProofsSize {
		k.fail("inclusion", "no %s, or larger than %d bytes", ProofsName, maxProofsSize)
		return
	}
	var ps Proofs
	if err := json.Unmarshal(raw, &ps); err != nil {
		k.fail("inclusion", "%s: %v", ProofsName, err)
		return
	}
	if ps.LogID != k.idx.LogID || len(ps.Proofs) != len(evs) {
		k.fail("inclusion", "%s holds %d proofs of log %q, want %d of %q", ProofsName, len(ps.Proofs), ps.LogID, len(evs), k.idx.LogID)
		return
	}
	for i, pe := range evs {
		p := ps.Proofs[i]
		head, ok := heads[pe.ev.Position.Partition]
		switch {
		case p.Leaf != pe.info.Leaf || p.Partition != pe.ev.Position.Partition || p.Offset != pe.ev.Position.Offset:
			k.fail("inclusion", "proof %d is of %s at %d/%d, not of %s", i+1, p.Leaf, p.Partition, p.Offset, pe.info.Leaf)
			return
		case !ok || head.Size != p.TreeSize:
			k.fail("inclusion", "the proof of %s leads to a tree of %d events, which is not the signed head of partition %d", pe.info.Leaf, p.TreeSize, p.Partition)
			return
		}
		path := make([][32]byte, len(p.Path))
		for j, h := range p.Path {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != 32 {
				k.fail("inclusion", "the proof of %s: hash %d is malformed", pe.info.Leaf, j+1)
				return
			}
			copy(path[j][:], b)
		}
		if err := integrity.CheckInclusion(path, head.Size, head.Root, p.Offset, integrity.LeafHash(pe.ev)); err != nil {
			k.fail("inclusion", "%s is not in the signed head of partition %d: %v", pe.info.Leaf, p.Partition, err)
			return
		}
	}
	k.ok("inclusion", "each of the %d leaves is in the signed head of its partition", len(evs))
}

// blobs holds every blob an event refers to to the files of the bundle,
// and checks the original bytes and the receipt timestamps.
func (k *checker) blobs(evs []provenEvent) {
	bySum := map[string]string{}
	for _, f := range k.idx.Files {
		if _, ok := bySum[f.SHA256]; !ok {
			bySum[f.SHA256] = f.Name
		}
	}
	erased := k.erasure(evs)
	reg := gateway.NewRegistry()
	var original []byte
	haveOriginal := false
	checked, missing := 0, 0
	for _, pe := range evs {
		p, err := reg.Decode(pe.ev)
		if err != nil {
			k.ok("blobs", "event %s (%s) is of a type this verifier does not read; its blobs are not checked", pe.ev.ID, pe.ev.Type)
			continue
		}
		for _, r := range p.BlobRefs() {
			if _, ok := bySum[r.SHA256]; ok {
				checked++
				continue
			}
			if erased && slices.ContainsFunc(k.idx.Missing, func(m MissingBlob) bool { return m.SHA256 == r.SHA256 && m.Reason == "erased" }) {
				missing++
				continue
			}
			k.fail("blobs", "event %s (%s) refers to %s, which the bundle does not hold", pe.ev.ID, pe.ev.Type, r.SHA256)
			return
		}
		if m, ok := p.(*gateway.MessageReceived); ok && !haveOriginal {
			name, ok := bySum[m.Raw.SHA256]
			if !ok {
				k.ok("original", "erased; the receipt event records its SHA-256 %s", m.Raw.SHA256)
				continue
			}
			original, _ = k.file(name)
			haveOriginal = true
			k.ok("original", "%s hashes to %s, the raw bytes the receipt event %s records", name, m.Raw.SHA256, pe.ev.ID)
		}
	}
	if missing > 0 {
		k.ok("blobs", "%d referred blobs in the bundle, %d erased", checked, missing)
	} else {
		k.ok("blobs", "every one of the %d blobs the events refer to is in the bundle", checked)
	}
	for _, pe := range evs {
		if pe.ev.Type != "TimestampApplied" {
			continue
		}
		p, err := reg.Decode(pe.ev)
		if err != nil {
			k.fail("receipt-timestamp", "%v", err)
			continue
		}
		ts := p.(*gateway.TimestampApplied)
		k.receiptStamp(pe.ev, ts, bySum, original, haveOriginal)
	}
	k.record(evs, original, haveOriginal)
}

// record checks the evidence record over the original, when the bundle
// has one: it covers the original's hash (the bytes, or the hash the
// receipt event records when they are erased), and its archive
// timestamps verify against the trust anchors.
func (k *checker) record(evs []provenEvent, original []byte, haveOriginal bool) {
	der, ok := k.file(RecordName)
	if !ok || !slices.ContainsFunc(k.idx.Files, func(f FileInfo) bool { return f.Name == RecordName && f.Role == RecordRole }) {
		return
	}
	er, err := ers.Parse(der)
	if err != nil {
		k.fail("evidence-record", "%s: %v", RecordName, err)
		return
	}
	opts := ers.VerifyOptions{Data: original, Trust: k.opts.Trust, Time: k.opts.Time}
	digest := sha256.Sum256(original)
	what := "the original bytes"
	if !haveOriginal {
		raw, ok := receivedRaw(evs)
		d, err := hex.DecodeString(raw.SHA256)
		if !ok || err != nil {
			k.fail("evidence-record", "%s: no original and no receipt event to hold it to", RecordName)
			return
		}
		copy(digest[:], d)
		opts = ers.VerifyOptions{Digests: map[crypto.Hash][]byte{crypto.SHA256: digest[:]}, Trust: k.opts.Trust, Time: k.opts.Time}
		what = "the SHA-256 the receipt event records (the bytes are erased)"
	}
	if !er.Covers(digest[:]) {
		k.fail("evidence-record", "%s does not cover %s", RecordName, what)
		return
	}
	stamps := 0
	for _, c := range er.Chains {
		stamps += len(c.Stamps)
	}
	if k.opts.Trust == nil {
		k.ok("evidence-record", "%s covers %s; its %d archive timestamps are not checked without trust anchors", RecordName, what, stamps)
		return
	}
	res, err := er.Verify(opts)
	switch {
	case err != nil:
		k.fail("evidence-record", "%s: %v", RecordName, err)
	case !res.Valid:
		k.fail("evidence-record", "%s covers %s but does not verify: %s", RecordName, what, strings.Join(res.Problems, "; "))
	default:
		k.ok("evidence-record", "%s covers %s; %d archive timestamps in %d chains, chained to a trust anchor", RecordName, what, stamps, len(er.Chains))
	}
}

// receivedRaw is the raw reference of the stream's MessageReceived.
func receivedRaw(evs []provenEvent) (blob.Ref, bool) {
	reg := gateway.NewRegistry()
	for _, pe := range evs {
		if pe.ev.Type != "MessageReceived" {
			continue
		}
		if p, err := reg.Decode(pe.ev); err == nil {
			return p.(*gateway.MessageReceived).Raw, true
		}
	}
	return blob.Ref{}, false
}

// receiptStamp checks a TimestampApplied: its token covers the original
// bytes, and says what the event records (imprint, genTime, serial).
func (k *checker) receiptStamp(e *eventstore.Event, ts *gateway.TimestampApplied, bySum map[string]string, original []byte, haveOriginal bool) {
	name, ok := bySum[ts.Token.SHA256]
	if !ok {
		k.fail("receipt-timestamp", "the token of %s is not in the bundle", e.ID)
		return
	}
	der, _ := k.file(name)
	tok, err := tsp.ParseToken(der)
	if err != nil {
		k.fail("receipt-timestamp", "%s: %v", name, err)
		return
	}
	recorded, err := hex.DecodeString(strings.TrimSpace(ts.Imprint))
	switch {
	case err != nil || subtle.ConstantTimeCompare(recorded, tok.Info.HashedMessage) != 1:
		k.fail("receipt-timestamp", "%s covers %x, the event records the imprint %q", name, tok.Info.HashedMessage, ts.Imprint)
		return
	case !ts.GenTime.Equal(tok.Info.GenTime):
		k.fail("receipt-timestamp", "%s says %s, the event records %s", name, tok.Info.GenTime, ts.GenTime)
		return
	}
	if !haveOriginal {
		k.ok("receipt-timestamp", "%s records imprint %s at %s; the original bytes are erased", name, ts.Imprint, tok.Info.GenTime.UTC().Format(time.RFC3339))
		return
	}
	k.token("receipt-timestamp", tok, original, "the original bytes ("+name+")")
}

// erasure checks the index's erasure claim against a proven event.
func (k *checker) erasure(evs []provenEvent) bool {
	if k.idx.Erased == nil {
		if len(k.idx.Missing) > 0 {
			k.fail("erased", "%d blobs are missing, but the bundle records no erasure", len(k.idx.Missing))
		}
		return false
	}
	for _, pe := range evs {
		if pe.ev.ID == k.idx.Erased.Event && pe.ev.Type == erasedType {
			k.ok("erased", "contents erased at %s under rule %q (%s), recorded by the proven event %s",
				k.idx.Erased.At.Format(time.RFC3339), k.idx.Erased.Rule, k.idx.Erased.Reason, pe.ev.ID)
			return true
		}
	}
	k.fail("erased", "the bundle says the contents were erased by event %s, which is not a proven %s event", k.idx.Erased.Event, erasedType)
	return false
}
