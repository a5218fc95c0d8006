// Package postbox is the direct postbox API: a small authenticated HTTP API
// (docs/openapi/postbox-api.yaml) through which a portal that does not speak
// FIT-Connect hands in a citizen's message with its attachments and picks
// up the authority's answers to it.
//
// It is a channel of its own ("postbox", gateway.ChannelPostbox) rather than
// gateway.ChannelAPI: messages handed in as "api" have no reply channel by
// definition, while every postbox message is answered on the postbox, into
// the answer queue of the portal that submitted it. The channel follows the
// contract of gateway/channel.go: the request body is stored in the blob
// store while it streams in, under a size cap; the message key is the
// portal's Idempotency-Key, so a retry never makes a second message; the
// portal gets 201 (or 200 for a retry) only after Record returned.
//
// Answers travel through the log like every other side effect: the reply
// policy hands an office's ReplyRequested to this package's Outbound, whose
// acceptance is the ReplySent event; the Answers projection folds both into
// the client's answer queue in state.db; a pick-up is recorded as
// DeliveryEvidenceRecorded (kind retrieved), which takes the answer off the
// queue.
package postbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Config is the postbox section of the gateway's configuration:
//
//	postbox:
//	  listen: 127.0.0.1:8470
//	  max_message_bytes: 104857600
//	  clients:
//	    - {id: buergerportal, name: "Bürgerportal Kreis", token_hash: "sha256:4f1c…"}
type Config struct {
	// Listen is the API's host:port.
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile, when both are set, serve HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// MaxMessageBytes caps one submission's request body, attachments
	// included (default DefaultMaxMessageBytes).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxAttachments caps the attachments of one submission (default
	// DefaultMaxAttachments).
	MaxAttachments int `yaml:"max_attachments"`
	// Clients are the portals allowed to use the API, each with its own
	// credential; a client sees only its own submissions and answers.
	Clients []Client `yaml:"clients"`
}

// Client is one portal. TokenHash is "sha256:" and the hex SHA-256 of the
// client's bearer token, the same form as an office member's token_hash
// (gateway/offices): the token itself
// never appears in the configuration, and since tokens are 256-bit random a
// fast hash suffices and every request is checked in constant time.
type Client struct {
	// ID names the client in events and logs: lowercase letters, digits,
	// '.', '_' and '-', at most 64.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// TokenHash is the bearer token's hash.
	TokenHash string `yaml:"token_hash"`
	// RatePerMinute caps the client's requests (default
	// DefaultRatePerMinute); -1 lifts the cap.
	RatePerMinute int `yaml:"rate_per_minute"`
}

// Defaults of the section.
const (
	DefaultMaxMessageBytes = 100 << 20
	DefaultMaxAttachments  = 64
	DefaultRatePerMinute   = 600
)

var clientID = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)

// Validate checks the section; its errors name the field relative to it.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file: set both or neither")
	}
	if c.MaxMessageBytes < 0 {
		return errors.New("max_message_bytes: must not be negative")
	}
	if c.MaxAttachments < 0 {
		return errors.New("max_attachments: must not be negative")
	}
	if len(c.Clients) == 0 {
		return errors.New("clients: at least one client is required")
	}
	seen := map[string]bool{}
	hashes := map[[32]byte]bool{}
	for i, cl := range c.Clients {
		if !clientID.MatchString(cl.ID) {
			return fmt.Errorf("clients[%d].id: %q: want 1 to 64 of a-z 0-9 . _ -", i, cl.ID)
		}
		if seen[cl.ID] {
			return fmt.Errorf("clients[%d].id: %q is listed twice", i, cl.ID)
		}
		seen[cl.ID] = true
		h, err := parseTokenHash(cl.TokenHash)
		if err != nil {
			return fmt.Errorf("clients[%d].token_hash: %w", i, err)
		}
		if hashes[h] {
			return fmt.Errorf("clients[%d].token_hash: the same token as another client", i)
		}
		hashes[h] = true
		if cl.RatePerMinute < -1 {
			return fmt.Errorf("clients[%d].rate_per_minute: want -1 (no cap), 0 (default) or more", i)
		}
	}
	return nil
}

func (c *Config) maxBytes() int64 {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}

func (c *Config) maxAttachments() int {
	if c.MaxAttachments > 0 {
		return c.MaxAttachments
	}
	return DefaultMaxAttachments
}

func (cl *Client) rate() (perRequest time.Duration, unlimited bool) {
	switch {
	case cl.RatePerMinute == -1:
		return 0, true
	case cl.RatePerMinute == 0:
		return time.Minute / DefaultRatePerMinute, false
	}
	return time.Minute / time.Duration(cl.RatePerMinute), false
}

func parseTokenHash(s string) ([32]byte, error) {
	var out [32]byte
	h, ok := strings.CutPrefix(s, "sha256:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != len(out) {
		return out, errors.New(`want "sha256:" and 64 hex digits`)
	}
	copy(out[:], b)
	return out, nil
}

// HashToken is the token_hash of a bearer token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}
