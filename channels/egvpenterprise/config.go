// Package egvpenterprise is the gateway's second transport for EGVP: instead of
// speaking OSCI to the intermediary itself (channels/oscichannel), it takes the
// messages an EGVP Enterprise installation (Governikus' receiver and sender) has
// received, through Enterprise's SOAP web service (package egvpsoap), and hands answers
// to it for sending. The EGVP layer is the same (package egvp, egvp.ReadExport on the
// export Enterprise returns), and so are the receipts: channel "egvp", the same egvp
// section.
//
// Inbound polls getUncommittedMessageIDs, fetches each message with receiveMessage,
// stores the messageZIP as the raw message, records the receipt, and only then calls
// commitReceivedMessage; a crash in between makes the next poll fetch it again, and
// the message key (the mailbox and Enterprise's message id) makes that a duplicate,
// not a second message. Outbound sends answers and eEB answers with
// sendAsynchroniousMessage.
package egvpenterprise

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/egvp"
)

// Config is the egvp_enterprise: section.
type Config struct {
	// Endpoint is the URL of Enterprise's web service
	// (http://host:8080/EGVP-WS/EGVP-WebService).
	Endpoint string `yaml:"endpoint"`
	// UserID is the Enterprise account (the mailbox's user id) messages are fetched
	// for and sent from.
	UserID string `yaml:"user_id"`
	// Username, when set, authenticates with HTTP Basic; the password is read from
	// PasswordFile (such as a systemd credential; trailing line breaks are not part of
	// it) or from the environment variable PasswordEnv.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// CAFile (PEM) is the only trust anchor of an https endpoint, when set.
	CAFile string `yaml:"ca_file"`
	// PollInterval, when set, makes the gateway fetch the mailbox at this interval.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Timeout caps one web service call (default 5m).
	Timeout time.Duration `yaml:"timeout"`
	// MaxMessageBytes caps one message's ZIP as received (default 100 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// Outbound enables answers through sendAsynchroniousMessage.
	Outbound bool `yaml:"outbound"`
	// SignAnswers asks Enterprise to sign the answers with the mailbox's key
	// (signMessage; default true).
	SignAnswers *bool `yaml:"sign_answers"`
	// VHNCAFiles (PEM or DER) are the VHN issuing CAs (BNotK's beBPo VHN CA, Justiz
	// VHN CA, ...) a transport certificate must be issued by for a VHN; without them
	// Enterprise's check is relied on for the issuer too, and the origin says so.
	VHNCAFiles []string `yaml:"vhn_ca_files"`
}

// maxCAFileBytes caps a VHN CA file.
const maxCAFileBytes = 1 << 20

// egvpConfig is the EGVP layer's configuration: the VHN anchors read.
func (c *Config) egvpConfig() (egvp.Config, error) {
	var out egvp.Config
	for _, path := range c.VHNCAFiles {
		f, err := os.Open(path)
		if err != nil {
			return out, fmt.Errorf("egvp_enterprise: vhn_ca_files: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxCAFileBytes+1))
		f.Close()
		if err == nil && len(data) > maxCAFileBytes {
			err = fmt.Errorf("more than %d bytes", maxCAFileBytes)
		}
		if err != nil {
			return out, fmt.Errorf("egvp_enterprise: vhn_ca_files: %s: %w", path, err)
		}
		certs, err := cert.ParseAll(data)
		if err != nil || len(certs) == 0 {
			return out, fmt.Errorf("egvp_enterprise: vhn_ca_files: %s: no certificate (%v)", path, err)
		}
		out.VHNAnchors = append(out.VHNAnchors, certs...)
	}
	return out, nil
}

const (
	defaultMaxMessageBytes = 100 << 20
	defaultTimeout         = 5 * time.Minute
)

// Validate checks the section without reading the files.
func (c *Config) Validate() error {
	if c.PollInterval == 0 && !c.Outbound {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Errorf("endpoint: %q is not an http(s) URL", c.Endpoint)
	case strings.TrimSpace(c.UserID) == "":
		return errors.New("user_id: required")
	case c.PasswordFile != "" && c.PasswordEnv != "":
		return errors.New("password_file and password_env exclude each other")
	case c.Username == "" && (c.PasswordFile != "" || c.PasswordEnv != ""):
		return errors.New("username: required with a password")
	case c.Username != "" && c.PasswordFile == "" && c.PasswordEnv == "":
		return errors.New("username: needs password_file or password_env")
	case c.CAFile != "" && u.Scheme != "https":
		return errors.New("ca_file: set for an endpoint that is not https")
	case c.PollInterval < 0:
		return errors.New("poll_interval: negative")
	case c.Timeout < 0:
		return errors.New("timeout: negative")
	case c.MaxMessageBytes < 0:
		return errors.New("max_message_bytes: negative")
	}
	return nil
}

func (c *Config) maxBytes() int64 {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return defaultMaxMessageBytes
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

func (c *Config) sign() bool { return c.SignAnswers == nil || *c.SignAnswers }

// password reads the configured password; "" without a username.
func (c *Config) password() (string, error) {
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("egvp_enterprise: password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("egvp_enterprise: password_env: %s is not set", c.PasswordEnv)
		}
		return v, nil
	}
	return "", nil
}
