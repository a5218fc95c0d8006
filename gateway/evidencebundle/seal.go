package evidencebundle

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
)

// KeySealer seals with a key and its certificate chain (the seal
// certificate first) through crypto/cms: a detached CAdES-B signature with
// the signed attributes contentType, messageDigest, signingTime and ESS
// signingCertificateV2 (RFC 5035), and the chain in the certificates field.
type KeySealer struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
	// Now dates the signingTime attribute (default time.Now).
	Now func() time.Time
}

// Certificates implements CertifiedSealer.
func (s *KeySealer) Certificates() []*x509.Certificate { return s.Chain }

// Seal implements asic.Sealer.
func (s *KeySealer) Seal(ctx context.Context, manifest []byte) ([]byte, error) {
	if s.Key == nil || len(s.Chain) == 0 {
		return nil, errors.New("evidencebundle: the seal needs a key and its certificate")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	certs := make([][]byte, len(s.Chain))
	for i, c := range s.Chain {
		certs[i] = c.Raw
	}
	der, err := cms.Sign(ctx, manifest, cms.SignOptions{Signer: s.Key, Certificates: certs, Detached: true, SigningTime: now()})
	if err != nil {
		return nil, fmt.Errorf("evidencebundle: seal: %w", err)
	}
	return der, nil
}
