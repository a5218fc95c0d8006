package demail

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/verify"
)

// Config is the demail: section: the providers whose integrity protection
// is trusted and the provider gateway's mailboxes to take in.
type Config struct {
	// Providers are the De-Mail providers (DMDA) trusted, as their
	// contract names them; never looked up.
	Providers []ProviderConfig `yaml:"providers"`
	// Mailboxes are the provider gateway's IMAP mailboxes, with the client
	// certificate the gateway requires (cert_file, key_file).
	Mailboxes []imap.MailboxConfig `yaml:"mailboxes"`
	// SMTP, when set, receives the provider gateway's deliveries by SMTP,
	// admitting only the gateway's client certificate.
	SMTP *SMTPConfig `yaml:"smtp"`
	// MaxMessageBytes caps one message (default 64 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// Outbound, when set, submits answers to the provider gateway.
	Outbound *OutboundConfig `yaml:"outbound"`
	// Qualification names the trusted lists that decide whether a
	// provider's signature is a qualified seal or signature. Without it no
	// message satisfies the written form.
	Qualification *QualificationConfig `yaml:"qualification"`
}

// QualificationConfig is the demail.qualification section.
type QualificationConfig struct {
	// TrustedLists are ETSI TS 119 612 trusted lists (*.xml files or
	// directories of them), typically the German list of the
	// Bundesnetzagentur that lists the providers' qualified CAs.
	TrustedLists []string `yaml:"trusted_lists"`
	// TLSigners are PEM or DER files with the certificates allowed to sign
	// those lists (the EU list of lists names them).
	TLSigners []string `yaml:"tl_signers"`
}

// ProviderConfig is one trusted provider.
type ProviderConfig struct {
	// Name is the provider's FQDN as in X-de-mail-originator-provider.
	Name string `yaml:"name"`
	// CAFile holds the PEM CA certificates the provider's signature
	// certificates are issued by.
	CAFile string `yaml:"ca_file"`
	// IntermediatesFile optionally holds PEM intermediate certificates.
	IntermediatesFile string `yaml:"intermediates_file"`
	// PinnedSHA256 optionally restricts the signature certificate to these
	// hex SHA-256 fingerprints of its DER.
	PinnedSHA256 []string `yaml:"pinned_sha256"`
	// CRLFiles are the provider CA's current CRLs (PEM or DER), as the
	// operator fetches them; read when serve starts. Without one the
	// revocation status of the provider's certificate is unknown, and a
	// qualified seal with unknown status does not satisfy the written form.
	CRLFiles []string `yaml:"crl_files"`
}

// maxCAFile caps a CA or intermediates file.
const maxCAFile = 1 << 20

// Validate checks the section without reading files; errors name the
// field ("providers[0].ca_file: ...").
func (c *Config) Validate() error {
	if (len(c.Mailboxes) > 0 || c.SMTP != nil) && len(c.Providers) == 0 {
		return errors.New("providers: at least one provider is needed to take in De-Mail")
	}
	if c.SMTP != nil {
		if err := c.SMTP.validate(); err != nil {
			return err
		}
	}
	if c.MaxMessageBytes < 0 {
		return errors.New("max_message_bytes: must not be negative")
	}
	if c.Outbound != nil {
		if err := c.Outbound.validate(); err != nil {
			return err
		}
	}
	for i, p := range c.Providers {
		at := fmt.Sprintf("providers[%d].", i)
		switch {
		case p.Name == "":
			return errors.New(at + "name: required")
		case !validFQDN(strings.ToLower(strings.TrimSuffix(p.Name, "."))):
			return fmt.Errorf("%sname: %q is not a fully qualified domain name", at, p.Name)
		case p.CAFile == "":
			return errors.New(at + "ca_file: required")
		}
		for j, fp := range p.PinnedSHA256 {
			if _, err := fingerprint(fp); err != nil {
				return fmt.Errorf("%spinned_sha256[%d]: %w", at, j, err)
			}
		}
	}
	if q := c.Qualification; q != nil {
		switch {
		case len(q.TrustedLists) == 0:
			return errors.New("qualification.trusted_lists: required")
		case len(q.TLSigners) == 0:
			return errors.New("qualification.tl_signers: required: a list is trusted only with a configured signer")
		}
	}
	for i, m := range c.Mailboxes {
		at := fmt.Sprintf("mailboxes[%d].", i)
		switch {
		case m.Host == "":
			return errors.New(at + "host: required")
		case (m.CertFile == "") != (m.KeyFile == ""):
			return errors.New(at + "cert_file, key_file: set both")
		case m.CertFile == "" && !strings.EqualFold(m.TLS, imap.TLSNone):
			// A provider gateway authenticates us by our certificate.
			return errors.New(at + "cert_file: required: the provider gateway needs a client certificate")
		}
	}
	return nil
}

// fingerprint reads a hex SHA-256 fingerprint, with or without colons.
func fingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != len(fp) {
		return fp, fmt.Errorf("%q is not a hex SHA-256 fingerprint", s)
	}
	copy(fp[:], b)
	return fp, nil
}

// LoadTrust reads the configured providers' certificates into a Trust.
func (c *Config) LoadTrust() (*Trust, error) {
	var ps []Provider
	for i, pc := range c.Providers {
		p := Provider{Name: pc.Name}
		var err error
		if p.Anchors, err = readCerts(pc.CAFile); err != nil {
			return nil, fmt.Errorf("providers[%d].ca_file: %w", i, err)
		}
		if pc.IntermediatesFile != "" {
			if p.Intermediates, err = readCerts(pc.IntermediatesFile); err != nil {
				return nil, fmt.Errorf("providers[%d].intermediates_file: %w", i, err)
			}
		}
		for j, s := range pc.PinnedSHA256 {
			fp, err := fingerprint(s)
			if err != nil {
				return nil, fmt.Errorf("providers[%d].pinned_sha256[%d]: %w", i, j, err)
			}
			p.Pinned = append(p.Pinned, fp)
		}
		for j, f := range pc.CRLFiles {
			crl, err := readCRL(f)
			if err != nil {
				return nil, fmt.Errorf("providers[%d].crl_files[%d]: %w", i, j, err)
			}
			p.CRLs = append(p.CRLs, crl)
		}
		ps = append(ps, p)
	}
	tr, err := NewTrust(ps)
	if err != nil || c.Qualification == nil {
		return tr, err
	}
	// Trusted lists are files read once at start; nothing is fetched.
	store, err := verify.LoadTrust(context.Background(), verify.TrustConfig{
		Paths: c.Qualification.TrustedLists, TLSigners: c.Qualification.TLSigners})
	if err != nil {
		return nil, fmt.Errorf("qualification: %w", err)
	}
	return tr.WithQualification(store), nil
}

func readCRL(path string) (*trust.CRL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, trust.MaxCRLSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	crl, err := trust.ParseCRL(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return crl, nil
}

func readCerts(path string) ([]*cert.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCAFile)
	}
	cs, err := cert.ParseAll(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return cs, nil
}
