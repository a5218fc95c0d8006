package evidencebundle

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"go.mozilla.org/pkcs7"
)

// KeySealer seals with a key and its certificate chain (the seal
// certificate first): a CAdES-B signature, detached, with the signed
// attributes contentType, messageDigest, signingTime and ESS
// signingCertificateV2 (RFC 5035), which CAdES-B requires.
type KeySealer struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// Certificates implements CertifiedSealer.
func (s *KeySealer) Certificates() []*x509.Certificate { return s.Chain }

// oidSigningCertificateV2 is id-aa-signingCertificateV2 (RFC 5035).
var oidSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}

// essCertIDv2 with the default hash algorithm (SHA-256) left out, as DER
// requires for a DEFAULT value.
type essCertIDv2 struct {
	CertHash []byte
}

type signingCertificateV2 struct {
	Certs []essCertIDv2
}

// Seal implements asic.Sealer.
func (s *KeySealer) Seal(_ context.Context, manifest []byte) ([]byte, error) {
	if s.Key == nil || len(s.Chain) == 0 {
		return nil, errors.New("evidencebundle: the seal needs a key and its certificate")
	}
	sd, err := pkcs7.NewSignedData(manifest)
	if err != nil {
		return nil, fmt.Errorf("evidencebundle: seal: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	sum := sha256.Sum256(s.Chain[0].Raw)
	attr := pkcs7.Attribute{Type: oidSigningCertificateV2, Value: signingCertificateV2{Certs: []essCertIDv2{{CertHash: sum[:]}}}}
	if err := sd.AddSignerChain(s.Chain[0], s.Key, s.Chain[1:], pkcs7.SignerInfoConfig{ExtraSignedAttributes: []pkcs7.Attribute{attr}}); err != nil {
		return nil, fmt.Errorf("evidencebundle: seal: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("evidencebundle: seal: %w", err)
	}
	return der, nil
}
