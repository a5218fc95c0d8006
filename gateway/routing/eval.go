package routing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/poststelle/poststelle/gateway"
)

// Facts are what verification established about a message. The
// SignaturesVerified event fills them (FactsFromVerification); before
// verification ran, the channel's metadata does (FactsFromMetadata).
type Facts struct {
	// Verified is true once signature verification ran.
	Verified bool
	// WrittenFormRequired is true when the matter needs the written form
	// (Schriftform), as the channel or its service definition states.
	WrittenFormRequired bool
	// WrittenFormSatisfied is true when a valid QES or qualified seal, or a
	// channel that replaces the written form, satisfies it.
	WrittenFormSatisfied bool
	// Problems is true when the channel recorded problems with the receipt
	// (a broken De-Mail integrity signature, an unreadable header, ...).
	Problems bool
}

// FactsFromMetadata reads the facts a channel vouches for.
func FactsFromMetadata(md map[string]string) Facts {
	return Facts{
		WrittenFormRequired:  md[MetaWrittenFormRequired] == "true",
		WrittenFormSatisfied: md[MetaWrittenFormSatisfied] == "true",
	}
}

// FactsFromVerification combines the verification result with the
// channel's metadata (which alone says whether the written form is needed).
func FactsFromVerification(sv *gateway.SignaturesVerified, md map[string]string) Facts {
	f := FactsFromMetadata(md)
	f.Verified = true
	f.WrittenFormSatisfied = f.WrittenFormSatisfied || sv.WrittenFormSatisfied
	return f
}

// Input is a message as the rules see it, normalised once per message.
type Input struct {
	Channel gateway.Channel
	// Sender is the lowercased sender address.
	Sender string
	// Recipients are the lowercased To, Cc and envelope recipients.
	Recipients []string
	Subject    string
	Metadata   map[string]string
	Facts      Facts
	// EGVP is the message's EGVP fields, nil unless it came on the EGVP channel.
	EGVP *gateway.EGVPFields
	// Portal is the message's FIT-Connect fields, nil unless it came on the
	// portal channel.
	Portal *gateway.PortalFields

	senderDomains []string
	rcptDomains   []string
	fileText      string
	// folded forms for the pattern prefilters
	subjectFolded  string
	fileTextFolded string
}

// NewInput prepares a received message for evaluation. What the receipt
// itself establishes joins f: its problems, the De-Mail provider's written
// form (De-Mail-Gesetz § 5 Abs. 5), which only the De-Mail channel can set,
// and an EGVP message's secure route with VHN (§ 130a Abs. 3, 4 ZPO), which
// only the EGVP channel can set.
func NewInput(m *gateway.MessageReceived, f Facts) *Input {
	f.Problems = f.Problems || len(m.Problems) > 0
	f.WrittenFormSatisfied = f.WrittenFormSatisfied || (m.DeMail != nil && m.DeMail.WrittenForm && m.Channel == gateway.ChannelDeMail) ||
		(m.Channel == gateway.ChannelEGVP && m.EGVP.SecureRoute() != "")
	in := &Input{Channel: gateway.Channel(strings.ToLower(string(m.Channel))), Sender: normAddress(m.From.Address),
		Subject: clip(m.Subject), Metadata: m.Metadata, Facts: f}
	if in.Channel == gateway.ChannelEGVP {
		in.EGVP = m.EGVP
	}
	if in.Channel == gateway.ChannelPortal {
		in.Portal = m.Portal
	}
	add := func(a string) {
		a = normAddress(a)
		if a != "" && !slices.Contains(in.Recipients, a) {
			in.Recipients = append(in.Recipients, a)
		}
	}
	for _, a := range m.To {
		add(a.Address)
	}
	for _, a := range m.Cc {
		add(a.Address)
	}
	for a := range strings.SplitSeq(m.Transport.Envelope["rcptTo"], ",") {
		add(a)
	}
	in.senderDomains = domainSuffixes(nil, in.Sender)
	for _, r := range in.Recipients {
		in.rcptDomains = domainSuffixes(in.rcptDomains, r)
	}
	in.fileText = in.Subject
	if fn := m.Metadata[MetaFileNumbers]; fn != "" {
		in.fileText = clip(in.Subject + "\n" + fn)
	}
	in.subjectFolded = fold(in.Subject)
	in.fileTextFolded = in.subjectFolded
	if len(in.fileText) != len(in.Subject) {
		in.fileTextFolded = fold(in.fileText)
	}
	return in
}

func clip(s string) string {
	if len(s) > maxMatchText {
		return s[:maxMatchText]
	}
	return s
}

// domainSuffixes appends the domain of addr and its parent domains
// ("a.b.example" → a.b.example, b.example, example), deduplicated.
func domainSuffixes(out []string, addr string) []string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return out
	}
	for d := addr[at+1:]; d != ""; {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
		dot := strings.IndexByte(d, '.')
		if dot < 0 {
			break
		}
		d = d[dot+1:]
	}
	return out
}

// Decision is the outcome of evaluating the rules.
type Decision struct {
	// Offices is empty when the message goes to triage.
	Offices []string
	// Rules are the ids of the rules that decided, in order.
	Rules []string
	// Reason explains the decision in a sentence.
	Reason  string
	Version string
}

// Routed reports whether the decision names offices.
func (d Decision) Routed() bool { return len(d.Offices) > 0 }

// Payload turns the decision into the event to append.
func (d Decision) Payload() gateway.Payload {
	if d.Routed() {
		return &gateway.MessageRouted{Offices: d.Offices, Rule: strings.Join(d.Rules, ","), RulesVersion: d.Version,
			DecidedBy: "rules", Reason: d.Reason}
	}
	return &gateway.RoutingFailed{Reason: d.Reason, RulesVersion: d.Version}
}

// index maps exact conditions to the rules gated by them. Each indexed rule
// sits under every value of exactly one of its exact conditions; a message
// lacking all those values cannot match the rule.
type index struct {
	recipients  map[string][]int32
	senders     map[string][]int32
	rcptDomains map[string][]int32
	fromDomains map[string][]int32
	meta        map[metaKey][]int32
}

type metaKey struct{ key, value string }

func newIndex() index {
	return index{recipients: map[string][]int32{}, senders: map[string][]int32{}, rcptDomains: map[string][]int32{},
		fromDomains: map[string][]int32{}, meta: map[metaKey][]int32{}}
}

// add indexes r under its most selective exact condition; false means r
// has none and must be scanned for every message.
func (x index) add(r *rule) bool {
	put := func(m map[string][]int32, vals map[string]struct{}) {
		for v := range vals {
			m[v] = append(m[v], r.pos)
		}
	}
	switch {
	case len(r.senders) > 0:
		put(x.senders, r.senders)
	case len(r.recipients) > 0:
		put(x.recipients, r.recipients)
	case len(r.meta) > 0:
		for v := range r.meta[0].values {
			k := metaKey{r.meta[0].key, v}
			x.meta[k] = append(x.meta[k], r.pos)
		}
	case len(r.fromDomains) > 0:
		put(x.fromDomains, r.fromDomains)
	case len(r.rcptDomains) > 0:
		put(x.rcptDomains, r.rcptDomains)
	default:
		return false
	}
	return true
}

// candidates returns the positions of indexed rules the message may match,
// sorted and without duplicates.
func (x index) candidates(in *Input, buf []int32) []int32 {
	buf = append(buf, x.senders[in.Sender]...)
	for _, r := range in.Recipients {
		buf = append(buf, x.recipients[r]...)
	}
	for _, d := range in.senderDomains {
		buf = append(buf, x.fromDomains[d]...)
	}
	for _, d := range in.rcptDomains {
		buf = append(buf, x.rcptDomains[d]...)
	}
	if len(x.meta) > 0 {
		for k, v := range in.Metadata {
			buf = append(buf, x.meta[metaKey{k, v}]...)
		}
	}
	slices.Sort(buf)
	return slices.Compact(buf)
}

// Decide evaluates the rules for a message.
func (s *Set) Decide(in *Input) Decision {
	var buf [64]int32
	cands := s.idx.candidates(in, buf[:0])
	d := Decision{Version: s.Version}
	i, j := 0, 0
	for i < len(cands) || j < len(s.scan) {
		var pos int32
		switch {
		case j >= len(s.scan) || (i < len(cands) && cands[i] < s.scan[j]):
			pos, i = cands[i], i+1
		default:
			pos, j = s.scan[j], j+1
		}
		r := s.rules[pos]
		if f, _ := r.check(in); f != noFailure {
			continue
		}
		if done := d.apply(r); done {
			return d
		}
	}
	return d.finish()
}

// apply adds a matching rule to the decision and reports whether the
// evaluation ends.
func (d *Decision) apply(r *rule) bool {
	d.Rules = append(d.Rules, r.id)
	if r.triage {
		d.Offices = nil
		d.Reason = fmt.Sprintf("rule %s sends the message to triage", r.id)
		return true
	}
	for _, o := range r.offices {
		if !slices.Contains(d.Offices, o) {
			d.Offices = append(d.Offices, o)
		}
	}
	if r.cont {
		return false
	}
	d.Reason = "matched " + strings.Join(d.Rules, ", ")
	if r.description != "" {
		d.Reason += ": " + r.description
	}
	return true
}

func (d Decision) finish() Decision {
	switch {
	case len(d.Offices) > 0:
		d.Reason = "matched " + strings.Join(d.Rules, ", ") + " (continue rules only)"
	default:
		d.Reason = "no rule matched"
	}
	return d
}

// failure names the first condition of a rule a message fails.
type failure int8

const (
	noFailure failure = iota
	failChannel
	failSender
	failRecipient
	failSenderDomain
	failRecipientDomain
	failMetadata
	failVerified
	failWFRequired
	failWFSatisfied
	failProblems
	failSubject
	failFileNumber
	failEGVP
	failPortal
)

// check returns the first condition in fails, cheapest first, or noFailure;
// with it the index of the failing metadata condition.
func (r *rule) check(in *Input) (failure, int) {
	if len(r.channels) > 0 && !slices.Contains(r.channels, in.Channel) {
		return failChannel, 0
	}
	if r.senders != nil {
		if _, ok := r.senders[in.Sender]; !ok {
			return failSender, 0
		}
	}
	if r.recipients != nil && !anyIn(r.recipients, in.Recipients) {
		return failRecipient, 0
	}
	if r.fromDomains != nil && !anyIn(r.fromDomains, in.senderDomains) {
		return failSenderDomain, 0
	}
	if r.rcptDomains != nil && !anyIn(r.rcptDomains, in.rcptDomains) {
		return failRecipientDomain, 0
	}
	for i, m := range r.meta {
		v, ok := in.Metadata[m.key]
		if _, listed := m.values[v]; !ok || !listed {
			return failMetadata, i
		}
	}
	switch {
	case !r.verified.holds(in.Facts.Verified):
		return failVerified, 0
	case !r.wfRequired.holds(in.Facts.WrittenFormRequired):
		return failWFRequired, 0
	case !r.wfSatisfied.holds(in.Facts.WrittenFormSatisfied):
		return failWFSatisfied, 0
	case !r.problems.holds(in.Facts.Problems):
		return failProblems, 0
	case r.subject != nil && !r.subject.match(in.Subject, in.subjectFolded):
		return failSubject, 0
	case len(r.fileNumbers) > 0 && !r.matchFileNumber(in):
		return failFileNumber, 0
	case r.egvp != nil && r.egvp.mismatch(in.EGVP) != "":
		return failEGVP, 0
	case r.portal != nil && r.portal.mismatch(in.Portal) != "":
		return failPortal, 0
	}
	return noFailure, 0
}

// mismatch returns why r does not match, or "" when it does.
func (r *rule) mismatch(in *Input) string {
	f, i := r.check(in)
	switch f {
	case noFailure:
		return ""
	case failChannel:
		return fmt.Sprintf("channel %s is not one of %v", in.Channel, r.channels)
	case failSender:
		return fmt.Sprintf("sender %q is not listed", in.Sender)
	case failRecipient:
		return fmt.Sprintf("no recipient of %v is listed", in.Recipients)
	case failSenderDomain:
		return fmt.Sprintf("sender %q is not in a listed domain", in.Sender)
	case failRecipientDomain:
		return fmt.Sprintf("no recipient of %v is in a listed domain", in.Recipients)
	case failMetadata:
		k := r.meta[i].key
		if v, ok := in.Metadata[k]; ok {
			return fmt.Sprintf("metadata %s=%q is not listed", k, v)
		}
		return fmt.Sprintf("metadata %s is missing", k)
	case failVerified:
		return fmt.Sprintf("verified is %t", in.Facts.Verified)
	case failWFRequired:
		return fmt.Sprintf("written form required is %t", in.Facts.WrittenFormRequired)
	case failWFSatisfied:
		return fmt.Sprintf("written form satisfied is %t", in.Facts.WrittenFormSatisfied)
	case failProblems:
		return fmt.Sprintf("problems is %t", in.Facts.Problems)
	case failSubject:
		return fmt.Sprintf("subject does not match %s", r.subject)
	case failEGVP:
		return r.egvp.mismatch(in.EGVP)
	case failPortal:
		return r.portal.mismatch(in.Portal)
	}
	return "no file number pattern matches the subject or the stated file numbers"
}

func (r *rule) matchFileNumber(in *Input) bool {
	for _, p := range r.fileNumbers {
		if p.match(in.fileText, in.fileTextFolded) {
			return true
		}
	}
	return false
}

func anyIn(set map[string]struct{}, vals []string) bool {
	for _, v := range vals {
		if _, ok := set[v]; ok {
			return true
		}
	}
	return false
}

// Step is one rule's part in a decision.
type Step struct {
	Rule        string
	Description string
	Matched     bool
	// Why says which condition failed, or what the match contributed.
	Why string
}

// Explain evaluates every rule in order, without the index, and says for
// each why it matched or not, up to the rule that decided. Tests check that
// it reaches the same decision as Decide.
func (s *Set) Explain(in *Input) ([]Step, Decision) {
	d := Decision{Version: s.Version}
	var steps []Step
	for _, r := range s.rules {
		why := r.mismatch(in)
		st := Step{Rule: r.id, Description: r.description, Matched: why == "", Why: why}
		if why != "" {
			steps = append(steps, st)
			continue
		}
		switch {
		case r.triage:
			st.Why = "matched: to triage"
		case r.cont:
			st.Why = fmt.Sprintf("matched: adds %v and continues", r.offices)
		default:
			st.Why = fmt.Sprintf("matched: %v", r.offices)
		}
		steps = append(steps, st)
		if d.apply(r) {
			return steps, d
		}
	}
	return steps, d.finish()
}

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }
