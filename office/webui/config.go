package webui

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures the web UI. The YAML names are those of the poststelle
// configuration file (section web_ui).
type Config struct {
	// Listen is the TCP address (default 127.0.0.1:8090).
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile (PEM) serve HTTPS; without them the UI
	// serves plain HTTP, which is only sensible on loopback.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// CookieSecure marks the session cookie Secure (and names it with the
	// __Host- prefix). Default: on with TLS, off without, since a browser
	// does not send a Secure cookie over plain HTTP.
	CookieSecure *bool `yaml:"cookie_secure"`
	// SessionIdle ends a session after this long without a request (default
	// 30 min); SessionMax after this long at all (default 12 h).
	SessionIdle time.Duration `yaml:"session_idle"`
	SessionMax  time.Duration `yaml:"session_max"`
	// LoginFailures failed logins for one user or from one address within
	// LoginWindow lock further attempts until the window passes (default 5
	// in 15 min).
	LoginFailures int           `yaml:"login_failures"`
	LoginWindow   time.Duration `yaml:"login_window"`
	// MaxAnswerBytes caps an answer form with its attachments (default 20 MiB).
	MaxAnswerBytes int64 `yaml:"max_answer_bytes"`
	// IntegrityInterval is how often the UI re-verifies the whole log for
	// the overview's integrity status (default 1 h; the first run is at
	// start).
	IntegrityInterval time.Duration `yaml:"integrity_interval"`
	// OIDC adds login through the authority's identity provider; local
	// login stays. Nil offers none.
	OIDC *OIDCConfig `yaml:"oidc"`
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8090"
	}
	if c.CookieSecure == nil {
		secure := c.TLSCertFile != ""
		c.CookieSecure = &secure
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 30 * time.Minute
	}
	if c.SessionMax <= 0 {
		c.SessionMax = 12 * time.Hour
	}
	if c.LoginFailures <= 0 {
		c.LoginFailures = 5
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.MaxAnswerBytes <= 0 {
		c.MaxAnswerBytes = 20 << 20
	}
	if c.IntegrityInterval <= 0 {
		c.IntegrityInterval = time.Hour
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen: %q is not host:port", c.Listen)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file go together")
	}
	if c.SessionMax > 0 && c.SessionIdle > c.SessionMax {
		return errors.New("session_idle: longer than session_max")
	}
	if c.OIDC != nil {
		if err := c.OIDC.Validate(); err != nil {
			return fmt.Errorf("oidc.%w", err)
		}
	}
	return nil
}
