// Package ers builds, renews and verifies RFC 4998 Evidence Records (ERS):
// long-term proof that a data object existed unchanged since a time, kept
// valid across decades by renewing its timestamps before their TSA
// certificates expire and rehashing it before its hash algorithm weakens.
//
// What it follows:
//
//   - RFC 4998 section 3 and 4.1 (ASN.1, IMPLICIT TAGS): EvidenceRecord,
//     ArchiveTimeStampSequence, ArchiveTimeStampChain, ArchiveTimeStamp with
//     an RFC 3161 token (crypto/tsp). Parse is strict DER with size caps;
//     cryptoInfos are kept as they are, encryptionInfo parses but Verify
//     refuses it (ErrUnsupported).
//   - Section 4.2 (generation): Build hashes N data objects into one binary
//     hash tree (each pair sorted binary ascending, concatenated, hashed; an
//     odd node moves up unchanged), gets one timestamp over the root and
//     returns one record per data object with its reduced hash tree.
//   - Section 4.3 (verification of an ArchiveTimeStamp) and 5.3 (of the
//     record): Verify. A PartialHashtree with a single value stands for
//     that value rather than its hash, as RFC 6283 section 3.2.2 says for
//     XMLERS and as DSS reads the ASN.1 syntax too; Build never writes a
//     single-value group where the two readings would differ.
//   - Section 5.2 (renewal): TimestampRenewal hashes the newest timestamp
//     with the chain's algorithm and stamps it into the same chain;
//     HashTreeRenewal computes h' = H(h(d) || H(DER of the preceding
//     ArchiveTimeStampSequence)) in that order (step 4 of section 5.2; DSS
//     and the BSI ERVerifyTool read the sorted variant of Figure 4 as an
//     erratum) and starts a new chain.
//   - BSI TR-03125 (TR-ESOR) Annex TR-ESOR-ERS, which profiles RFC 4998, and
//     module TR-ESOR-M.3 (ArchiSafe's preservation of evidence): the notions
//     "Erneuerung von Zeitstempeln" (timestamp renewal) and
//     "Hashbaum-Erneuerung" (hash-tree renewal), decided by Policy against
//     a small algorithm catalogue after BSI TR-02102-1, with SOG-IS where
//     TR-02102-1 is silent.
//
// DSS 6.4 (dss-evidence-record-asn1) is the oracle: test/integration/ers
// re-validates crypto/ers/testdata/dss with it and TestCompareWithDSS
// requires our verdicts to agree.
package ers
