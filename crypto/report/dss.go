package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// DSSResult is one golden file of the DSS oracle
// (test/integration/dss/golden/**.json), reduced to what the comparison needs.
type DSSResult struct {
	Tool  string   `json:"tool"`
	Input DSSInput `json:"input"`
	// ValidationTime is the time DSS validated at (RFC 3339).
	ValidationTime string `json:"validationTime"`
	// Error is set when DSS refused the document (malformed, unsupported).
	Error      string         `json:"error"`
	Signatures []DSSSignature `json:"signatures"`
	// Timestamps are standalone timestamp tokens.
	Timestamps []DSSTimestamp `json:"timestamps"`
}

// DSSInput says what the oracle was asked: paths as in the oracle's jobs.tsv
// (signature and detached relative to the corpus signatures/ folder, trust
// relative to test/integration/dss/ unless prefixed "corpus:"; detached
// "sha256:BASE64" is digest-only content).
type DSSInput struct {
	Signature string   `json:"signature"`
	Detached  []string `json:"detached"`
	Trust     []string `json:"trust"`
	At        string   `json:"at"`
}

// DSSSignature is DSS's verdict on one signature.
type DSSSignature struct {
	ID               string        `json:"id"`
	CounterSignature bool          `json:"counterSignature"`
	Format           string        `json:"signatureFormat"`
	Indication       Indication    `json:"indication"`
	SubIndication    SubIndication `json:"subIndication"`
	Qualification    Qualification `json:"signatureQualification"`
	SigningTime      string        `json:"signingTime"`
	Signer           *struct {
		Subject string `json:"subject"`
		SHA256  string `json:"sha256"`
	} `json:"signer"`
	Timestamps []DSSTimestamp `json:"timestamps"`
}

// DSSTimestamp is DSS's verdict on one timestamp.
type DSSTimestamp struct {
	// SHA256 is the lower-case hex SHA-256 of the token's DER encoding; empty
	// in golden files written before the oracle recorded it.
	SHA256         string                 `json:"sha256"`
	Type           string                 `json:"type"`
	ProductionTime string                 `json:"productionTime"`
	Indication     Indication             `json:"indication"`
	SubIndication  SubIndication          `json:"subIndication"`
	Qualification  TimestampQualification `json:"qualification"`
}

// ParseDSS reads one oracle golden file (at most MaxJSONSize bytes).
func ParseDSS(rd io.Reader) (*DSSResult, error) {
	b, err := readCapped(rd, MaxJSONSize)
	if err != nil {
		return nil, fmt.Errorf("report: read dss result: %w", err)
	}
	var d DSSResult
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&d); err != nil {
		return nil, fmt.Errorf("report: decode dss result: %w", err)
	}
	if d.Error == "" {
		if _, err := time.Parse(time.RFC3339Nano, d.ValidationTime); err != nil {
			return nil, fmt.Errorf("report: dss result: validation time: %w", err)
		}
	}
	return &d, nil
}

// At returns the time DSS validated at, which a comparison must reuse.
func (d *DSSResult) At() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, d.ValidationTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("report: dss validation time: %w", err)
	}
	return t, nil
}

// Difference is one disagreement between our report and DSS.
type Difference struct {
	// Item names what differs: "document", "signatures", "signature 1",
	// "timestamp 1", "signature 1 timestamp 2".
	Item string
	// Field is "indication", "subIndication", "qualification" or "count"/"refused".
	Field string
	Ours  string
	DSS   string
}

func (d Difference) String() string {
	return fmt.Sprintf("%s %s: ours %q, DSS %q", d.Item, d.Field, d.Ours, d.DSS)
}

// CompareDSS compares format (DSS's SignatureLevel names), indication,
// sub-indication and qualification of every signature (indication and
// sub-indication of every standalone timestamp) in ours with DSS's verdicts and
// returns the differences; none means agreement. ours may be nil when our
// verifier refused the document. Signatures are paired by signing
// certificate and countersignature status, falling back to document order;
// signature timestamps are compared by count and, pairwise in genTime order,
// by indication.
func CompareDSS(ours *Report, dss *DSSResult) []Difference {
	var diffs []Difference
	switch {
	case ours == nil && dss.Error != "":
		return nil
	case ours == nil:
		return []Difference{{Item: "document", Field: "refused", Ours: "refused", DSS: "validated"}}
	case dss.Error != "":
		return []Difference{{Item: "document", Field: "refused", Ours: "validated", DSS: "refused: " + dss.Error}}
	}
	if len(ours.Signatures) != len(dss.Signatures) {
		diffs = append(diffs, Difference{Item: "signatures", Field: "count",
			Ours: fmt.Sprint(len(ours.Signatures)), DSS: fmt.Sprint(len(dss.Signatures))})
	}
	used := make([]bool, len(ours.Signatures))
	for i, ds := range dss.Signatures {
		j := pairSignature(ours.Signatures, used, &ds, i)
		if j < 0 {
			continue
		}
		used[j] = true
		item := fmt.Sprintf("signature %d", i+1)
		if ours.Signatures[j].Format != ds.Format {
			diffs = append(diffs, Difference{Item: item, Field: "format", Ours: ours.Signatures[j].Format, DSS: ds.Format})
		}
		diffs = append(diffs, compareVerdict(item, string(ours.Signatures[j].Indication), string(ds.Indication),
			string(ours.Signatures[j].SubIndication), string(ds.SubIndication),
			string(ours.Signatures[j].Qualification), string(ds.Qualification))...)
		diffs = append(diffs, compareTimestamps(item+" ", ours.Signatures[j].Timestamps, ds.Timestamps)...)
	}
	diffs = append(diffs, compareTimestamps("", ours.Timestamps, dss.Timestamps)...)
	return diffs
}

// pairSignature finds our signature for DSS's i-th one: same signing
// certificate and countersignature status first, then the same position.
func pairSignature(ours []Signature, used []bool, ds *DSSSignature, i int) int {
	if ds.Signer != nil && ds.Signer.SHA256 != "" {
		for j, s := range ours {
			if !used[j] && s.Signer != nil && s.Signer.SHA256 == ds.Signer.SHA256 &&
				(s.CounterSignatureOf != "") == ds.CounterSignature {
				return j
			}
		}
	}
	if i < len(ours) && !used[i] {
		return i
	}
	for j := range ours {
		if !used[j] {
			return j
		}
	}
	return -1
}

func compareVerdict(item, oi, di, os, ds, oq, dq string) []Difference {
	var diffs []Difference
	if oi != di {
		diffs = append(diffs, Difference{Item: item, Field: "indication", Ours: oi, DSS: di})
	}
	if os != ds {
		diffs = append(diffs, Difference{Item: item, Field: "subIndication", Ours: os, DSS: ds})
	}
	if oq != dq {
		diffs = append(diffs, Difference{Item: item, Field: "qualification", Ours: oq, DSS: dq})
	}
	return diffs
}

func compareTimestamps(prefix string, ours []Timestamp, dss []DSSTimestamp) []Difference {
	var diffs []Difference
	if len(ours) != len(dss) {
		diffs = append(diffs, Difference{Item: prefix + "timestamps", Field: "count",
			Ours: fmt.Sprint(len(ours)), DSS: fmt.Sprint(len(dss))})
	}
	for k, j := range pairTimestamps(ours, dss) {
		if j < 0 {
			continue
		}
		item := fmt.Sprintf("%stimestamp %d", prefix, k+1)
		diffs = append(diffs, compareVerdict(item, string(ours[j].Indication), string(dss[k].Indication),
			string(ours[j].SubIndication), string(dss[k].SubIndication),
			string(ours[j].Qualification), string(dss[k].Qualification))...)
	}
	return diffs
}

// pairTimestamps pairs each of DSS's timestamps with one of ours, one to
// one: the same token (SHA-256) first; then, for golden files without token
// digests, the same genTime to the millisecond, then to the second (DSS
// keeps milliseconds, a TSTInfo may not); then the same position. The
// result holds, for each DSS timestamp, the index of ours or -1. Pairing by
// time alone let two tokens of the same second both pair with one of ours.
func pairTimestamps(ours []Timestamp, dss []DSSTimestamp) []int {
	pair := make([]int, len(dss))
	used := make([]bool, len(ours))
	for k := range pair {
		pair[k] = -1
	}
	match := func(same func(o *Timestamp, d *DSSTimestamp) bool) {
		for k := range dss {
			if pair[k] >= 0 {
				continue
			}
			for j := range ours {
				if !used[j] && same(&ours[j], &dss[k]) {
					pair[k], used[j] = j, true
					break
				}
			}
		}
	}
	match(func(o *Timestamp, d *DSSTimestamp) bool {
		return d.SHA256 != "" && strings.EqualFold(o.SHA256, d.SHA256)
	})
	match(func(o *Timestamp, d *DSSTimestamp) bool {
		return d.SHA256 == "" && sameTime(o.GenTime, d.ProductionTime, time.Millisecond)
	})
	match(func(o *Timestamp, d *DSSTimestamp) bool {
		return d.SHA256 == "" && sameTime(o.GenTime, d.ProductionTime, time.Second)
	})
	for k := range dss {
		if pair[k] < 0 && k < len(ours) && !used[k] {
			pair[k], used[k] = k, true
		}
	}
	return pair
}

func sameTime(t time.Time, rfc3339 string, precision time.Duration) bool {
	d, err := time.Parse(time.RFC3339Nano, rfc3339)
	return err == nil && t.Truncate(precision).Equal(d.Truncate(precision))
}
