package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	// The office's time zone decides on which day and in which year a
	// message arrived; the binary must not depend on the host's zoneinfo.
	_ "time/tzdata"
)

// Config is the gateway's retention section; the main configuration embeds
// it (YAML key retention):
//
//	retention:
//	  enabled: true
//	  default: {period: 1y, from: end-of-year}   # messages never routed to an office
//	  interval: 1h
//	  batch: 100
//	  time_zone: Europe/Berlin
//
// The periods of the offices are in the offices configuration
// (offices[].retention, see offices.Office). Nothing is ever erased unless
// retention is enabled and the message's office (or, for a message never
// routed, the default) has a period: no retention configured is the safe
// default, since an erasure cannot be undone.
type Config struct {
	// Enabled runs the scheduler; without it no message is erased by
	// time, and manual erasure is still possible.
	Enabled bool `yaml:"enabled"`
	// Default is the rule of messages never routed to an office (those
	// that stayed in triage); nil keeps them for ever.
	Default *Rule `yaml:"default"`
	// Interval is how often the scheduler looks for due messages
	// (default 1h).
	Interval time.Duration `yaml:"interval"`
	// Batch caps the messages one round erases (default 100); a round
	// that erased a full batch is followed by another at once, so that a
	// backlog drains without waiting an Interval per batch.
	Batch int `yaml:"batch"`
	// TimeZone is where the calendar is read (default Europe/Berlin): the
	// day and the year of receipt are those of the authority.
	TimeZone string `yaml:"time_zone"`
}

// Defaults of Config.
const (
	DefaultInterval = time.Hour
	DefaultBatch    = 100
	DefaultTimeZone = "Europe/Berlin"
	maxBatch        = 10000
)

// WithDefaults fills the fields left empty.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}
	return c
}

// Validate names the first bad field relative to the section.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Default != nil {
		if err := c.Default.Validate(); err != nil {
			return fmt.Errorf("default.%w", err)
		}
	}
	if c.Interval < time.Second {
		return fmt.Errorf("interval: %s is shorter than a second", c.Interval)
	}
	if c.Batch < 1 || c.Batch > maxBatch {
		return fmt.Errorf("batch: %d is not between 1 and %d", c.Batch, maxBatch)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("time_zone: %w", err)
	}
	return nil
}

// Policy decides when a message may be erased: the rule of each office and
// the default for messages never routed. It is immutable.
type Policy struct {
	offices map[string]Rule
	def     *Rule
	loc     *time.Location
}

// NewPolicy builds the policy from the retention section and the offices'
// rules (offices.Config.RetentionRules); an office missing from offices
// keeps its messages for ever.
func NewPolicy(cfg Config, offices map[string]Rule) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	cfg = cfg.WithDefaults()
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("retention: time_zone: %w", err)
	}
	p := &Policy{offices: make(map[string]Rule, len(offices)), loc: loc}
	for id, r := range offices {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("retention: office %s: %w", id, err)
		}
		p.offices[id] = r
	}
	if cfg.Default != nil {
		d := *cfg.Default
		p.def = &d
	}
	return p, nil
}

// Decision is what the policy says about one message.
type Decision struct {
	// Office is the office whose rule decided, empty for the default.
	Office string
	Rule   Rule
	// RetainUntil is the moment the message may be erased.
	RetainUntil time.Time
}

// Text is the rule in words, as ContentErased.Rule records it.
func (d Decision) Text() string {
	if d.Office == "" {
		return "default (never routed to an office): " + d.Rule.String()
	}
	return "office " + d.Office + ": " + d.Rule.String()
}

// ErrNoRule means the message is kept for ever: one of its offices, or
// the default for a message never routed, has no retention period.
var ErrNoRule = errors.New("retention: no retention period applies")

// Decide returns the decision for a message routed to offices (none: never
// routed) and received at received. A message in several offices is kept
// as long as the longest of their periods.
func (p *Policy) Decide(offices []string, received time.Time) (Decision, error) {
	if len(offices) == 0 {
		if p.def == nil {
			return Decision{}, ErrNoRule
		}
		return Decision{Rule: *p.def, RetainUntil: p.def.RetainUntil(received, p.loc)}, nil
	}
	var best Decision
	for _, o := range slices.Sorted(slices.Values(offices)) {
		r, ok := p.offices[o]
		if !ok {
			return Decision{}, fmt.Errorf("%w: office %s has none", ErrNoRule, o)
		}
		if until := r.RetainUntil(received, p.loc); best.Office == "" || until.After(best.RetainUntil) {
			best = Decision{Office: o, Rule: r, RetainUntil: until}
		}
	}
	return best, nil
}

// Location is the time zone the policy reads the calendar in.
func (p *Policy) Location() *time.Location { return p.loc }

// joinOffices is the projection's key of a set of offices.
func joinOffices(offices []string) string {
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(offices))), ",")
}

func splitOffices(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
