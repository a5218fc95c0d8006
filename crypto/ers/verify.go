package ers

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// VerifyOptions say what the record is checked against.
type VerifyOptions struct {
	// Data is the data object. Or Digests gives its digest under each
	// algorithm of the record's chains (what a store keeps when the bytes
	// themselves are gone).
	Data    []byte
	Digests map[crypto.Hash][]byte
	// Trust holds the TSAs' trust anchors.
	Trust *trust.Store
	// Time is the validation time; zero means now.
	Time time.Time
	// Policy, when set, also requires each chain's hash algorithm and each
	// TSA's key to have been suitable until the record was renewed (the
	// newest ones until Time). Nil checks no algorithm catalogue.
	Policy *Policy
}

// StampResult is the verification of one ArchiveTimeStamp.
type StampResult struct {
	Chain, Index int
	Hash         crypto.Hash
	GenTime      time.Time
	TSA          string
	// CheckedAt is when the TSA's certificate chain had to be valid: the
	// genTime of the next archive timestamp (which protects this one from
	// then on), or the validation time for the newest.
	CheckedAt time.Time
	Problems  []string
}

// Result is the outcome of Verify.
type Result struct {
	// Valid: every archive timestamp verified and no problem was found.
	Valid bool
	// Time is the validation time used.
	Time   time.Time
	Stamps []StampResult
	// Problems that concern the record as a whole.
	Problems []string
}

// Verify checks the record for a data object (RFC 4998 section 5.3): the
// first ArchiveTimeStamp covers the object's hash through its reduced hash
// tree; each later one in a chain covers the previous timestamp (timestamp
// renewal); the first of each later chain covers H(h(d) || H(preceding
// ArchiveTimeStampSequence)) under the new chain's algorithm (hash-tree
// renewal). Each timestamp must verify (RFC 3161, crypto/tsp), with genTimes
// in order, and its TSA certificate chain must lead to opts.Trust and be
// valid both at its genTime and at the time the next timestamp took over.
// Revocation of TSA certificates is checked against the CRLs embedded in
// the record's timestamp tokens (any token's, so that a renewal token may
// bring the previous TSA's): a TSA certificate revoked before its
// timestamp was renewed fails. Missing revocation data is not held against
// a timestamp, nor stale data (DSS's default policy does the same); OCSP
// responses and cryptoInfos are not read yet.
//
// An error means the record cannot be checked (unsupported features, bad
// options); a record that fails verification gives a Result with Valid false.
func (er *EvidenceRecord) Verify(opts VerifyOptions) (*Result, error) {
	if er.EncryptionInfo != nil {
		return nil, fmt.Errorf("%w: encryptionInfo (the data objects were encrypted before hashing)", ErrUnsupported)
	}
	if opts.Trust == nil {
		return nil, errors.New("ers: verify: no trust anchors for the TSAs")
	}
	if opts.Data == nil && opts.Digests == nil {
		return nil, errors.New("ers: verify: neither data nor digests given")
	}
	at := opts.Time
	if at.IsZero() {
		at = time.Now()
	}
	res := &Result{Time: at}
	dataHash := func(h crypto.Hash) ([]byte, error) {
		if opts.Data != nil {
			return hashOf(h, opts.Data), nil
		}
		d, ok := opts.Digests[h]
		if !ok {
			return nil, fmt.Errorf("no %v digest of the data object given", h)
		}
		if len(d) != h.Size() {
			return nil, fmt.Errorf("%v digest of the data object has %d bytes", h, len(d))
		}
		return d, nil
	}
	// Flatten the stamps so that each knows its successor's genTime.
	type ref struct{ c, i int }
	var all []ref
	for c, ch := range er.Chains {
		h := ch.Hash()
		if h == 0 || !h.Available() {
			return nil, fmt.Errorf("%w: digest algorithm of chain %d", ErrUnsupported, c)
		}
		for i := range ch.Stamps {
			all = append(all, ref{c, i})
		}
	}
	crls := er.embeddedCRLs()
	var prevGen time.Time
	for k, r := range all {
		ch := er.Chains[r.c]
		a := ch.Stamps[r.i]
		h := ch.Hash()
		sr := StampResult{Chain: r.c, Index: r.i, Hash: h, GenTime: a.Token.Info.GenTime, CheckedAt: at}
		if k+1 < len(all) {
			next := all[k+1]
			sr.CheckedAt = er.Chains[next.c].Stamps[next.i].Token.Info.GenTime
		}
		problem := func(format string, args ...any) { sr.Problems = append(sr.Problems, fmt.Sprintf(format, args...)) }

		if a.Hash() != h {
			problem("digest algorithm %v differs from the chain's %v (RFC 4998 section 5.3 step 3)", a.Hash(), h)
		}
		if a.Token.Info.Hash != h {
			problem("timestamp imprint algorithm %s differs from the archive timestamp's %v (section 4.1)", a.Token.Info.HashAlgorithm.OID, h)
		}
		var leaf []byte
		switch {
		case r.i > 0:
			leaf = hashOf(h, ch.Stamps[r.i-1].TimeStamp)
		default:
			d, err := dataHash(h)
			if err != nil {
				problem("%v", err)
				break
			}
			leaf = d
			if r.c > 0 {
				leaf = hashOf(h, d, hashOf(h, marshalSequence(er.Chains[:r.c])))
			}
		}
		if leaf != nil {
			root, err := rootOf(h, leaf, a.ReducedHashtree)
			if err != nil {
				problem("reduced hash tree: %v", err)
			} else {
				tr := a.Token.Verify(tsp.VerifyOptions{Digest: root})
				for _, c := range tr.Checks {
					if c.Outcome != cms.Passed {
						problem("timestamp %s %s: %s", c.ID, c.Outcome, c.Detail)
					}
				}
				if !tr.Valid && len(sr.Problems) == 0 {
					problem("timestamp signature does not verify")
				}
				if tr.TSACertificate != nil {
					sr.TSA = tr.TSACertificate.Subject.String()
					checkTSA(opts, tr, crls, sr.GenTime, sr.CheckedAt, problem)
				}
			}
		}
		if sr.GenTime.Before(prevGen) {
			problem("genTime %s precedes the previous archive timestamp's %s", sr.GenTime.Format(time.RFC3339), prevGen.Format(time.RFC3339))
		}
		if sr.GenTime.After(at) {
			problem("genTime %s is after the validation time", sr.GenTime.Format(time.RFC3339))
		}
		prevGen = sr.GenTime
		if opts.Policy != nil {
			if ok, why := opts.Policy.hashSuitable(h, sr.CheckedAt); !ok {
				problem("hash algorithm %v: %s", h, why)
			}
		}
		res.Stamps = append(res.Stamps, sr)
	}
	if !er.listsAlgorithms() {
		res.Problems = append(res.Problems, "digestAlgorithms does not list every chain's algorithm (RFC 4998 section 3)")
	}
	res.Valid = len(res.Problems) == 0
	for _, s := range res.Stamps {
		if len(s.Problems) > 0 {
			res.Valid = false
		}
	}
	return res, nil
}

// checkTSA validates the TSA certificate chain at the token's genTime and
// at the time the next archive timestamp took over.
func checkTSA(opts VerifyOptions, tr *tsp.Result, crls []*trust.CRL, gen, until time.Time, problem func(string, ...any)) {
	for _, t := range []time.Time{gen, until} {
		v := opts.Trust.Validate(trust.Input{Leaf: tr.TSACertificate, Intermediates: tr.Certificates, CRLs: crls, Time: t,
			RevocationOptional: true, IgnoreRevocationFreshness: true})
		if v.Indication != trust.Passed {
			var why []string
			for _, c := range v.Checks {
				if c.Result != trust.Passed && c.Result != "Info" {
					why = append(why, c.Name+": "+c.Detail)
				}
			}
			problem("TSA certificate chain at %s: %s %s %v", t.Format(time.RFC3339), v.Indication, v.SubIndication, why)
			return
		}
	}
	if opts.Policy != nil {
		if ok, why := opts.Policy.keySuitable(tr.TSACertificate.PublicKey, until); !ok {
			problem("TSA key: %s", why)
		}
	}
}

// embeddedCRLs are the CRLs of all the record's timestamp tokens; ones
// that do not parse are skipped (they cannot vouch for anything, and the
// token's signature covers none of them).
func (er *EvidenceRecord) embeddedCRLs() []*trust.CRL {
	var out []*trust.CRL
	seen := map[string]bool{}
	for _, c := range er.Chains {
		for _, a := range c.Stamps {
			for _, raw := range a.Token.SignedData.CRLs {
				if seen[string(raw)] {
					continue
				}
				seen[string(raw)] = true
				if crl, err := trust.ParseCRL(raw); err == nil {
					out = append(out, crl)
				}
			}
		}
	}
	return out
}

func (er *EvidenceRecord) listsAlgorithms() bool {
	for _, c := range er.Chains {
		oid := sigalg.DigestOID(c.Hash())
		found := false
		for _, ai := range er.DigestAlgorithms {
			if ai.OID.Equal(oid) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Covers reports whether the record's first archive timestamp covers a
// data object with this digest under the first chain's algorithm, without
// checking any timestamp: for finding the record of an object.
func (er *EvidenceRecord) Covers(digest []byte) bool {
	a := er.Chains[0].Stamps[0]
	if len(a.ReducedHashtree) == 0 {
		return bytes.Equal(a.Token.Info.HashedMessage, digest)
	}
	for _, v := range a.ReducedHashtree[0] {
		if bytes.Equal(v, digest) {
			return true
		}
	}
	return false
}
