// Package routing decides which offices a received message belongs to. A
// rule set is a YAML file of rules evaluated in order; the first rule whose
// conditions all hold decides (a rule marked continue adds its offices and
// lets the next rules add theirs). A message no rule places goes to triage
// as RoutingFailed.
//
// A rule set is compiled once: addresses are lowercased into maps, domains
// into a suffix index, regular expressions (RE2: linear time, whatever the
// input) compiled, and every rule with an exact condition indexed under it,
// so that evaluation visits only the rules that can match plus those
// without exact conditions. Each decision names the rule and the rule set's
// version (the SHA-256 of the file), and Explain tells why each rule matched
// or not.
//
//	rules:
//	  - id: bauamt-aktenzeichen
//	    description: Bauanträge by file number
//	    match:
//	      file_number: ['\bBA-\d{4}/\d{1,6}\b']
//	    offices: [bauamt]
//	  - id: schriftform-fehlt
//	    match: {written_form_required: true, written_form_satisfied: false}
//	    offices: [rechtsamt-pruefung]
//	  - id: egvp-gericht
//	    match: {channel: egvp, xjustiz_recipient: DE.Justiz.1234}
//	    offices: [rechtsamt]
//	  - id: copy-to-registry
//	    match: {sender_domain: bund.de}
//	    offices: [registratur]
//	    continue: true
package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/gateway"
)

// Metadata keys the channel adapters fill in MessageReceived.Metadata and
// the rules match on.
const (
	// MetaFileNumbers lists file numbers (Aktenzeichen) the channel states,
	// e.g. from xjustiz_nachricht.xml, separated by newlines or semicolons.
	MetaFileNumbers = "fileNumbers"
	// MetaXJustizRecipient is the XJustiz recipient (SAFE-ID or court code).
	MetaXJustizRecipient = "xjustiz.recipient"
	// MetaFITConnectDestination is the FIT-Connect destination id.
	MetaFITConnectDestination = "fitconnect.destination"
	// MetaFITConnectService is the FIT-Connect service (Leistung) id.
	MetaFITConnectService = "fitconnect.service"
	// MetaWrittenFormRequired is "true" when the channel states that the
	// matter needs the written form (e.g. the portal's service definition).
	MetaWrittenFormRequired = "writtenFormRequired"
	// MetaWrittenFormSatisfied is "true" or "false" when a channel vouches
	// for it before signature verification ran (De-Mail absenderbestätigt).
	MetaWrittenFormSatisfied = "writtenFormSatisfied"
)

// Limits on a rule file, so that a broken or hostile file cannot exhaust
// the gateway.
const (
	MaxFileBytes   = 8 << 20
	MaxRules       = 20000
	MaxPatternLen  = 2000
	MaxListEntries = 100000
	// maxMatchText caps the text regular expressions are run on.
	maxMatchText = 8 << 10
)

// File is the YAML form of a rule set.
type File struct {
	Rules []RuleSpec `yaml:"rules"`
}

// RuleSpec is one rule as written.
type RuleSpec struct {
	// ID names the rule in MessageRouted; unique, stable.
	ID          string    `yaml:"id"`
	Description string    `yaml:"description"`
	Match       MatchSpec `yaml:"match"`
	// Offices receive the message when the rule matches.
	Offices []string `yaml:"offices"`
	// Triage sends a matching message to triage instead of an office.
	Triage bool `yaml:"triage"`
	// Continue adds the rule's offices and goes on with the next rules.
	Continue bool `yaml:"continue"`
}

// MatchSpec holds a rule's conditions. All given conditions must hold; a
// list condition holds when any of its entries does. An empty match
// matches every message (a catch-all).
type MatchSpec struct {
	Channel stringList `yaml:"channel"`
	// Recipient matches any To, Cc or envelope recipient address
	// (case-insensitive).
	Recipient stringList `yaml:"recipient"`
	// RecipientDomain matches a recipient's domain or a subdomain of it.
	RecipientDomain stringList `yaml:"recipient_domain"`
	Sender          stringList `yaml:"sender"`
	SenderDomain    stringList `yaml:"sender_domain"`
	// Subject is a regular expression (RE2 syntax) searched in the subject.
	Subject string `yaml:"subject"`
	// FileNumber lists regular expressions for file numbers (Aktenzeichen),
	// searched in the subject and in the metadata's fileNumbers.
	FileNumber            stringList `yaml:"file_number"`
	XJustizRecipient      stringList `yaml:"xjustiz_recipient"`
	FITConnectDestination stringList `yaml:"fitconnect_destination"`
	FITConnectService     stringList `yaml:"fitconnect_service"`
	// Metadata matches channel metadata values exactly.
	Metadata map[string]string `yaml:"metadata"`
	// Verification facts (see Facts).
	Verified             *bool `yaml:"verified"`
	WrittenFormRequired  *bool `yaml:"written_form_required"`
	WrittenFormSatisfied *bool `yaml:"written_form_satisfied"`
	// Problems holds when the channel recorded problems with the receipt
	// (e.g. a De-Mail whose integrity protection is broken); route such
	// messages to triage with a rule before the others.
	Problems *bool `yaml:"problems"`
	// XJustiz matches the XJustiz fields of a message received on EGVP; on
	// other channels it never holds.
	XJustiz *XJustizSpec `yaml:"xjustiz"`
	// SafeID matches the EGVP sender's SAFE-ID (the Visitenkarte's claim; pair
	// it with origin: vhn to rely on it).
	SafeID stringList `yaml:"safe_id"`
	// Origin matches the EGVP proof of origin: vhn, sender-signed or none.
	Origin stringList `yaml:"origin"`
	// Portal matches the typed fields of a FIT-Connect submission received on
	// the portal channel; on other channels it never holds.
	Portal *PortalSpec `yaml:"portal"`
}

// XJustizSpec holds the conditions on an EGVP message's XJustiz fields; all given
// ones must hold.
type XJustizSpec struct {
	// RecipientCode lists court codes (Codeliste GDS.Gerichte) of the recipient.
	RecipientCode stringList `yaml:"recipient_code"`
	// Aktenzeichen lists globs (* any run, ? one character; case and runs of
	// blanks ignored) matched against the sender's and the recipient's
	// Aktenzeichen.
	Aktenzeichen stringList `yaml:"aktenzeichen"`
	// MessageType lists XJustiz message types (nachricht.eeb.zuruecklaufend, ...).
	MessageType stringList `yaml:"message_type"`
	// EEBRequested holds when the sender asks (or does not ask) for an eEB.
	EEBRequested *bool `yaml:"eeb_requested"`
}

// stringList accepts a single string or a list.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = stringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// Options control compilation.
type Options struct {
	// KnownOffice, when set, refuses rules naming offices it does not know,
	// so that a typo fails the load instead of routing into nowhere.
	KnownOffice func(id string) bool
}

// Set is a compiled rule set. It is immutable and safe for concurrent use.
type Set struct {
	// Version is the hex SHA-256 of the file the set was compiled from.
	Version string
	rules   []*rule
	idx     index
	// scan lists, in order, the rules no index covers.
	scan []int32
}

// Parse compiles a rule file.
func Parse(raw []byte, opts Options) (*Set, error) {
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("routing: rule file larger than %d bytes", MaxFileBytes)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("routing: decode rules: %w", err)
	}
	sum := sha256.Sum256(raw)
	s, err := Compile(f, opts)
	if err != nil {
		return nil, err
	}
	s.Version = hex.EncodeToString(sum[:])
	return s, nil
}

// Compile builds a set from parsed rules; Parse sets its Version.
func Compile(f File, opts Options) (*Set, error) {
	if len(f.Rules) > MaxRules {
		return nil, fmt.Errorf("routing: %d rules, at most %d", len(f.Rules), MaxRules)
	}
	s := &Set{idx: newIndex()}
	seen := map[string]bool{}
	for i, spec := range f.Rules {
		r, err := compileRule(i, spec, opts)
		if err != nil {
			return nil, fmt.Errorf("routing: rules[%d] (%s): %w", i, spec.ID, err)
		}
		if seen[r.id] {
			return nil, fmt.Errorf("routing: rules[%d]: id %q appears twice", i, r.id)
		}
		seen[r.id] = true
		s.rules = append(s.rules, r)
		if !s.idx.add(r) {
			s.scan = append(s.scan, int32(i))
		}
	}
	return s, nil
}

var ruleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// rule is a compiled rule.
type rule struct {
	pos         int32
	id          string
	description string
	channels    []gateway.Channel
	recipients  map[string]struct{}
	rcptDomains map[string]struct{}
	senders     map[string]struct{}
	fromDomains map[string]struct{}
	subject     *pattern
	fileNumbers []*pattern
	meta        []metaCond
	verified    tri
	wfRequired  tri
	wfSatisfied tri
	problems    tri
	egvp        *egvpCond
	portal      *portalCond
	offices     []string
	triage      bool
	cont        bool
}

// tri is an optional boolean condition.
type tri int8

const (
	triAny tri = iota
	isTrue
	isFalse
)

func triOf(b *bool) tri {
	switch {
	case b == nil:
		return triAny
	case *b:
		return isTrue
	}
	return isFalse
}

func (t tri) holds(v bool) bool { return t == triAny || (t == isTrue) == v }

type metaCond struct {
	key    string
	values map[string]struct{}
}

func compileRule(pos int, spec RuleSpec, opts Options) (*rule, error) {
	if !ruleIDPattern.MatchString(spec.ID) {
		return nil, fmt.Errorf("id: %q must match %s", spec.ID, ruleIDPattern)
	}
	r := &rule{pos: int32(pos), id: spec.ID, description: spec.Description, triage: spec.Triage, cont: spec.Continue}
	if spec.Triage == (len(spec.Offices) > 0) {
		return nil, errors.New("offices: a rule names one or more offices, or says triage: true")
	}
	if spec.Triage && spec.Continue {
		return nil, errors.New("continue: a triage rule ends the evaluation")
	}
	for _, o := range spec.Offices {
		if opts.KnownOffice != nil && !opts.KnownOffice(o) {
			return nil, fmt.Errorf("offices: %q is not a configured office", o)
		}
		if !slices.Contains(r.offices, o) {
			r.offices = append(r.offices, o)
		}
	}
	m := spec.Match
	for _, c := range m.Channel {
		r.channels = append(r.channels, gateway.Channel(strings.ToLower(strings.TrimSpace(c))))
	}
	var err error
	if r.recipients, err = addressSet("recipient", m.Recipient); err != nil {
		return nil, err
	}
	if r.senders, err = addressSet("sender", m.Sender); err != nil {
		return nil, err
	}
	if r.rcptDomains, err = domainSet("recipient_domain", m.RecipientDomain); err != nil {
		return nil, err
	}
	if r.fromDomains, err = domainSet("sender_domain", m.SenderDomain); err != nil {
		return nil, err
	}
	if m.Subject != "" {
		if r.subject, err = newPattern(m.Subject); err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
	}
	for i, p := range m.FileNumber {
		re, err := newPattern(p)
		if err != nil {
			return nil, fmt.Errorf("file_number[%d]: %w", i, err)
		}
		r.fileNumbers = append(r.fileNumbers, re)
	}
	for _, mc := range []struct {
		key  string
		vals []string
	}{{MetaXJustizRecipient, m.XJustizRecipient}, {MetaFITConnectDestination, m.FITConnectDestination}, {MetaFITConnectService, m.FITConnectService}} {
		if len(mc.vals) > 0 {
			r.meta = append(r.meta, metaCond{key: mc.key, values: set(mc.vals)})
		}
	}
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.meta = append(r.meta, metaCond{key: k, values: set([]string{m.Metadata[k]})})
	}
	r.verified, r.wfRequired, r.wfSatisfied = triOf(m.Verified), triOf(m.WrittenFormRequired), triOf(m.WrittenFormSatisfied)
	r.problems = triOf(m.Problems)
	if r.egvp, err = compileEGVP(m); err != nil {
		return nil, err
	}
	if r.portal, err = compilePortal(m.Portal); err != nil {
		return nil, err
	}
	return r, nil
}

func compilePattern(p string) (*regexp.Regexp, error) {
	if len(p) > MaxPatternLen {
		return nil, fmt.Errorf("pattern longer than %d bytes", MaxPatternLen)
	}
	return regexp.Compile(p)
}

func set(vals []string) map[string]struct{} {
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		m[v] = struct{}{}
	}
	return m
}

func addressSet(field string, vals []string) (map[string]struct{}, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > MaxListEntries {
		return nil, fmt.Errorf("%s: more than %d entries", field, MaxListEntries)
	}
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		a := normAddress(v)
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			return nil, fmt.Errorf("%s: %q is not an address", field, v)
		}
		m[a] = struct{}{}
	}
	return m, nil
}

func domainSet(field string, vals []string) (map[string]struct{}, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > MaxListEntries {
		return nil, fmt.Errorf("%s: more than %d entries", field, MaxListEntries)
	}
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		d := strings.TrimPrefix(normAddress(v), "@")
		d = strings.TrimPrefix(d, "*.")
		if d == "" || strings.ContainsAny(d, "@ \t\r\n") {
			return nil, fmt.Errorf("%s: %q is not a domain", field, v)
		}
		m[d] = struct{}{}
	}
	return m, nil
}

// normAddress lowercases an address and trims the angle brackets and blanks
// it may come with. Local parts are case-sensitive in theory and never in
// an authority's practice.
func normAddress(a string) string {
	a = strings.TrimSpace(a)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	return strings.ToLower(a)
}
