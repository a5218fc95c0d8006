package demail

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/gateway"
)

// SMTPConfig is the demail.smtp: section, for a provider gateway that
// delivers by SMTP rather than into a mailbox. The receiver speaks
// STARTTLS with our server certificate and admits only a client that
// presents a certificate chaining to a configured provider's CA, so that
// plain e-mail never reaches the De-Mail channel this way.
type SMTPConfig struct {
	// Listen is the TCP address to listen on (host:port).
	Listen string `yaml:"listen"`
	// Hostname is announced in the greeting (default: the host name).
	Hostname string `yaml:"hostname"`
	// CertFile and KeyFile (PEM) are our server certificate and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AcceptAddresses optionally restricts the recipients to these
	// De-Mail addresses; empty accepts every recipient the provider
	// delivers, since only the provider can connect.
	AcceptAddresses []string `yaml:"accept_addresses"`
}

// validate checks the section; errors name the field.
func (s *SMTPConfig) validate() error {
	switch {
	case s.Listen == "":
		return errors.New("smtp.listen: required")
	case s.CertFile == "":
		return errors.New("smtp.cert_file: required: the provider gateway delivers over TLS")
	case s.KeyFile == "":
		return errors.New("smtp.key_file: required")
	}
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		return fmt.Errorf("smtp.listen: %q is not host:port", s.Listen)
	}
	return nil
}

// clientCAs is the pool a provider gateway's TLS client certificate must
// chain to: the configured providers' CAs. Intermediates are not roots
// here; the gateway sends its chain in the handshake.
func (t *Trust) clientCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, pt := range t.providers {
		for _, c := range pt.p.Anchors {
			if x, err := x509.ParseCertificate(c.Raw); err == nil {
				pool.AddCert(x)
			}
		}
	}
	return pool
}

// newSMTP builds the SMTP receiver for the provider gateway, recording on
// the demail channel with the same receipt mapping as the mailbox intake.
func newSMTP(s SMTPConfig, max int64, tr *Trust, a *adapter, deps gateway.IntakeDeps) (*smtp.Server, error) {
	cfg := smtp.Config{Listen: s.Listen, Hostname: s.Hostname, MaxMessageBytes: max,
		TLSCertFile: s.CertFile, TLSKeyFile: s.KeyFile, AcceptAll: len(s.AcceptAddresses) == 0,
		AcceptAddresses: s.AcceptAddresses, Channel: gateway.ChannelDeMail, Adapt: a.adapt,
		ClientCAs: tr.clientCAs()}
	return smtp.New(cfg, deps)
}
