// Package oscichannel is the gateway's OSCI-Transport 1.2 channel, the transport EGVP
// rides on: as active recipient it polls the authority's mailbox at an intermediary,
// as passive recipient it accepts deliveries the intermediary forwards, and as sender
// it delivers answers to an addressee's mailbox. The protocol is package osci; this
// package maps it onto the channel contract of gateway/channel.go (raw bytes stored
// first, message key, Record, acknowledgement only once recorded).
package oscichannel

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/pkcs12"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/egvp"
)

// Config is the osci: section.
type Config struct {
	// Intermediary is the intermediary the authority's mailbox is at.
	Intermediary IntermediaryConfig `yaml:"intermediary"`
	// Cipher is the authority's cipher key: deliveries and the intermediary's answers
	// are encrypted for its certificate, which names the mailbox.
	Cipher KeyConfig `yaml:"cipher"`
	// Signature is the authority's signature key for its requests and answers.
	Signature KeyConfig `yaml:"signature"`
	// VHN, when set, is the mailbox's VHN certificate with its key (issued by the
	// BNotK once the role is confirmed in SAFE): the answers' storeDelivery is signed
	// with it, so that it is their transport signature, the proof of origin a court
	// checks; their content stays signed with Signature.
	VHN *KeyConfig `yaml:"vhn"`
	// SignatureMethod is "rsa-sha256" (default) or "rsa-pss" (RSASSA-PSS with SHA-256).
	SignatureMethod string `yaml:"signature_method"`
	// PollInterval, when set, makes the gateway an active recipient that fetches
	// the mailbox at this interval.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Passive, when set, makes the gateway a passive recipient listening for the
	// intermediary's acceptDelivery and processDelivery.
	Passive *PassiveConfig `yaml:"passive"`
	// Outbound enables answers by storeDelivery to the addressee's mailbox.
	Outbound bool `yaml:"outbound"`
	// MaxMessageBytes caps one message as received (default 256 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// VHNAnchors are certificate files (PEM, several per file, or DER) of the VHN
	// issuing CAs (BNotK's beBPo VHN CA, Justiz VHN CA, ...): a VHN certificate of an
	// incoming message proves its origin only when one of them issued it. Without
	// any, the intermediary's inspection of the certificate is relied on.
	VHNAnchors []string `yaml:"vhn_anchors"`
	// BusinessCard is the authority's own Visitenkarte, sent with every answer to
	// an EGVP message and every eEB; without it such answers fail (to triage).
	BusinessCard *BusinessCardConfig `yaml:"business_card"`
	// Directory lists the cipher certificates of EGVP mailboxes by SAFE-ID, for
	// answering a message that brought no originator cipher certificate.
	Directory []DirectoryEntry `yaml:"directory"`
}

// BusinessCardConfig is the Visitenkarte (visitenkarte.xml) of the authority's
// mailbox, as registered in the SAFE directory.
type BusinessCardConfig struct {
	Organisation     string `yaml:"organisation"`
	OrganisationUnit string `yaml:"organisation_unit"`
	Name             string `yaml:"name"`
	Street           string `yaml:"street"`
	HouseNumber      string `yaml:"house_number"`
	PostCode         string `yaml:"post_code"`
	City             string `yaml:"city"`
	State            string `yaml:"state"`
	Country          string `yaml:"country"`
	Email            string `yaml:"email"`
	Phone            string `yaml:"phone"`
	Fax              string `yaml:"fax"`
	// SafeID is the mailbox's SAFE-ID (Nutzer_ID), required; Role its Rollen_ID
	// (egvp_bebpo for a beBPo).
	SafeID string `yaml:"safe_id"`
	Role   string `yaml:"role"`
}

// DirectoryEntry is one mailbox's cipher certificate: a PEM or DER file, or the PEM
// text itself.
type DirectoryEntry struct {
	SafeID         string `yaml:"safe_id"`
	CipherCertFile string `yaml:"cipher_cert_file"`
	CipherCert     string `yaml:"cipher_cert"`
}

// IntermediaryConfig names the intermediary and its certificates.
type IntermediaryConfig struct {
	// URL is its OSCI endpoint.
	URL string `yaml:"url"`
	// CipherCertFile (PEM or DER) is what requests are transport-encrypted for.
	CipherCertFile string `yaml:"cipher_cert_file"`
	// SignatureCertFile (PEM or DER) is the only certificate its answers and its
	// acceptDelivery requests are accepted signed by.
	SignatureCertFile string `yaml:"signature_cert_file"`
}

// PassiveConfig is the passive recipient's listener.
type PassiveConfig struct {
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile (PEM) serve HTTPS; without them the listener speaks
	// HTTP, for a TLS-terminating proxy in front.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
}

// KeyConfig is a key pair in a PKCS#12 file, its password (PIN) in a file of its own,
// such as a systemd credential (trailing line breaks are not part of it), or a key
// pair on a PKCS#11 token.
type KeyConfig struct {
	PKCS12File   string `yaml:"pkcs12_file"`
	PasswordFile string `yaml:"password_file"`
	// PKCS11, instead of PKCS12File, is the key on a token (hardware security module,
	// smart card); the key never leaves it.
	PKCS11 *pkcs11.Config `yaml:"pkcs11"`
}

func (k *KeyConfig) validate(name string) error {
	switch {
	case k.PKCS11 != nil && k.PKCS12File != "":
		return fmt.Errorf("%s: pkcs12_file and pkcs11 exclude each other", name)
	case k.PKCS11 != nil:
		if err := k.PKCS11.Validate(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case k.PKCS12File == "":
		return fmt.Errorf("%s.pkcs12_file: required (or %s.pkcs11)", name, name)
	}
	return nil
}

const defaultMaxMessageBytes = 256 << 20

// Validate checks the section without reading the files.
func (c *Config) Validate() error {
	if c.PollInterval == 0 && c.Passive == nil && !c.Outbound {
		return nil
	}
	u, err := url.Parse(c.Intermediary.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("intermediary.url: %q is not an http(s) URL", c.Intermediary.URL)
	}
	switch {
	case c.Intermediary.CipherCertFile == "":
		return errors.New("intermediary.cipher_cert_file: required")
	case c.Intermediary.SignatureCertFile == "":
		return errors.New("intermediary.signature_cert_file: required")
	case c.SignatureMethod != "" && c.SignatureMethod != "rsa-sha256" && c.SignatureMethod != "rsa-pss":
		return fmt.Errorf("signature_method: %q is neither rsa-sha256 nor rsa-pss", c.SignatureMethod)
	case c.PollInterval < 0:
		return errors.New("poll_interval: negative")
	case c.MaxMessageBytes < 0:
		return errors.New("max_message_bytes: negative")
	}
	if err := c.Cipher.validate("cipher"); err != nil {
		return err
	}
	if err := c.Signature.validate("signature"); err != nil {
		return err
	}
	for i, f := range c.VHNAnchors {
		if strings.TrimSpace(f) == "" {
			return fmt.Errorf("vhn_anchors[%d]: empty file name", i)
		}
	}
	if c.VHN != nil {
		if err := c.VHN.validate("vhn"); err != nil {
			return err
		}
	}
	if err := c.validateEGVP(); err != nil {
		return err
	}
	if c.Passive != nil {
		if _, _, err := net.SplitHostPort(c.Passive.Listen); err != nil {
			return fmt.Errorf("passive.listen: %q is not host:port", c.Passive.Listen)
		}
		if (c.Passive.TLSCertFile == "") != (c.Passive.TLSKeyFile == "") {
			return errors.New("passive: tls_cert_file and tls_key_file go together")
		}
	}
	return nil
}

func (c *Config) validateEGVP() error {
	if b := c.BusinessCard; b != nil && strings.TrimSpace(b.SafeID) == "" {
		return errors.New("business_card.safe_id: required")
	}
	seen := map[string]bool{}
	for i, e := range c.Directory {
		switch {
		case strings.TrimSpace(e.SafeID) == "":
			return fmt.Errorf("directory[%d].safe_id: required", i)
		case seen[e.SafeID]:
			return fmt.Errorf("directory[%d]: %s is listed twice", i, e.SafeID)
		case (e.CipherCertFile == "") == (e.CipherCert == ""):
			return fmt.Errorf("directory[%d]: exactly one of cipher_cert_file and cipher_cert", i)
		}
		seen[e.SafeID] = true
	}
	return nil
}

func (b *BusinessCardConfig) card() egvp.BusinessCard {
	return egvp.BusinessCard{Organisation: b.Organisation, OrganisationUnit: b.OrganisationUnit, Name: b.Name,
		Street: b.Street, HouseNumber: b.HouseNumber, PostCode: b.PostCode, City: b.City, State: b.State,
		Country: b.Country, Email: b.Email, Phone: b.Phone, Fax: b.Fax, SafeID: strings.TrimSpace(b.SafeID), Role: b.Role}
}

// loadDirectory reads the directory's certificates, by SAFE-ID.
func (c *Config) loadDirectory() (map[string]*cert.Certificate, error) {
	out := make(map[string]*cert.Certificate, len(c.Directory))
	for _, e := range c.Directory {
		var x *x509.Certificate
		var err error
		if e.CipherCertFile != "" {
			x, err = LoadCertificate(e.CipherCertFile)
		} else {
			x, err = parseCertificate([]byte(e.CipherCert))
		}
		if err != nil {
			return nil, fmt.Errorf("osci: directory entry %s: %w", e.SafeID, err)
		}
		if out[e.SafeID], err = cert.Parse(x.Raw); err != nil {
			return nil, fmt.Errorf("osci: directory entry %s: %w", e.SafeID, err)
		}
	}
	return out, nil
}

func (c *Config) maxBytes() int64 {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return defaultMaxMessageBytes
}

func (c *Config) method() string {
	if c.SignatureMethod == "rsa-pss" {
		return xmldsig.AlgRSAPSSSHA256
	}
	return ""
}

// KeyPair is a private key with its certificate.
type KeyPair struct {
	Key  crypto.Signer
	Cert *cert.Certificate
	X509 *x509.Certificate
}

// maxKeyFileBytes caps the key and certificate files, read whole.
const maxKeyFileBytes = 1 << 20

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	n, err := b.ReadFrom(limited(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxKeyFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxKeyFileBytes)
	}
	return b.Bytes(), nil
}

// LoadKey opens the key pair k names: from its PKCS#12 file or on its PKCS#11 token.
func LoadKey(ctx context.Context, k KeyConfig, log *slog.Logger) (*KeyPair, error) {
	if k.PKCS11 == nil {
		return LoadPKCS12(k)
	}
	key, err := pkcs11.Open(ctx, *k.PKCS11, log)
	if err != nil {
		return nil, fmt.Errorf("osci: %w", err)
	}
	c, err := cert.Parse(key.Certificate.Raw)
	if err != nil {
		_ = key.Close()
		return nil, fmt.Errorf("osci: the token key's certificate: %w", err)
	}
	return &KeyPair{Key: key, Cert: c, X509: key.Certificate}, nil
}

// LoadPKCS12 reads a key pair from a PKCS#12 file, as certificate authorities and the
// OSCI library hand them out (several bags, legacy PBE; hence ToPEM).
func LoadPKCS12(k KeyConfig) (*KeyPair, error) {
	data, err := readCapped(k.PKCS12File)
	if err != nil {
		return nil, fmt.Errorf("osci: reading key file: %w", err)
	}
	password := ""
	if k.PasswordFile != "" {
		b, err := readCapped(k.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("osci: reading the key's password: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	blocks, err := pkcs12.ToPEM(data, password)
	if err != nil {
		return nil, fmt.Errorf("osci: %s: %w", k.PKCS12File, err)
	}
	kp := &KeyPair{}
	var certs []*x509.Certificate
	for _, b := range blocks {
		switch b.Type {
		case "PRIVATE KEY":
			if kp.Key, err = parsePrivateKey(b); err != nil {
				return nil, fmt.Errorf("osci: %s: %w", k.PKCS12File, err)
			}
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("osci: %s: certificate: %w", k.PKCS12File, err)
			}
			certs = append(certs, c)
		}
	}
	if kp.Key == nil {
		return nil, fmt.Errorf("osci: %s: no private key", k.PKCS12File)
	}
	mine, _ := x509.MarshalPKIXPublicKey(kp.Key.Public())
	for _, c := range certs {
		if pub, _ := x509.MarshalPKIXPublicKey(c.PublicKey); bytes.Equal(pub, mine) {
			kp.X509 = c
		}
	}
	if kp.X509 == nil {
		return nil, fmt.Errorf("osci: %s: no certificate for the key", k.PKCS12File)
	}
	if kp.Cert, err = cert.Parse(kp.X509.Raw); err != nil {
		return nil, fmt.Errorf("osci: %s: %w", k.PKCS12File, err)
	}
	return kp, nil
}

func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T", k)
	}
	return s, nil
}

// LoadAnchors reads the certificate files of vhn_anchors: every certificate of a PEM
// file, or one DER certificate.
func LoadAnchors(files []string) ([]*cert.Certificate, error) {
	var out []*cert.Certificate
	for _, f := range files {
		data, err := readCapped(f)
		if err != nil {
			return nil, fmt.Errorf("osci: reading VHN CA certificate: %w", err)
		}
		var certs []*cert.Certificate
		if bytes.Contains(data, []byte("-----BEGIN")) {
			certs, err = cert.ParseAll(data)
		} else {
			var c *cert.Certificate
			if c, err = cert.Parse(data); err == nil {
				certs = []*cert.Certificate{c}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("osci: VHN CA certificate %s: %w", f, err)
		}
		if len(certs) == 0 {
			return nil, fmt.Errorf("osci: VHN CA certificate %s: no certificate in it", f)
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, fmt.Errorf("osci: VHN CA certificate %s: %q is not a CA certificate", f, c.Subject.CommonName)
			}
		}
		out = append(out, certs...)
	}
	return out, nil
}

// LoadCertificate reads a PEM or DER certificate file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, fmt.Errorf("osci: reading certificate: %w", err)
	}
	c, err := parseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("osci: %s: %w", path, err)
	}
	return c, nil
}

// parseCertificate reads a PEM or DER certificate.
func parseCertificate(data []byte) (*x509.Certificate, error) {
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	return x509.ParseCertificate(data)
}
