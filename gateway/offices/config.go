// Package offices knows the authority's organisational units (Fachbereiche,
// Sachgebiete) that messages are routed to: who belongs to them and how they
// prove it, what roles people have at the mailroom, and the office inboxes, a
// read model of the log that every office-facing adapter (HTTP API, IMAP)
// serves from.
//
// Roles: an office member reads and acts on (acknowledges, answers) the
// messages of the offices they belong to and nothing else; mailroom staff
// work the triage queue and assign messages to offices; admins read every
// office and the triage queue and may assign; auditors read everything and
// change nothing. Acknowledging and answering are an office's legal acts, so
// only its members may do them.
package offices

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/gateway/retention"
)

// Config is the YAML configuration of offices and staff.
//
//	offices:
//	  - id: bauamt
//	    name: Bauordnungsamt
//	    webhooks: [{url: "https://dms.example/hook", secret_file: /etc/poststelle/bauamt.hook}]
//	    retention: {period: 10y, from: end-of-year}
//	    members:
//	      - {user: mueller, password_hash: "$2a$10$..."}
//	      - {user: dms-bauamt, token_hash: "sha256:4f1c..."}
//	mailroom: [{user: poststelle1, password_hash: "$argon2id$v=19$m=65536,t=3,p=2$..."}]
//	admins:   [...]
//	auditors: [...]
type Config struct {
	Offices  []Office `yaml:"offices"`
	Mailroom []Member `yaml:"mailroom"`
	Admins   []Member `yaml:"admins"`
	Auditors []Member `yaml:"auditors"`
}

// Office is one organisational unit that receives messages.
type Office struct {
	// ID is the office's stable identifier, used in routing rules, events
	// and URLs: lowercase letters, digits, '.', '_' and '-', at most 64.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Webhooks receive a signed POST for every message routed to the office.
	Webhooks []Webhook `yaml:"webhooks"`
	Members  []Member  `yaml:"members"`
	// Retention is how long the office's messages are kept before their
	// contents are erased (gateway/retention); nil keeps them for ever.
	Retention *retention.Rule `yaml:"retention"`
}

// Webhook is a case system's (DMS, Fachverfahren) endpoint.
type Webhook struct {
	URL string `yaml:"url"`
	// SecretFile holds the HMAC-SHA256 key the deliveries are signed with;
	// the key itself never appears in the configuration.
	SecretFile string `yaml:"secret_file"`
	// Secret is the key when set programmatically (tests, the demo set-up).
	Secret []byte `yaml:"-"`
}

// Member is a person or a system with credentials. PasswordHash is a bcrypt
// ("$2a$…", "$2b$…") or argon2id ("$argon2id$v=19$m=…,t=…,p=…$salt$hash", PHC
// string format) hash; TokenHash is "sha256:" and the hex SHA-256 of a bearer
// token made by NewToken (tokens are 256-bit random, so a fast hash suffices
// and lets every request be checked in constant time). Either may be empty.
type Member struct {
	User         string `yaml:"user"`
	PasswordHash string `yaml:"password_hash"`
	TokenHash    string `yaml:"token_hash"`
}

// MaxConfigSize caps an offices configuration file.
const MaxConfigSize = 1 << 20

var (
	officeIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	userPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
)

// ValidOfficeID reports whether id may name an office.
func ValidOfficeID(id string) bool { return officeIDPattern.MatchString(id) }

// LoadConfig reads and validates an offices configuration file.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("offices: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("offices: read %s: %w", path, err)
	}
	if len(raw) > MaxConfigSize {
		return Config{}, fmt.Errorf("offices: %s is larger than %d bytes", path, MaxConfigSize)
	}
	c, err := ParseConfig(raw)
	if err != nil {
		return Config{}, fmt.Errorf("offices: %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates YAML; unknown fields are errors.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if len(raw) > MaxConfigSize {
		return c, fmt.Errorf("configuration larger than %d bytes", MaxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate names the first bad field as a YAML path.
func (c *Config) Validate() error {
	seenOffice := map[string]bool{}
	// A user has one role: a person who is both mailroom and office member
	// gets two accounts, so that every action names the capacity it was
	// taken in.
	roleOf := map[string]string{}
	claim := func(path, user, role string) error {
		if prev, ok := roleOf[user]; ok && prev != role {
			return fmt.Errorf("%s: user %q is already %s; one user has one role", path, user, prev)
		}
		roleOf[user] = role
		return nil
	}
	for i, o := range c.Offices {
		p := fmt.Sprintf("offices[%d]", i)
		if !ValidOfficeID(o.ID) {
			return fmt.Errorf("%s.id: %q must match %s", p, o.ID, officeIDPattern)
		}
		if seenOffice[o.ID] {
			return fmt.Errorf("%s.id: %q appears twice", p, o.ID)
		}
		seenOffice[o.ID] = true
		for j, w := range o.Webhooks {
			if err := w.validate(); err != nil {
				return fmt.Errorf("%s.webhooks[%d]: %w", p, j, err)
			}
		}
		if o.Retention != nil {
			if err := o.Retention.Validate(); err != nil {
				return fmt.Errorf("%s.retention.%w", p, err)
			}
		}
		seenUser := map[string]bool{}
		for j, m := range o.Members {
			mp := fmt.Sprintf("%s.members[%d]", p, j)
			if seenUser[m.User] {
				return fmt.Errorf("%s.user: %q appears twice in office %s", mp, m.User, o.ID)
			}
			seenUser[m.User] = true
			if err := m.validate(); err != nil {
				return fmt.Errorf("%s: %w", mp, err)
			}
			if err := claim(mp, m.User, string(RoleOffice)); err != nil {
				return err
			}
		}
	}
	for _, l := range []struct {
		name string
		role Role
		ms   []Member
	}{{"mailroom", RoleMailroom, c.Mailroom}, {"admins", RoleAdmin, c.Admins}, {"auditors", RoleAuditor, c.Auditors}} {
		seen := map[string]bool{}
		for j, m := range l.ms {
			mp := fmt.Sprintf("%s[%d]", l.name, j)
			if err := m.validate(); err != nil {
				return fmt.Errorf("%s: %w", mp, err)
			}
			if seen[m.User] {
				return fmt.Errorf("%s.user: %q appears twice", mp, m.User)
			}
			seen[m.User] = true
			if err := claim(mp, m.User, string(l.role)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m Member) validate() error {
	if !userPattern.MatchString(m.User) {
		return fmt.Errorf("user: %q must match %s", m.User, userPattern)
	}
	if m.PasswordHash == "" && m.TokenHash == "" {
		return errors.New("password_hash or token_hash is required")
	}
	if m.PasswordHash != "" {
		if _, err := parsePasswordHash(m.PasswordHash); err != nil {
			return fmt.Errorf("password_hash: %w", err)
		}
	}
	if m.TokenHash != "" {
		if _, err := parseTokenHash(m.TokenHash); err != nil {
			return fmt.Errorf("token_hash: %w", err)
		}
	}
	return nil
}

func (w Webhook) validate() error {
	u, err := url.Parse(w.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("url: %q is not an absolute http(s) URL", w.URL)
	}
	if u.User != nil {
		return errors.New("url: credentials in the URL are refused; the delivery is signed instead")
	}
	if w.SecretFile == "" && len(w.Secret) == 0 {
		return errors.New("secret_file: required (the HMAC key the deliveries are signed with)")
	}
	return nil
}

// LoadSecret returns the webhook's signing key.
func (w Webhook) LoadSecret() ([]byte, error) {
	if len(w.Secret) > 0 {
		return w.Secret, nil
	}
	raw, err := os.ReadFile(w.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("offices: webhook secret: %w", err)
	}
	s := bytes.TrimSpace(raw)
	if len(s) < 16 {
		return nil, fmt.Errorf("offices: webhook secret %s: shorter than 16 bytes", w.SecretFile)
	}
	return s, nil
}

// Office returns the configured office with the id.
func (c *Config) Office(id string) (Office, bool) {
	for _, o := range c.Offices {
		if o.ID == id {
			return o, true
		}
	}
	return Office{}, false
}

// OfficeIDs lists the configured offices' ids in configuration order.
func (c *Config) OfficeIDs() []string {
	ids := make([]string, len(c.Offices))
	for i, o := range c.Offices {
		ids[i] = o.ID
	}
	return ids
}

// RetentionRules returns the retention rule of every office that has one,
// for retention.NewPolicy.
func (c *Config) RetentionRules() map[string]retention.Rule {
	rules := map[string]retention.Rule{}
	for _, o := range c.Offices {
		if o.Retention != nil {
			rules[o.ID] = *o.Retention
		}
	}
	return rules
}
