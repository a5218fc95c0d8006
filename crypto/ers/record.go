package ers

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// Limits for parsing. An evidence record renewed every few years for
// decades holds tens of timestamps; these caps are far above that and keep
// hostile input from costing more than a few megabytes of work.
const (
	// MaxRecordSize caps an encoded EvidenceRecord.
	MaxRecordSize = 8 << 20
	// MaxChains caps the ArchiveTimeStampChains (hash-tree renewals + 1).
	MaxChains = 64
	// MaxStamps caps the ArchiveTimeStamps of one chain.
	MaxStamps = 256
	// MaxTreeLevels caps the PartialHashtrees of one reduced hash tree.
	MaxTreeLevels = 64
	// MaxGroupSize caps the hash values of one PartialHashtree.
	MaxGroupSize = 1024
)

// Context-specific tags of RFC 4998 section 3 and 4.1 (the module uses
// IMPLICIT TAGS, so the tags replace the SEQUENCE/SET tags).
var (
	tagCryptoInfos     = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagEncryptionInfo  = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagDigestAlgorithm = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagAttributes      = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagReducedHashtree = cbasn1.Tag(2).Constructed().ContextSpecific()
)

// ErrUnsupported marks evidence records that parse but use features this
// package does not verify (encryptionInfo, unknown digest algorithms).
var ErrUnsupported = errors.New("ers: unsupported")

// EvidenceRecord is an RFC 4998 EvidenceRecord (section 3):
//
//	EvidenceRecord ::= SEQUENCE {
//	  version                   INTEGER { v1(1) } ,
//	  digestAlgorithms          SEQUENCE OF AlgorithmIdentifier,
//	  cryptoInfos               [0] CryptoInfos     OPTIONAL,
//	  encryptionInfo            [1] EncryptionInfo  OPTIONAL,
//	  archiveTimeStampSequence  ArchiveTimeStampSequence }
type EvidenceRecord struct {
	Version          int
	DigestAlgorithms []sigalg.AlgorithmIdentifier
	// CryptoInfos is the DER content of cryptoInfos (Attributes, without
	// the [0] tag), nil when absent. It is kept and re-encoded as it was.
	CryptoInfos []byte
	// EncryptionInfo is the DER content of encryptionInfo, nil when absent.
	// Verify refuses records that have it: the data objects were encrypted
	// before hashing and we cannot reproduce that.
	EncryptionInfo []byte
	// Chains is the ArchiveTimeStampSequence, oldest first.
	Chains []*Chain
}

// Chain is an ArchiveTimeStampChain: archive timestamps with one digest
// algorithm, each renewing the previous one's timestamp.
type Chain struct {
	Stamps []*ArchiveTimeStamp
}

// ArchiveTimeStamp is RFC 4998 section 4.1:
//
//	ArchiveTimeStamp ::= SEQUENCE {
//	  digestAlgorithm [0] AlgorithmIdentifier OPTIONAL,
//	  attributes      [1] Attributes OPTIONAL,
//	  reducedHashtree [2] SEQUENCE OF PartialHashtree OPTIONAL,
//	  timeStamp       ContentInfo}
type ArchiveTimeStamp struct {
	// DigestAlgorithm is nil when absent; then the timestamp's imprint
	// algorithm applies.
	DigestAlgorithm *sigalg.AlgorithmIdentifier
	// Attributes is the DER content of attributes, nil when absent.
	Attributes []byte
	// ReducedHashtree is the list of PartialHashtrees (each a list of hash
	// values), nil when absent.
	ReducedHashtree [][][]byte
	// TimeStamp is the RFC 3161 TimeStampToken (a CMS ContentInfo) as encoded.
	TimeStamp []byte
	// Token is TimeStamp parsed.
	Token *tsp.Token
}

// Hash is the digest algorithm of the archive timestamp (section 4.1: the
// digestAlgorithm field, else the timestamp's imprint algorithm); 0 when
// unsupported.
func (a *ArchiveTimeStamp) Hash() crypto.Hash {
	if a.DigestAlgorithm != nil {
		h, err := sigalg.DigestAlgorithm(*a.DigestAlgorithm)
		if err != nil {
			return 0
		}
		return h
	}
	return a.Token.Info.Hash
}

// Hash is the chain's digest algorithm, the one of its first timestamp.
func (c *Chain) Hash() crypto.Hash {
	if len(c.Stamps) == 0 {
		return 0
	}
	return c.Stamps[0].Hash()
}

// Parse parses a DER EvidenceRecord strictly: no trailing data, no
// indefinite lengths, every list within the package's caps.
func Parse(der []byte) (*EvidenceRecord, error) {
	if len(der) > MaxRecordSize {
		return nil, fmt.Errorf("ers: record of %d bytes exceeds %d", len(der), MaxRecordSize)
	}
	s := cryptobyte.String(der)
	var seq, algs cryptobyte.String
	var version int64
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("ers: not a DER EvidenceRecord")
	}
	if !seq.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) {
		return nil, errors.New("ers: malformed version")
	}
	if version != 1 {
		return nil, fmt.Errorf("ers: version %d, want 1", version)
	}
	er := &EvidenceRecord{Version: 1}
	if !seq.ReadASN1(&algs, cbasn1.SEQUENCE) {
		return nil, errors.New("ers: malformed digestAlgorithms")
	}
	for !algs.Empty() {
		if len(er.DigestAlgorithms) >= MaxChains {
			return nil, errors.New("ers: too many digestAlgorithms")
		}
		var ai sigalg.AlgorithmIdentifier
		if !sigalg.ReadAlgorithmIdentifier(&algs, &ai) {
			return nil, errors.New("ers: malformed digest AlgorithmIdentifier")
		}
		er.DigestAlgorithms = append(er.DigestAlgorithms, ai)
	}
	if seq.PeekASN1Tag(tagCryptoInfos) {
		var ci cryptobyte.String
		if !seq.ReadASN1(&ci, tagCryptoInfos) || ci.Empty() || !wellFormedList(ci, cbasn1.SEQUENCE) {
			return nil, errors.New("ers: malformed cryptoInfos")
		}
		er.CryptoInfos = bytes.Clone(ci)
	}
	if seq.PeekASN1Tag(tagEncryptionInfo) {
		var ei, oid, value cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadASN1(&ei, tagEncryptionInfo) {
			return nil, errors.New("ers: malformed encryptionInfo")
		}
		rest := ei
		if !rest.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) || !rest.ReadAnyASN1Element(&value, &tag) || !rest.Empty() {
			return nil, errors.New("ers: malformed encryptionInfo")
		}
		er.EncryptionInfo = bytes.Clone(ei)
	}
	var atss cryptobyte.String
	if !seq.ReadASN1(&atss, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, errors.New("ers: malformed archiveTimeStampSequence")
	}
	for !atss.Empty() {
		if len(er.Chains) >= MaxChains {
			return nil, fmt.Errorf("ers: more than %d ArchiveTimeStampChains", MaxChains)
		}
		var chainDER cryptobyte.String
		if !atss.ReadASN1(&chainDER, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("ers: malformed ArchiveTimeStampChain %d", len(er.Chains))
		}
		c := &Chain{}
		for !chainDER.Empty() {
			if len(c.Stamps) >= MaxStamps {
				return nil, fmt.Errorf("ers: chain %d has more than %d ArchiveTimeStamps", len(er.Chains), MaxStamps)
			}
			a, err := parseArchiveTimeStamp(&chainDER)
			if err != nil {
				return nil, fmt.Errorf("ers: chain %d, archive timestamp %d: %w", len(er.Chains), len(c.Stamps), err)
			}
			c.Stamps = append(c.Stamps, a)
		}
		if len(c.Stamps) == 0 {
			return nil, fmt.Errorf("ers: chain %d is empty", len(er.Chains))
		}
		er.Chains = append(er.Chains, c)
	}
	if len(er.Chains) == 0 {
		return nil, errors.New("ers: empty archiveTimeStampSequence")
	}
	return er, nil
}

// wellFormedList reports whether s is a concatenation of elements with tag.
func wellFormedList(s cryptobyte.String, tag cbasn1.Tag) bool {
	for !s.Empty() {
		if !s.SkipASN1(tag) {
			return false
		}
	}
	return true
}

func parseArchiveTimeStamp(in *cryptobyte.String) (*ArchiveTimeStamp, error) {
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed ArchiveTimeStamp")
	}
	a := &ArchiveTimeStamp{}
	if seq.PeekASN1Tag(tagDigestAlgorithm) {
		// IMPLICIT: [0] replaces the AlgorithmIdentifier's SEQUENCE tag.
		var body cryptobyte.String
		if !seq.ReadASN1(&body, tagDigestAlgorithm) {
			return nil, errors.New("malformed digestAlgorithm")
		}
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(body) })
		wrapped := cryptobyte.String(b.BytesOrPanic())
		ai := &sigalg.AlgorithmIdentifier{}
		if !sigalg.ReadAlgorithmIdentifier(&wrapped, ai) || !wrapped.Empty() {
			return nil, errors.New("malformed digestAlgorithm")
		}
		a.DigestAlgorithm = ai
	}
	if seq.PeekASN1Tag(tagAttributes) {
		var attrs cryptobyte.String
		if !seq.ReadASN1(&attrs, tagAttributes) || attrs.Empty() || !wellFormedList(attrs, cbasn1.SEQUENCE) {
			return nil, errors.New("malformed attributes")
		}
		a.Attributes = bytes.Clone(attrs)
	}
	if seq.PeekASN1Tag(tagReducedHashtree) {
		var tree cryptobyte.String
		if !seq.ReadASN1(&tree, tagReducedHashtree) {
			return nil, errors.New("malformed reducedHashtree")
		}
		a.ReducedHashtree = [][][]byte{}
		for !tree.Empty() {
			if len(a.ReducedHashtree) >= MaxTreeLevels {
				return nil, fmt.Errorf("reducedHashtree deeper than %d", MaxTreeLevels)
			}
			var part cryptobyte.String
			if !tree.ReadASN1(&part, cbasn1.SEQUENCE) {
				return nil, errors.New("malformed PartialHashtree")
			}
			var group [][]byte
			for !part.Empty() {
				if len(group) >= MaxGroupSize {
					return nil, fmt.Errorf("PartialHashtree with more than %d hash values", MaxGroupSize)
				}
				var h cryptobyte.String
				if !part.ReadASN1(&h, cbasn1.OCTET_STRING) {
					return nil, errors.New("malformed hash value in PartialHashtree")
				}
				group = append(group, bytes.Clone(h))
			}
			if len(group) == 0 {
				return nil, errors.New("empty PartialHashtree")
			}
			a.ReducedHashtree = append(a.ReducedHashtree, group)
		}
	}
	var ts cryptobyte.String
	if !seq.ReadASN1Element(&ts, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, errors.New("malformed timeStamp")
	}
	a.TimeStamp = bytes.Clone(ts)
	tok, err := tsp.ParseToken(a.TimeStamp)
	if err != nil {
		return nil, fmt.Errorf("timeStamp: %w", err)
	}
	a.Token = tok
	return a, nil
}

// Marshal encodes the record in DER.
func (er *EvidenceRecord) Marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(er.Version))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, ai := range er.DigestAlgorithms {
				addAlgorithm(b, cbasn1.SEQUENCE, ai)
			}
		})
		if er.CryptoInfos != nil {
			b.AddASN1(tagCryptoInfos, func(b *cryptobyte.Builder) { b.AddBytes(er.CryptoInfos) })
		}
		if er.EncryptionInfo != nil {
			b.AddASN1(tagEncryptionInfo, func(b *cryptobyte.Builder) { b.AddBytes(er.EncryptionInfo) })
		}
		b.AddBytes(marshalSequence(er.Chains))
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ers: encode record: %w", err)
	}
	return out, nil
}

// marshalSequence is the DER ArchiveTimeStampSequence of chains: what the
// hash-tree renewal hashes (RFC 4998 section 5.2 step 4).
func marshalSequence(chains []*Chain) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, c := range chains {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, a := range c.Stamps {
					a.marshal(b)
				}
			})
		}
	})
	return b.BytesOrPanic()
}

func (a *ArchiveTimeStamp) marshal(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if a.DigestAlgorithm != nil {
			addAlgorithm(b, tagDigestAlgorithm, *a.DigestAlgorithm)
		}
		if a.Attributes != nil {
			b.AddASN1(tagAttributes, func(b *cryptobyte.Builder) { b.AddBytes(a.Attributes) })
		}
		if a.ReducedHashtree != nil {
			b.AddASN1(tagReducedHashtree, func(b *cryptobyte.Builder) {
				for _, group := range a.ReducedHashtree {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, h := range group {
							b.AddASN1OctetString(h)
						}
					})
				}
			})
		}
		b.AddBytes(a.TimeStamp)
	})
}

func addAlgorithm(b *cryptobyte.Builder, tag cbasn1.Tag, ai sigalg.AlgorithmIdentifier) {
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(ai.OID)
		if ai.Parameters != nil {
			b.AddBytes(ai.Parameters)
		}
	})
}

// algorithmFor is the AlgorithmIdentifier we write for h: parameters
// absent, as RFC 5754 section 2 asks for the SHA-2 family.
func algorithmFor(h crypto.Hash) (sigalg.AlgorithmIdentifier, error) {
	oid := sigalg.DigestOID(h)
	if oid == nil {
		return sigalg.AlgorithmIdentifier{}, fmt.Errorf("%w: digest algorithm %v", ErrUnsupported, h)
	}
	return sigalg.AlgorithmIdentifier{OID: oid}, nil
}
