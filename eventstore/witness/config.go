package witness

import (
	"errors"
	"fmt"
	"net/mail"
	"time"
)

// Config is the `witnesses:` section of the gateway configuration.
type Config struct {
	// Interval between publications (default 1h); serve also publishes at
	// start and on a clean shutdown.
	Interval time.Duration `yaml:"interval"`
	// TSA is the RFC 3161 time-stamping authority's URL for heads; empty:
	// the TSAs of verification.tsas, and no timestamp when there are none.
	TSA string `yaml:"tsa"`
	// Dir lists directories, each on another volume than data_dir.
	Dir []string `yaml:"dir"`
	// Email sends heads to the auditors through smtp_out's relay.
	Email *EmailConfig `yaml:"email"`
	// HTTP lists endpoints heads are posted to.
	HTTP []HTTPConfig `yaml:"http"`
}

// EmailConfig names the auditors.
type EmailConfig struct {
	To []string `yaml:"to"`
	// From defaults to smtp_out.from.
	From string `yaml:"from"`
}

// HTTPConfig is one HTTP witness.
type HTTPConfig struct {
	URL string `yaml:"url"`
	// CAFile adds PEM roots for an endpoint with a private CA.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds one request (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// Validate names the first bad field as a YAML path below witnesses.
func (c *Config) Validate() error {
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < time.Second) {
		return fmt.Errorf("witnesses.interval: %s is not a duration of at least 1s", c.Interval)
	}
	if len(c.Dir) == 0 && c.Email == nil && len(c.HTTP) == 0 {
		return errors.New("witnesses: name at least one of dir, email, http")
	}
	for i, d := range c.Dir {
		if d == "" {
			return fmt.Errorf("witnesses.dir[%d]: empty path", i)
		}
	}
	if c.Email != nil {
		if len(c.Email.To) == 0 {
			return errors.New("witnesses.email.to: at least one auditor address is required")
		}
		for i, a := range c.Email.To {
			if m, err := mail.ParseAddress(a); err != nil || m.Name != "" {
				return fmt.Errorf("witnesses.email.to[%d]: %q is not a bare e-mail address", i, a)
			}
		}
		if c.Email.From != "" {
			if _, err := mail.ParseAddress(c.Email.From); err != nil {
				return fmt.Errorf("witnesses.email.from: %q: %v", c.Email.From, err)
			}
		}
	}
	for i, h := range c.HTTP {
		if _, err := NewHTTP(h.URL, "", h.Timeout); err != nil {
			return fmt.Errorf("witnesses.http[%d].url: %v", i, err)
		}
	}
	return nil
}
