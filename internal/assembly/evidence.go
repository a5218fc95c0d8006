package assembly

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/gateway/evidencebundle"
	"github.com/poststelle/poststelle/office/officeapi"
)

// EvidenceConfig is the evidence section.
type EvidenceConfig struct {
	// Seal is the seal certificate and key the bundles are sealed with.
	Seal SealConfig `yaml:"seal"`
}

// SealConfig names the seal certificate (PEM, the seal certificate first,
// then its chain) and its PKCS#8 PEM key. Without them a self-issued seal
// is made in <data_dir>/keys/seal.{crt,key} on first use: good for the demo,
// not for a court, since nobody vouches for it.
type SealConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// EvidenceBuilder builds the bundle maker from the configuration: the log
// and blobs given, the gateway key, the seal, and the TSA that timestamps
// the head (witnesses.tsa, else verification.tsas; none: no head
// timestamp).
func EvidenceBuilder(cfg *Config, l integrity.AuditedLog, blobs blob.Opener, signer crypto.Signer, version string, logger *slog.Logger) (*evidencebundle.Builder, error) {
	seal, err := LoadSeal(cfg, logger)
	if err != nil {
		return nil, err
	}
	b := &evidencebundle.Builder{Log: l, Blobs: blobs, Signer: signer, Sealer: seal, Version: version, Logger: logger}
	if cfg.Witnesses != nil {
		b.WitnessDirs = cfg.Witnesses.Dir
	}
	switch {
	case cfg.Witnesses != nil && cfg.Witnesses.TSA == "none":
	case cfg.Witnesses != nil && cfg.Witnesses.TSA != "":
		b.TSA = &tsp.Client{TSAs: []tsp.TSA{{Name: cfg.Witnesses.TSA, URL: cfg.Witnesses.TSA}}, Logger: logger}
	case len(cfg.Verification.TSAs) > 0:
		b.TSA = &tsp.Client{Attempts: cfg.Verification.TSAAttempts, RetryDelay: cfg.Verification.TSARetryDelay, Logger: logger}
		for _, t := range cfg.Verification.TSAs {
			b.TSA.TSAs = append(b.TSA.TSAs, tsp.TSA{Name: t.Name, URL: t.URL})
		}
	}
	return b, nil
}

// bundleFunc is the office API's bundle maker: nil (the download answers
// 503) on a log that keeps no signed heads.
func bundleFunc(cfg *Config, g *Stores, version string, logger *slog.Logger) (officeapi.BundleFunc, error) {
	l, ok := g.log.(integrity.AuditedLog)
	if !ok {
		logger.Warn("evidence: the log keeps no signed heads; the office API offers no evidence bundles", "backend", cfg.EventStore.Backend)
		return nil, nil
	}
	b, err := EvidenceBuilder(cfg, l, g.blobs, g.signer, version, logger.With("component", "evidence"))
	if err != nil {
		return nil, err
	}
	return b.Build, nil
}

// LoadSeal reads evidence.seal, or makes the self-issued demo seal.
func LoadSeal(cfg *Config, logger *slog.Logger) (*evidencebundle.KeySealer, error) {
	sc := cfg.Evidence.Seal
	if (sc.CertFile == "") != (sc.KeyFile == "") {
		return nil, errors.New("evidence.seal: cert_file and key_file go together")
	}
	if sc.CertFile == "" {
		sc.CertFile = filepath.Join(cfg.DataDir, "keys", "seal.crt")
		sc.KeyFile = filepath.Join(cfg.DataDir, "keys", "seal.key")
		if _, err := os.Stat(sc.CertFile); errors.Is(err, fs.ErrNotExist) {
			if err := selfIssueSeal(sc.CertFile, sc.KeyFile); err != nil {
				return nil, fmt.Errorf("evidence.seal: make the self-issued seal: %w", err)
			}
			logger.Warn("evidence: no evidence.seal configured; made a self-issued seal certificate, which nobody vouches for", "cert", sc.CertFile)
		}
	}
	return readSeal(sc)
}

func readSeal(sc SealConfig) (*evidencebundle.KeySealer, error) {
	certPEM, err := os.ReadFile(sc.CertFile)
	if err != nil {
		return nil, fmt.Errorf("evidence.seal.cert_file: %w", err)
	}
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("evidence.seal.cert_file %s: %w", sc.CertFile, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("evidence.seal.cert_file %s holds no certificate", sc.CertFile)
	}
	keyPEM, err := os.ReadFile(sc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("evidence.seal.key_file: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, fmt.Errorf("evidence.seal.key_file %s is not PEM", sc.KeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("evidence.seal.key_file %s: %w", sc.KeyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("evidence.seal.key_file %s: %T cannot sign", sc.KeyFile, k)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("evidence.seal.key_file %s: %w", sc.KeyFile, err)
	}
	if string(pub) != string(chain[0].RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("evidence.seal: the key in %s is not the key of the certificate in %s", sc.KeyFile, sc.CertFile)
	}
	return &evidencebundle.KeySealer{Key: signer, Chain: chain}, nil
}

// selfIssueSeal makes an ECDSA P-256 key and a self-issued seal
// certificate (key usage digitalSignature and nonRepudiation, ten years).
func selfIssueSeal(certFile, keyFile string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Poststelle evidence seal (self-issued, demo)", Organization: []string{"Poststelle demo"}, Country: []string{"DE"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	k8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
