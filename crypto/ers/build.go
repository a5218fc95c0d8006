package ers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// Stamper obtains an RFC 3161 timestamp over a digest. Evidence records
// need imprints under the hash algorithm of their chain (RFC 4998 section
// 4.1, digestAlgorithm), so unlike tsp.Client it takes the algorithm.
type Stamper interface {
	// Stamp returns a TimeStampToken (ContentInfo, DER) whose imprint is
	// digest under h.
	Stamp(ctx context.Context, h crypto.Hash, digest []byte) ([]byte, error)
}

// HTTPStamper asks one TSA over HTTP (RFC 3161 section 3.4).
type HTTPStamper struct {
	URL string
	// Policy, if set, is requested and must be echoed.
	Policy asn1.ObjectIdentifier
	// HTTP is used for requests; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// MaxResponseSize caps the response (default 64 KiB).
	MaxResponseSize int64
}

// Stamp implements Stamper.
func (s *HTTPStamper) Stamp(ctx context.Context, h crypto.Hash, digest []byte) ([]byte, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("ers: nonce: %w", err)
	}
	req := &tsp.Request{Hash: h, HashedMessage: digest, Policy: s.Policy, Nonce: new(big.Int).SetBytes(nonce), CertReq: true}
	body, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp from %s: %w", s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ers: timestamp from %s: HTTP %s", s.URL, resp.Status)
	}
	limit := s.MaxResponseSize
	if limit <= 0 {
		limit = 64 << 10
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp from %s: %w", s.URL, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("ers: timestamp from %s: response exceeds %d bytes", s.URL, limit)
	}
	tr, err := tsp.ParseResponse(data)
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp from %s: %w", s.URL, err)
	}
	if tr.Token == nil {
		return nil, fmt.Errorf("ers: timestamp from %s: refused with status %d %v", s.URL, tr.Status, tr.StatusStrings)
	}
	info := tr.Token.Info
	switch {
	case info.Nonce == nil || info.Nonce.Cmp(req.Nonce) != 0:
		return nil, fmt.Errorf("ers: timestamp from %s: nonce does not match", s.URL)
	case s.Policy != nil && !info.Policy.Equal(s.Policy):
		return nil, fmt.Errorf("ers: timestamp from %s: policy %s, requested %s", s.URL, info.Policy, s.Policy)
	}
	return tr.Token.Raw, nil
}

// stamp obtains a timestamp over root and checks that it covers root under
// h and verifies cryptographically (the TSA's trust is for Verify).
func stamp(ctx context.Context, st Stamper, h crypto.Hash, root []byte) (*tsp.Token, error) {
	raw, err := st.Stamp(ctx, h, root)
	if err != nil {
		return nil, err
	}
	tok, err := tsp.ParseToken(raw)
	if err != nil {
		return nil, fmt.Errorf("ers: timestamp: %w", err)
	}
	if tok.Info.Hash != h {
		return nil, fmt.Errorf("ers: timestamp imprint uses %v, the archive timestamp %v", tok.Info.HashAlgorithm.OID, h)
	}
	if res := tok.Verify(tsp.VerifyOptions{Digest: root}); !res.Valid {
		var failed []string
		for _, c := range res.Checks {
			if c.Outcome != cms.Passed {
				failed = append(failed, fmt.Sprintf("%s: %s", c.ID, c.Detail))
			}
		}
		return nil, fmt.Errorf("ers: timestamp does not verify: %v", failed)
	}
	return tok, nil
}

func checkDigest(h crypto.Hash, d []byte) error {
	if !h.Available() {
		return fmt.Errorf("%w: digest algorithm %v not available", ErrUnsupported, h)
	}
	if len(d) != h.Size() {
		return fmt.Errorf("ers: digest of %d bytes, %v has %d", len(d), h, h.Size())
	}
	return nil
}

// Digest hashes a data object for Build and HashTreeRenewal.
func Digest(h crypto.Hash, r io.Reader) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("%w: digest algorithm %v not available", ErrUnsupported, h)
	}
	d := h.New()
	if _, err := io.Copy(d, r); err != nil {
		return nil, fmt.Errorf("ers: hash data object: %w", err)
	}
	return d.Sum(nil), nil
}

// newStamps builds one hash tree over leaves, timestamps its root and
// returns one ArchiveTimeStamp per leaf.
func newStamps(ctx context.Context, st Stamper, h crypto.Hash, leaves [][]byte) ([]*ArchiveTimeStamp, error) {
	ai, err := algorithmFor(h)
	if err != nil {
		return nil, err
	}
	root, paths := buildTree(h, leaves)
	tok, err := stamp(ctx, st, h, root)
	if err != nil {
		return nil, err
	}
	out := make([]*ArchiveTimeStamp, len(leaves))
	for i := range leaves {
		out[i] = &ArchiveTimeStamp{DigestAlgorithm: &ai, ReducedHashtree: paths[i], TimeStamp: tok.Raw, Token: tok}
	}
	return out, nil
}

// Build makes one evidence record per data object (RFC 4998 section 4.2):
// a hash tree over the data objects' digests under h, one timestamp over
// its root, and for each data object its reduced hash tree. One record per
// object rather than per group because a record must be kept (and handed to
// a court) with its object alone, and DSS validates a detached record
// against the documents given to it.
func Build(ctx context.Context, st Stamper, h crypto.Hash, digests [][]byte) ([]*EvidenceRecord, error) {
	if len(digests) == 0 {
		return nil, errors.New("ers: no data objects")
	}
	for i, d := range digests {
		if err := checkDigest(h, d); err != nil {
			return nil, fmt.Errorf("data object %d: %w", i, err)
		}
	}
	stamps, err := newStamps(ctx, st, h, digests)
	if err != nil {
		return nil, err
	}
	ai, _ := algorithmFor(h)
	out := make([]*EvidenceRecord, len(digests))
	for i, a := range stamps {
		out[i] = &EvidenceRecord{Version: 1, DigestAlgorithms: []sigalg.AlgorithmIdentifier{ai}, Chains: []*Chain{{Stamps: []*ArchiveTimeStamp{a}}}}
	}
	return out, nil
}

// TimestampRenewal renews the newest timestamp of each record (RFC 4998
// section 5.2, "Timestamp Renewal"; TR-ESOR "Erneuerung von
// Zeitstempeln"): the newest ArchiveTimeStamp's timeStamp is hashed with
// its chain's algorithm and timestamped anew; the new ArchiveTimeStamp
// joins that chain. Records whose newest timestamps share an algorithm
// share one new timestamp over a hash tree of them. The records given are
// not changed.
func TimestampRenewal(ctx context.Context, st Stamper, records ...*EvidenceRecord) ([]*EvidenceRecord, error) {
	out := make([]*EvidenceRecord, len(records))
	byHash := map[crypto.Hash][]int{}
	var order []crypto.Hash
	for i, er := range records {
		last := er.Chains[len(er.Chains)-1]
		h := last.Hash()
		if h == 0 || !h.Available() {
			return nil, fmt.Errorf("%w: record %d: chain digest algorithm", ErrUnsupported, i)
		}
		if _, ok := byHash[h]; !ok {
			order = append(order, h)
		}
		byHash[h] = append(byHash[h], i)
	}
	for _, h := range order {
		idx := byHash[h]
		// Records built together share their newest timestamp: one leaf each.
		var leaves [][]byte
		leafOf := make([]int, len(idx))
		for j, i := range idx {
			chain := records[i].Chains[len(records[i].Chains)-1]
			leaf := hashOf(h, chain.Stamps[len(chain.Stamps)-1].TimeStamp)
			k := slices.IndexFunc(leaves, func(l []byte) bool { return bytes.Equal(l, leaf) })
			if k < 0 {
				k = len(leaves)
				leaves = append(leaves, leaf)
			}
			leafOf[j] = k
		}
		stamps, err := newStamps(ctx, st, h, leaves)
		if err != nil {
			return nil, fmt.Errorf("ers: timestamp renewal: %w", err)
		}
		for j, i := range idx {
			er := records[i].clone()
			last := er.Chains[len(er.Chains)-1]
			last.Stamps = append(last.Stamps, stamps[leafOf[j]])
			out[i] = er
		}
	}
	return out, nil
}

// RenewalItem is one record for HashTreeRenewal with its data object's
// digest under the new algorithm.
type RenewalItem struct {
	Record *EvidenceRecord
	Digest []byte
}

// HashTreeRenewal renews the records under a new hash algorithm (RFC 4998
// section 5.2, "Hash-Tree Renewal"; TR-ESOR "Hashbaum-Erneuerung"): for each
// record, ha = H(DER of its ArchiveTimeStampSequence) and h' = H(h(d) ||
// ha) in that order (section 5.2 step 4, not the sorted variant of its
// Figure 4, as DSS and the BSI ERVerifyTool read it); a hash tree over the
// h' and one new timestamp make a new ArchiveTimeStampChain for each
// record. The records given are not changed.
func HashTreeRenewal(ctx context.Context, st Stamper, h crypto.Hash, items ...RenewalItem) ([]*EvidenceRecord, error) {
	if len(items) == 0 {
		return nil, errors.New("ers: no records to renew")
	}
	ai, err := algorithmFor(h)
	if err != nil {
		return nil, err
	}
	leaves := make([][]byte, len(items))
	for i, it := range items {
		if err := checkDigest(h, it.Digest); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		ha := hashOf(h, marshalSequence(it.Record.Chains))
		leaves[i] = hashOf(h, it.Digest, ha)
	}
	stamps, err := newStamps(ctx, st, h, leaves)
	if err != nil {
		return nil, fmt.Errorf("ers: hash-tree renewal: %w", err)
	}
	out := make([]*EvidenceRecord, len(items))
	for i, it := range items {
		er := it.Record.clone()
		if !slices.ContainsFunc(er.DigestAlgorithms, func(a sigalg.AlgorithmIdentifier) bool { return a.OID.Equal(ai.OID) }) {
			er.DigestAlgorithms = append(er.DigestAlgorithms, ai)
		}
		er.Chains = append(er.Chains, &Chain{Stamps: []*ArchiveTimeStamp{stamps[i]}})
		out[i] = er
	}
	return out, nil
}

// clone copies the record's lists so that appending to them leaves the
// original alone; the archive timestamps themselves are immutable.
func (er *EvidenceRecord) clone() *EvidenceRecord {
	c := *er
	c.DigestAlgorithms = slices.Clone(er.DigestAlgorithms)
	c.Chains = make([]*Chain, len(er.Chains))
	for i, ch := range er.Chains {
		c.Chains[i] = &Chain{Stamps: slices.Clone(ch.Stamps)}
	}
	return &c
}
