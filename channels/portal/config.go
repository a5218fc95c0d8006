// Package portal is the gateway's portal channel: the destination
// (Zustellpunkt) side of FITKO's FIT-Connect Submission API v1. It lists the
// destination's submissions, fetches each one (metadata, data, attachments,
// all JWE-encrypted end to end), stores what it fetched in the blob store
// before anything else, decrypts and checks it, records one MessageReceived
// per submission and only then confirms it to the platform with a signed
// accept-submission or reject-submission Security Event Token. Answers to a
// portal message go back through FIT-Connect's reply mechanism, encrypted to
// the key the submission named (Outbound).
//
// The message key is "portal:" + destination id + ":" + submission id, so a
// second poll, a callback racing a poll or a second node never makes a second
// message; a crash between the record and the SET makes the next poll find
// the submission again, recognise it (Duplicate) and post the same decision,
// unless the case's event log already has it.
package portal

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is the portal: section of the gateway's configuration.
type Config struct {
	// SubmissionAPI is the Submission API's base URL including /v1, as the
	// FIT-Connect SDKs' SUBMISSION_API_URL (https://.../submission-api/v1).
	SubmissionAPI string `yaml:"submission_api"`
	// TokenURL is the OAuth2 token endpoint (client credentials grant).
	TokenURL string `yaml:"token_url"`
	// ClientID is the destination's API client; its secret is read from
	// ClientSecretFile (trailing line breaks dropped) and never logged.
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// DestinationID is the destination (Zustellpunkt) whose submissions are
	// fetched.
	DestinationID string `yaml:"destination_id"`
	// DecryptionKeyFile is the destination's private JWK (RSA,
	// alg RSA-OAEP-256); DecryptionPKCS11 takes the key from a token instead.
	DecryptionKeyFile string     `yaml:"decryption_key_file"`
	DecryptionPKCS11  *PKCS11Key `yaml:"decryption_pkcs11"`
	// SigningKeyFile is the private JWK (RSA, alg PS512, with kid) the
	// accept-submission and reject-submission events are signed with.
	SigningKeyFile string `yaml:"signing_key_file"`
	// PollInterval is how often the submissions are listed (default 30s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// CallbackListen, when set, is the host:port of the callback receiver
	// (path /fitconnect/callback); CallbackSecretFile holds the callback
	// secret the platform signs callbacks with.
	CallbackListen     string `yaml:"callback_listen"`
	CallbackSecretFile string `yaml:"callback_secret_file"`
	// MaxSubmissionSize caps one submission as fetched (its JSON and its
	// encrypted attachments together): "100MiB", "64KiB" or a byte count.
	MaxSubmissionSize ByteSize `yaml:"max_submission_size"`
	// Timeout caps one call to the platform (default 2m).
	Timeout time.Duration `yaml:"timeout"`
	// ReplyHorizon is how long after sending an answer the case's event
	// log is watched for the sender side's accept-reply or reject-reply
	// (default 14 days, the time the platform keeps a submission
	// unconfirmed); an answer without either by then goes to triage.
	ReplyHorizon time.Duration `yaml:"reply_horizon"`
	// ReplySenderKeysFile, when set, is a JWK Set (RFC 7517 §5) of the
	// senders' signature keys, which verify the accept-reply and
	// reject-reply SETs they write; without it those are recorded with the
	// verdict INDETERMINATE.
	ReplySenderKeysFile string `yaml:"reply_sender_keys_file"`
}

// PKCS11Key names a private key on a PKCS#11 token (SoftHSM2, an HSM).
type PKCS11Key struct {
	Module     string `yaml:"module"`
	TokenLabel string `yaml:"token_label"`
	PINFile    string `yaml:"pin_file"`
	KeyLabel   string `yaml:"key_label"`
	// CertFile, when set, is the key's certificate (PEM or DER); otherwise
	// the token's certificate with the key's label is used.
	CertFile string `yaml:"cert_file"`
}

// CallbackPath is where the callback receiver listens.
const CallbackPath = "/fitconnect/callback"

const (
	defaultPollInterval      = 30 * time.Second
	defaultMaxSubmissionSize = 100 << 20
	defaultTimeout           = 2 * time.Minute
	defaultReplyHorizon      = 14 * 24 * time.Hour
	// maxSecretFile caps a secret or key file.
	maxSecretFile = 64 << 10
)

// Enabled reports whether the section configures the channel at all.
func (c *Config) Enabled() bool { return c.SubmissionAPI != "" || c.DestinationID != "" }

// Validate checks the section without reading the files.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	for _, u := range []struct{ key, val string }{{"submission_api", c.SubmissionAPI}, {"token_url", c.TokenURL}} {
		p, err := url.Parse(u.val)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", u.key, u.val))
		}
	}
	switch {
	case strings.TrimSpace(c.ClientID) == "":
		errs = append(errs, errors.New("client_id: required"))
	case c.ClientSecretFile == "":
		errs = append(errs, errors.New("client_secret_file: required"))
	}
	if !isUUIDish(c.DestinationID) {
		errs = append(errs, fmt.Errorf("destination_id: %q is not a UUID", c.DestinationID))
	}
	switch {
	case c.DecryptionKeyFile == "" && c.DecryptionPKCS11 == nil:
		errs = append(errs, errors.New("decryption_key_file or decryption_pkcs11: required"))
	case c.DecryptionKeyFile != "" && c.DecryptionPKCS11 != nil:
		errs = append(errs, errors.New("decryption_key_file and decryption_pkcs11 exclude each other"))
	case c.DecryptionPKCS11 != nil && (c.DecryptionPKCS11.Module == "" || c.DecryptionPKCS11.KeyLabel == "" || c.DecryptionPKCS11.PINFile == ""):
		errs = append(errs, errors.New("decryption_pkcs11: module, key_label and pin_file are required"))
	}
	if c.SigningKeyFile == "" {
		errs = append(errs, errors.New("signing_key_file: required"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("poll_interval: negative"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout: negative"))
	}
	if c.ReplyHorizon < 0 {
		errs = append(errs, errors.New("reply_horizon: negative"))
	}
	if c.MaxSubmissionSize < 0 {
		errs = append(errs, errors.New("max_submission_size: negative"))
	}
	if c.CallbackListen != "" {
		if _, _, err := net.SplitHostPort(c.CallbackListen); err != nil {
			errs = append(errs, fmt.Errorf("callback_listen: %q is not host:port", c.CallbackListen))
		}
		if c.CallbackSecretFile == "" {
			errs = append(errs, errors.New("callback_secret_file: required with callback_listen"))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) pollInterval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return defaultPollInterval
}

func (c *Config) replyHorizon() time.Duration {
	if c.ReplyHorizon > 0 {
		return c.ReplyHorizon
	}
	return defaultReplyHorizon
}

func (c *Config) maxSize() int64 {
	if c.MaxSubmissionSize > 0 {
		return int64(c.MaxSubmissionSize)
	}
	return defaultMaxSubmissionSize
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

// isUUIDish accepts the 8-4-4-4-12 hex form FIT-Connect ids have.
func isUUIDish(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// readSecret reads a secret file: at most maxSecretFile bytes, trailing line
// breaks dropped. The content is never logged; errors name only the path.
func readSecret(key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("portal: %s: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("portal: %s: reading %s: %w", key, path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("portal: %s: %s is larger than %d bytes", key, path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("portal: %s: %s is empty", key, path)
	}
	return []byte(s), nil
}

// ByteSize is a size in the configuration: a byte count or a number with
// KiB, MiB or GiB.
type ByteSize int64

// UnmarshalText reads "100MiB", "64KiB", "1GiB" or "1048576".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.m
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want a byte count or a number with KiB, MiB or GiB", text)
	}
	*b = ByteSize(n * mult)
	return nil
}
