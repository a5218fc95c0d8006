package smtpout

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"

	"go.mozilla.org/pkcs7"

	"github.com/poststelle/poststelle/mail/mailcompose"
)

// SMIMEConfig signs replies as S/MIME (RFC 8551, multipart/signed with a
// detached CMS signature) with the authority's seal certificate, so that a
// recipient can check the answer came from the authority unaltered.
type SMIMEConfig struct {
	// CertFile holds the PEM certificate chain (signer first), KeyFile
	// its PEM private key (RSA or ECDSA).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type smimeSigner struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.PrivateKey
}

func loadSMIME(cfg SMIMEConfig) (*smimeSigner, error) {
	pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load seal certificate: %w", err)
	}
	var certs []*x509.Certificate
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse seal certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no seal certificate")
	}
	return &smimeSigner{cert: certs[0], chain: certs[1:], key: pair.PrivateKey}, nil
}

// sign wraps a MIME entity in multipart/signed. The entity is signed as
// written, CRLF line ends and all, which is its canonical form.
func (s *smimeSigner) sign(entity []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(entity)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.cert, s.key, s.chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	boundary := mailcompose.RandomBoundary()
	var b bytes.Buffer
	mailcompose.WriteField(&b, "Content-Type", mime.FormatMediaType("multipart/signed", map[string]string{
		"protocol": "application/pkcs7-signature", "micalg": "sha-256", "boundary": boundary}))
	b.WriteString("\r\nThis is an S/MIME signed message.\r\n\r\n")
	mp := mailcompose.NewMultipart(&b, boundary)
	mp.Next()
	b.Write(entity)
	mp.Next()
	mailcompose.WriteField(&b, "Content-Type", "application/pkcs7-signature; name=smime.p7s")
	mailcompose.WriteField(&b, "Content-Transfer-Encoding", "base64")
	mailcompose.WriteField(&b, "Content-Disposition", "attachment; filename=smime.p7s")
	b.WriteString("\r\n")
	enc := mailcompose.NewBase64Writer(&b)
	enc.Write(sig)
	enc.Close()
	mp.Close()
	return b.Bytes(), nil
}
