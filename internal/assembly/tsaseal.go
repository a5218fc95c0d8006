package assembly

import (
	"context"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/crypto/selfissued"
	"github.com/poststelle/poststelle/crypto/tsa"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/office/httpserve"
)

// DemoTSAPolicy is the policy OID when tsa_server names none: under
// 1.3.6.1.4.1.32473, the enterprise number RFC 5612 reserves for examples,
// so that it claims no real policy. A production TSA sets its own.
const DemoTSAPolicy = "1.3.6.1.4.1.32473.3161.1"

// LocalTSAName is the name under which the gateway's own TSA server
// stamps receipts when verification.tsas lists no other TSA.
const LocalTSAName = "local"

// TSAServerConfig is the gateway's own RFC 3161 time-stamping authority
// (tsa_server:). Without cert_file or pkcs11 it issues itself a TSA
// certificate under the demo CA (<data_dir>/demo-ca/ca.pem, the trust
// anchor to hand to openssl or DSS); such timestamps prove the gateway's
// clock to whoever trusts that CA, not more.
type TSAServerConfig struct {
	// Listen is host:port (default 127.0.0.1:3180).
	Listen string `yaml:"listen"`
	// Dir holds the serial number file and the self-issued certificate and
	// key (default <data_dir>/tsa).
	Dir string `yaml:"dir"`
	// Key is the TSA certificate (critical timeStamping EKU) and its key;
	// empty: self-issued in Dir.
	Key KeyConfig `yaml:",inline"`
	// Policy is the TSA policy OID put in every token (default DemoTSAPolicy).
	Policy string `yaml:"policy"`
	// Accuracy is stated in the tokens when set (to milliseconds).
	Accuracy time.Duration `yaml:"accuracy"`

	// selfIssued: Key was defaulted, so the certificate is made under the
	// demo CA when absent.
	selfIssued bool
}

// KeyConfig is a signing key with its certificate chain: PEM files, or a
// key on a PKCS#11 token.
type KeyConfig struct {
	// CertFile is PEM: the certificate first, then its chain (the chain
	// may also come with a PKCS#11 key whose certificate is on the token).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PKCS#8 PEM private key.
	KeyFile string `yaml:"key_file"`
	// PKCS11 names a key on a token instead of KeyFile.
	PKCS11 *pkcs11.Config `yaml:"pkcs11"`
}

// EvidenceConfig configures evidence bundles (evidence:).
type EvidenceConfig struct {
	// Seal is the gateway's seal certificate and key that seal evidence
	// bundles (ETSI EN 319 412-3: nonRepudiation). In the demo set-up,
	// when absent, a seal certificate under the demo CA is made in
	// <data_dir>/seal.
	Seal *KeyConfig `yaml:"seal"`
	// Records are the RFC 4998 evidence records serve builds over the
	// originals and log heads and renews (gateway/preservation).
	Records preservation.Config `yaml:"records"`
}

// SigningKey is an opened key with its certificates (DER, own first).
type SigningKey struct {
	Signer       crypto.Signer
	Certificates [][]byte
	// CRLs (DER) are current revocation data for Certificates, to embed
	// in what is signed (cms.SignOptions.CRLs): the demo CA's fresh CRL
	// for self-issued keys, none otherwise.
	CRLs  [][]byte
	close func() error
}

// Close releases a token key; a file key needs nothing.
func (k *SigningKey) Close() error {
	if k.close == nil {
		return nil
	}
	return k.close()
}

func (k KeyConfig) empty() bool { return k.CertFile == "" && k.KeyFile == "" && k.PKCS11 == nil }

func (k KeyConfig) validate(path string) error {
	switch {
	case k.PKCS11 != nil && k.KeyFile != "":
		return fmt.Errorf("%s: key_file and pkcs11 exclude each other", path)
	case k.PKCS11 != nil:
		if err := k.PKCS11.Validate(); err != nil {
			return fmt.Errorf("%s.%w", path, err)
		}
	case k.CertFile == "" || k.KeyFile == "":
		return fmt.Errorf("%s: cert_file and key_file (or pkcs11) are required together", path)
	}
	return nil
}

// Open opens the key and reads the certificates.
func (k KeyConfig) Open(ctx context.Context, logger *slog.Logger) (*SigningKey, error) {
	var chain [][]byte
	if k.CertFile != "" {
		certs, err := selfissued.ReadCertificates(k.CertFile)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			chain = append(chain, c.Raw)
		}
	}
	if k.PKCS11 != nil {
		key, err := pkcs11.Open(ctx, *k.PKCS11, logger)
		if err != nil {
			return nil, err
		}
		own := key.Certificate.Raw
		if len(chain) == 0 || !slices.Equal(chain[0], own) {
			chain = append([][]byte{own}, chain...)
		}
		return &SigningKey{Signer: key, Certificates: chain, close: key.Close}, nil
	}
	signer, err := keys.LoadSigner(k.KeyFile)
	if err != nil {
		return nil, err
	}
	return &SigningKey{Signer: signer, Certificates: chain}, nil
}

// DemoCA returns the demo CA in <data_dir>/demo-ca, creating it on first use.
func (c *Config) DemoCA() (*selfissued.CA, error) {
	dir := filepath.Join(c.DataDir, "demo-ca")
	return selfissued.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), "Poststelle Demo CA")
}

// demoCRL issues a fresh CRL of the demo CA and writes it beside the
// anchor (<data_dir>/demo-ca/ca.crl) for auditors.
func (c *Config) demoCRL() ([][]byte, error) {
	ca, err := c.DemoCA()
	if err != nil {
		return nil, err
	}
	crl, err := ca.CRL(filepath.Join(filepath.Dir(ca.CertFile), "ca.crl"))
	if err != nil {
		return nil, err
	}
	return [][]byte{crl}, nil
}

// OpenSeal opens the evidence seal (evidence.seal), issuing the demo seal
// certificate first in the demo set-up. It returns nil, nil when no seal
// is configured.
func (c *Config) OpenSeal(ctx context.Context, logger *slog.Logger) (*SigningKey, error) {
	if c.Evidence.Seal == nil {
		return nil, nil
	}
	if c.demo {
		ca, err := c.DemoCA()
		if err != nil {
			return nil, fmt.Errorf("evidence.seal: %w", err)
		}
		issued, err := ca.LoadOrIssue(c.Evidence.Seal.CertFile, c.Evidence.Seal.KeyFile, "Poststelle Demo Seal ("+c.Tenant+")", selfissued.Seal)
		if err != nil {
			return nil, fmt.Errorf("evidence.seal: %w", err)
		}
		if issued {
			logger.Info("self-issued a demo seal certificate", "cert_file", c.Evidence.Seal.CertFile, "anchor", ca.CertFile)
		}
	}
	k, err := c.Evidence.Seal.Open(ctx, logger)
	if err != nil {
		return nil, fmt.Errorf("evidence.seal: %w", err)
	}
	if c.demo {
		if k.CRLs, err = c.demoCRL(); err != nil {
			return nil, fmt.Errorf("evidence.seal: %w", err)
		}
	}
	return k, nil
}

func (c *Config) setTSAServerDefaults() {
	if c.demo && c.TSAServer == nil {
		c.TSAServer = &TSAServerConfig{}
	}
	if c.demo && c.Evidence.Seal == nil {
		dir := filepath.Join(c.DataDir, "seal")
		c.Evidence.Seal = &KeyConfig{CertFile: filepath.Join(dir, "seal.pem"), KeyFile: filepath.Join(dir, "seal-key.pem")}
	}
	if s := c.TSAServer; s != nil {
		if s.Listen == "" {
			s.Listen = "127.0.0.1:3180"
		}
		if s.Dir == "" {
			s.Dir = filepath.Join(c.DataDir, "tsa")
		}
		if s.Policy == "" {
			s.Policy = DemoTSAPolicy
		}
		if s.Key.empty() {
			s.Key = KeyConfig{CertFile: filepath.Join(s.Dir, "tsa.pem"), KeyFile: filepath.Join(s.Dir, "tsa-key.pem")}
			s.selfIssued = true
		}
	}
}

func (c *Config) validateTSAServer() error {
	if s := c.TSAServer; s != nil {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return fmt.Errorf("tsa_server.listen: %q is not host:port", s.Listen)
		}
		if _, err := parseOID(s.Policy); err != nil {
			return fmt.Errorf("tsa_server.policy: %w", err)
		}
		if s.Accuracy < 0 {
			return errors.New("tsa_server.accuracy: must not be negative")
		}
		if err := s.Key.validate("tsa_server"); err != nil {
			return err
		}
	}
	if c.Evidence.Seal != nil {
		if err := c.Evidence.Seal.validate("evidence.seal"); err != nil {
			return err
		}
	}
	return nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is not a dotted OID", s)
	}
	oid := make(asn1.ObjectIdentifier, 0, len(parts))
	for _, p := range parts {
		// Arcs are capped at 31 bits: the TSTInfo parser reads no more.
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a dotted OID with arcs below 2^31", s)
		}
		oid = append(oid, int(n))
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("%q is not a valid OID", s)
	}
	return oid, nil
}

// buildTSAServer binds the gateway's own TSA when tsa_server is configured.
// When verification.tsas lists none, it returns cfg with the local TSA
// added (a copy: cfg is the caller's), so that receipts and published
// heads are stamped by it: a TSA configured means timestamps on.
func (g *Gateway) buildTSAServer(ctx context.Context, cfg *Config) (*Config, error) {
	s := cfg.TSAServer
	if s == nil {
		return cfg, nil
	}
	if s.selfIssued {
		ca, err := cfg.DemoCA()
		if err != nil {
			return nil, fmt.Errorf("tsa_server: %w", err)
		}
		issued, err := ca.LoadOrIssue(s.Key.CertFile, s.Key.KeyFile, "Poststelle Demo TSA ("+cfg.Tenant+")", selfissued.TSA)
		if err != nil {
			return nil, fmt.Errorf("tsa_server: %w", err)
		}
		if issued {
			g.logger.Info("self-issued a TSA certificate", "cert_file", s.Key.CertFile, "anchor", ca.CertFile)
		}
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tsa_server.dir: %w", err)
	}
	key, err := s.Key.Open(ctx, g.logger)
	if err != nil {
		return nil, fmt.Errorf("tsa_server: %w", err)
	}
	g.tsaKey = key
	if s.selfIssued {
		// The demo CA's CRL goes into every token with the certificates,
		// so that DSS reaches a verdict on the TSA certificate offline.
		// It is issued at start and current for a week; restart a demo
		// that runs longer.
		if key.CRLs, err = cfg.demoCRL(); err != nil {
			return nil, fmt.Errorf("tsa_server: %w", err)
		}
	}
	policy, _ := parseOID(s.Policy) // validated at load
	srv, err := tsa.New(tsa.Config{Signer: key.Signer, Certificates: key.Certificates, CRLs: key.CRLs, Policy: policy,
		Serials: &tsa.SerialFile{Path: filepath.Join(s.Dir, "serial")}, Accuracy: s.Accuracy,
		Logger: g.logger.With("component", "tsa")})
	if err != nil {
		return nil, fmt.Errorf("tsa_server: %w", err)
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("tsa_server: listen on %s: %w", s.Listen, err)
	}
	g.tsaLn = ln
	g.add("tsa server", func(ctx context.Context) error {
		hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, BaseContext: func(net.Listener) context.Context { return ctx }}
		g.logger.Info("TSA listening", "addr", ln.Addr().String(), "policy", s.Policy, "certificate", srv.Certificate().Subject.String())
		if err := httpserve.Run(ctx, hs, ln, "", "", 5*time.Second); err != nil && ctx.Err() == nil {
			return fmt.Errorf("tsa_server: %w", err)
		}
		return ctx.Err()
	})
	if len(cfg.Verification.TSAs) > 0 {
		return cfg, nil
	}
	c := *cfg
	c.Verification.TSAs = []verification.TSAConfig{{Name: LocalTSAName, URL: "http://" + ln.Addr().String() + "/", Policy: s.Policy}}
	return &c, nil
}

// TSAAddr is the bound address of the gateway's own TSA, nil when none runs.
func (g *Gateway) TSAAddr() net.Addr {
	if g.tsaLn == nil {
		return nil
	}
	return g.tsaLn.Addr()
}

// Close closes the TSA's listener and key, then the stores.
func (g *Gateway) Close() error {
	var errs []error
	if g.tsaLn != nil {
		if err := g.tsaLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if g.tsaKey != nil {
		errs = append(errs, g.tsaKey.Close())
	}
	return errors.Join(append(errs, g.Stores.Close())...)
}
