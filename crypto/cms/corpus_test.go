package cms

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

func corpusFile(t testing.TB, elem ...string) string {
	t.Helper()
	return corpus.Path(t, append([]string{"signatures"}, elem...)...)
}

func readCorpus(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sample is what MANIFEST.tsv says DSS asserts, translated to our result.
// Where we deliberately differ, pinned says why (see DIFFERENCES.md).
type sample struct {
	file     string
	content  string // detached content file under cades/, "" for none
	digest   string // base64 SHA-256 of detached content when only that is known
	parseErr bool
	intact   bool
	valid    bool
	check    func(t *testing.T, r *SignerResult, sd *SignedData)
	pinned   string
}

func wantCheck(t *testing.T, r *SignerResult, id CheckID, want Outcome) {
	t.Helper()
	c, ok := r.Check(id)
	if !ok {
		t.Errorf("check %s missing", id)
		return
	}
	if c.Outcome != want {
		t.Errorf("check %s = %s (%s), want %s", id, c.Outcome, c.Detail, want)
	}
}

func timestampsOf(r *SignerResult, kind TimestampKind) []*TimestampResult {
	var out []*TimestampResult
	for _, ts := range r.Timestamps {
		if ts.Kind == kind {
			out = append(out, ts)
		}
	}
	return out
}

// wantImprintDetail wants the timestamp's imprint check to say detail.
func wantImprintDetail(t *testing.T, ts *TimestampResult, detail string) {
	t.Helper()
	if c := lastCheck(ts, CheckTimestampImprint); !strings.Contains(c.Detail, detail) {
		t.Errorf("%s imprint detail %q, want %q", ts.Kind, c.Detail, detail)
	}
}

// wantTimestampCheck wants the timestamp's check id with that outcome and detail.
func wantTimestampCheck(t *testing.T, ts *TimestampResult, id CheckID, want Outcome, detail string) {
	t.Helper()
	if c := lastCheck(ts, id); c.Outcome != want || !strings.Contains(c.Detail, detail) {
		t.Errorf("%s %s: %s %q, want %s %q", ts.Kind, id, c.Outcome, c.Detail, want, detail)
	}
}

// tsValid: token parsed, its signature intact and its imprint checked ok.
func tsValid(t *testing.T, ts *TimestampResult) {
	t.Helper()
	if ts.Signer == nil || !ts.Signer.Intact {
		t.Errorf("%s timestamp signature not intact", ts.Kind)
	}
	for _, c := range ts.Checks {
		if c.ID == CheckTimestampImprint && c.Outcome != Passed {
			t.Errorf("%s timestamp imprint %s: %s", ts.Kind, c.Outcome, c.Detail)
		}
	}
}

var cadesSamples = []sample{
	{file: "CAdESDoubleLTA.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		if len(r.Timestamps) != 3 || len(timestampsOf(r, TimestampArchiveV3)) != 2 {
			t.Errorf("timestamps: %d, archive-v3: %d", len(r.Timestamps), len(timestampsOf(r, TimestampArchiveV3)))
		}
		tsValid(t, timestampsOf(r, TimestampSignature)[0])
		for _, ts := range timestampsOf(r, TimestampArchiveV3) {
			tsValid(t, ts)
			wantImprintDetail(t, ts, "archive-time-stamp v3 (ats-hash-index)")
			wantTimestampCheck(t, ts, CheckATSHashIndex, Passed, "every entry matches")
		}
	}},
	{file: "Signature-C-B-B-8.p7m", intact: true, valid: true},
	{file: "Signature-C-B-LTA-10.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		archiveV2Valid(t, r)
		v3 := timestampsOf(r, TimestampArchiveV3)
		if len(v3) != 1 {
			t.Fatalf("%d archive-v3 timestamps, want 1", len(v3))
		}
		tsValid(t, v3[0])
		if r.SigningCertificateRefUnique || len(r.SigningCertificateRefs) != 4 {
			t.Errorf("refs %d unique %v, DSS: 4 refs, not unique", len(r.SigningCertificateRefs), r.SigningCertificateRefUnique)
		}
	}},
	{file: "Signature-C-DE_CRY-3.p7m", intact: true, valid: true, check: noRecognisedTimestamp},
	{file: "Signature-C-DE_CRY-4.p7m", intact: true, valid: true, pinned: "DSS: not intact; OpenSSL and we: the signature value verifies over the transmitted signed attributes, which are not in DER SET OF order",
		check: func(t *testing.T, r *SignerResult, sd *SignedData) {
			noRecognisedTimestamp(t, r, sd)
			// The signer signed the attributes in the order sent; DSS
			// verifies over their DER re-encoding, which sorts them.
			if r.SignedAttrsEncoding != EncodingTransmitted || bytes.Equal(derSortedSet(r.SignerInfo.SignedAttrs), r.SignerInfo.SignedAttrsRaw) {
				t.Errorf("encoding %q; want the transmitted, non-DER order to be the one signed", r.SignedAttrsEncoding)
			}
		}},
	{file: "Signature-CBp-LT-2.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, sd *SignedData) {
		tsValid(t, timestampsOf(r, TimestampSignature)[0])
		if len(sd.Certificates) != 5 {
			t.Errorf("certificates %d", len(sd.Certificates))
		}
	}},
	{file: "cades-ats-v3-wrong-cert.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		tsValid(t, timestampsOf(r, TimestampSignature)[0])
		v3 := timestampsOf(r, TimestampArchiveV3)
		if len(v3) != 1 {
			t.Fatalf("want 1 archive-v3 timestamp")
		}
		// DSS: imprint intact, "ats-hash-index is not valid" (a warning):
		// a certificate the index lists has been replaced.
		tsValid(t, v3[0])
		wantImprintDetail(t, v3[0], "ats-hash-index-v3")
		wantTimestampCheck(t, v3[0], CheckATSHashIndex, NotChecked, "the hash index is not valid: 1 of 6 certificates entries")
	}},
	{file: "cades-bes-signeddata-detached.p7s", content: "cades-bes-signeddata-detached.p7s.detached-content.txt", intact: true, valid: true,
		check: func(t *testing.T, r *SignerResult, sd *SignedData) {
			if !r.ContentType.Equal(OIDSignedData) || sd.HasContent {
				t.Errorf("content type %s, attached %v", r.ContentType, sd.HasContent)
			}
		}},
	{file: "cades-bes-signeddata-enveloping.p7m", intact: true, valid: true},
	{file: "cades-broken-sig-tst.p7m", intact: false, valid: false,
		pinned: "README: DSS accepts; OpenSSL and we: the DigestInfo in the signature lacks the NULL parameter RFC 8017 B.1 requires",
		check: func(t *testing.T, r *SignerResult, _ *SignedData) {
			c, _ := r.Check(CheckSignatureValue)
			if c.Outcome != Failed || !strings.Contains(c.Detail, "omits the NULL parameter") || !strings.Contains(c.Detail, "RFC 8017 appendix B.1") ||
				!strings.Contains(c.Detail, "matches the signed attributes as transmitted") {
				t.Errorf("signature value %s: %s", c.Outcome, c.Detail)
			}
		}},
	{file: "cades-duplicated-signed-attrs.p7m", digest: "WFPY/sGmfOK+kOcNo+x6gFa+IJJHebVd/zyFApyxt0M=", intact: true, valid: false,
		pinned: "DSS: not intact; we: the value verifies (intact) but the duplicated signing-time makes it invalid",
		check: func(t *testing.T, r *SignerResult, _ *SignedData) {
			wantCheck(t, r, CheckSignedAttributes, Failed)
			wantCheck(t, r, CheckMessageDigest, Passed)
		}},
	{file: "cms-no-sign-cert.p7m", intact: false, valid: false, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		wantCheck(t, r, CheckMessageDigest, Passed)
		wantCheck(t, r, CheckSigningCertificate, Failed)
		wantCheck(t, r, CheckSignatureValue, NotChecked)
	}},
	{file: "cms-wrong-sign-cert-ref.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		ts := timestampsOf(r, TimestampSignature)[0]
		if ts.Signer == nil || ts.Signer.Intact {
			t.Fatalf("timestamp signer must not be intact")
		}
		wantCheck(t, ts.Signer, CheckSigningCertificate, Failed) // DSS: NO_SIGNING_CERTIFICATE_FOUND
	}},
	{file: "counterSig.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		if len(r.CounterSignatures) != 1 || !r.CounterSignatures[0].Valid {
			t.Errorf("countersignatures: %d", len(r.CounterSignatures))
		}
		if !r.SigningTime.IsZero() {
			t.Errorf("signing time %v, DSS: none", r.SigningTime)
		}
	}},
	{file: "malformed-cades.p7m", parseErr: true},
	{file: "wrongContentHints.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		if r.SignatureAlgorithm.Name() != "SHA-256withRSAandMGF1" || len(r.CounterSignatures) != 1 || !r.CounterSignatures[0].Intact {
			t.Errorf("algorithm %s, countersignatures %d", r.SignatureAlgorithm.Name(), len(r.CounterSignatures))
		}
	}},
	{file: "dss-1220/CAdES-BpB_revoked_signingCertificate.p7m", intact: true, valid: true},
	{file: "dss-1220/CAdES-BpLTA_modified_ats_hash_element.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		// An index entry was altered: the imprint covers the index, so it
		// fails (DSS: HASH_FAILURE), and the entry matches nothing.
		ts := timestampsOf(r, TimestampArchiveV3)[0]
		if c := lastCheck(ts, CheckTimestampImprint); c.Outcome != Failed {
			t.Errorf("modified ats-hash-index: imprint %s", c.Outcome)
		}
		wantTimestampCheck(t, ts, CheckATSHashIndex, NotChecked, "1 of 4 certificates entries match no element")
	}},
	{file: "dss-1220/CAdES-BpLTA_removed_ocsp.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		// A covered element was removed: the imprint over the index as it
		// stands holds (DSS: imprint intact, index not valid).
		ts := timestampsOf(r, TimestampArchiveV3)[0]
		tsValid(t, ts)
		wantTimestampCheck(t, ts, CheckATSHashIndex, NotChecked, "the hash index is not valid")
	}},
	{file: "dss-1220/CAdES-BpT_modified_ts_hash.p7m", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		ts := timestampsOf(r, TimestampSignature)[0]
		if c := lastCheck(ts, CheckTimestampImprint); c.Outcome != Failed {
			t.Errorf("modified imprint: %s", c.Outcome)
		}
	}},
	{file: "dss-1344/screenshot.png.signed_qes_detached.p7s", content: "dss-1344/screenshot.png", intact: true, valid: true,
		check: func(t *testing.T, r *SignerResult, _ *SignedData) {
			if r.SigningCertificateRefUnique {
				t.Errorf("DSS: reference not unique")
			}
			tsValid(t, timestampsOf(r, TimestampSignature)[0])
			archiveV2Valid(t, r)
		}},
	{file: "dss-1419/CAdES-BpB-att-SHA256-SHA3_256withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA256-SHA3_256withRSAandMGF1.p7m", intact: true, valid: true},
	{file: "dss-1419/CAdES-BpB-att-SHA256-SHA512withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA3_224-SHA256withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA3_224-SHA3_224withRSA.p7m", intact: true, valid: true},
	{file: "dss-1419/CAdES-BpB-att-SHA3_256-SHA256withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA3_256-SHA3_256withRSA.p7m", intact: true, valid: true},
	{file: "dss-1419/CAdES-BpB-att-SHA3_384-SHA256withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA3_512-SHA256withRSA.p7m", check: mixedDigests},
	{file: "dss-1419/CAdES-BpB-att-SHA3_512-SHA3_512withRSA.p7m", intact: true, valid: true},
	{file: "dss-1469/cadesLTAwithATv2expired.p7s", intact: true, valid: true, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		if len(timestampsOf(r, TimestampSignature)) != 1 || len(timestampsOf(r, TimestampArchiveV2)) != 1 {
			t.Errorf("want 1 signature and 1 archive-v2 timestamp")
		}
		tsValid(t, timestampsOf(r, TimestampSignature)[0])
		archiveV2Valid(t, r)
	}},
	{file: "dss-1892/detached_with_counter_sig.p7m", content: "dss-1892/signed_content.bin", intact: true, valid: true,
		check: func(t *testing.T, r *SignerResult, _ *SignedData) {
			if len(r.CounterSignatures) != 1 || len(r.Timestamps) != 1 || len(r.CounterSignatures[0].Timestamps) != 1 {
				t.Fatalf("DSS: one countersignature, one timestamp each")
			}
			tsValid(t, r.Timestamps[0])
			tsValid(t, r.CounterSignatures[0].Timestamps[0])
		}},
	{file: "dss-667/BER_reordered_prova.txt.p7m", intact: true, valid: true, check: derSorted},
	{file: "dss-667/DER_reordered_prova.txt.p7m", intact: true, valid: true, check: derSorted},
	{file: "dss-916/test.txt.signed.qes.attached.p7s", intact: true, valid: true, check: notUniqueRef},
	{file: "dss-916/test.txt.signed.qes.detached.p7s", content: "dss-916/test.txt", intact: true, valid: true, check: notUniqueRef},
	{file: "dss-2011/cades-detached.pkcs7", content: "dss-2011/cades-detached.pkcs7.detached-content.txt", intact: true, valid: true},
	{file: "dss-2011/cades-enveloping.pkcs7", intact: true, valid: true},
	{file: "dss-2011/cades-enveloping-broken.pkcs7", intact: true, valid: false, check: func(t *testing.T, r *SignerResult, _ *SignedData) {
		wantCheck(t, r, CheckMessageDigest, Failed)
	}},
}

func noRecognisedTimestamp(t *testing.T, r *SignerResult, _ *SignedData) {
	for _, ts := range r.Timestamps {
		if ts.Token != nil {
			t.Errorf("a timestamp was recognised; DSS ignores the OCTET STRING-wrapped token")
		}
	}
}

func mixedDigests(t *testing.T, r *SignerResult, _ *SignedData) {
	wantCheck(t, r, CheckDigestAlgorithmConsistency, Failed)
	wantCheck(t, r, CheckSignatureValue, Failed)
	c, _ := r.Check(CheckSignatureValue)
	if !strings.Contains(c.Detail, "verifies only with the digestAlgorithm") {
		t.Errorf("detail %q does not explain the mixed digests", c.Detail)
	}
}

// derSorted: the transmitted signed attributes are not in DER order and
// the signature covers their DER (sorted) encoding, as RFC 5652 5.4 says.
func derSorted(t *testing.T, r *SignerResult, _ *SignedData) {
	if r.SignedAttrsEncoding != EncodingDERSorted {
		t.Errorf("signature verified over %q, want the DER re-sorted attributes", r.SignedAttrsEncoding)
	}
}

func notUniqueRef(t *testing.T, r *SignerResult, _ *SignedData) {
	archiveV2Valid(t, r) // DSS: exactly 1 archive timestamp
	if r.SigningCertificateRefUnique {
		t.Errorf("DSS: signing-certificate reference not unique")
	}
	wantCheck(t, r, CheckSigningCertificateRef, Passed)
}

// archiveV2Valid: exactly one archive-time-stamp v2, signature and imprint valid.
func archiveV2Valid(t *testing.T, r *SignerResult) {
	t.Helper()
	ats := timestampsOf(r, TimestampArchiveV2)
	if len(ats) != 1 {
		t.Fatalf("%d archive-v2 timestamps, want 1", len(ats))
	}
	tsValid(t, ats[0])
}

func lastCheck(ts *TimestampResult, id CheckID) Check {
	var c Check
	for _, x := range ts.Checks {
		if x.ID == id {
			c = x
		}
	}
	return c
}

func TestCAdESCorpus(t *testing.T) {
	for _, s := range cadesSamples {
		t.Run(s.file, func(t *testing.T) {
			data := readCorpus(t, "signatures", "cades", s.file)
			sd, err := Parse(data)
			if s.parseErr {
				if err == nil || !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want a format error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			var opts VerifyOptions
			if s.content != "" {
				opts.DetachedContent = readCorpus(t, "signatures", "cades", s.content)
			}
			if s.digest != "" {
				opts.DetachedDigest, _ = base64.StdEncoding.DecodeString(s.digest)
				opts.DetachedDigestAlgorithm = crypto.SHA256
			}
			res := sd.Verify(opts)
			if len(res.Signers) != 1 {
				t.Fatalf("%d signers", len(res.Signers))
			}
			r := res.Signers[0]
			if r.Intact != s.intact || r.Valid != s.valid {
				t.Errorf("intact=%v valid=%v, want intact=%v valid=%v (%s); checks: %+v", r.Intact, r.Valid, s.intact, s.valid, s.pinned, r.Checks)
			}
			if s.check != nil {
				s.check(t, r, sd)
			}
			if opts.DetachedContent != nil {
				streamedAgrees(t, sd, opts, r)
			}
		})
	}
}

// streamedAgrees verifies sd again with the detached content streamed
// through DetachedReader and wants every check as with it in memory.
func streamedAgrees(t *testing.T, sd *SignedData, opts VerifyOptions, want *SignerResult) {
	t.Helper()
	content := opts.DetachedContent
	opts.DetachedContent = nil
	opened := 0
	opts.DetachedReader = func() (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(content)), nil
	}
	res := sd.Verify(opts)
	if res.ContentErr != nil || opened == 0 {
		t.Fatalf("streamed: content error %v, opened %d times", res.ContentErr, opened)
	}
	got := res.Signers[0]
	if got.Valid != want.Valid || got.Intact != want.Intact || !reflect.DeepEqual(got.Checks, want.Checks) {
		t.Errorf("streamed: valid=%v intact=%v checks %+v; in memory valid=%v intact=%v checks %+v",
			got.Valid, got.Intact, got.Checks, want.Valid, want.Intact, want.Checks)
	}
}

func TestDetachedWrongContent(t *testing.T) {
	sd, err := Parse(readCorpus(t, "signatures", "cades", "dss-2011", "cades-detached.pkcs7"))
	if err != nil {
		t.Fatal(err)
	}
	r := sd.Verify(VerifyOptions{DetachedContent: []byte("Bye World")}).Signers[0]
	wantCheck(t, r, CheckMessageDigest, Failed) // DSS: found but NOT intact
	if r.Valid || !r.Intact {
		t.Errorf("valid=%v intact=%v", r.Valid, r.Intact)
	}
	r = sd.Verify(VerifyOptions{}).Signers[0]
	wantCheck(t, r, CheckMessageDigest, NotChecked) // SIGNED_DATA_NOT_FOUND
	if r.Valid {
		t.Error("valid without content")
	}
}

// TestEveryCAdESSampleCovered keeps the table in step with the manifest.
func TestEveryCAdESSampleCovered(t *testing.T) {
	manifest := string(readCorpus(t, "signatures", "MANIFEST.tsv"))
	covered := map[string]bool{}
	for _, s := range cadesSamples {
		covered["cades/"+s.file] = true
	}
	for _, line := range strings.Split(manifest, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 || f[1] != "CAdES" {
			continue
		}
		if !covered[f[0]] {
			t.Errorf("manifest sample %s has no table entry", f[0])
		}
	}
}
