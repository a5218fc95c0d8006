package portal

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/fitconnect"
)

// platform is the Submission API v1 as the collector uses it (the
// destination's side: docs.fitko.de, "Submission API"). The production
// implementation is package fitconnect's Client (fcPlatform); the tests use a
// fake. Bodies stream into a writer so that the collector caps and
// stores them as they arrive.
type platform interface {
	// ListSubmissions returns one page of the submissions waiting for the
	// destination: GET /submissions?destinationId=&offset=&limit=.
	ListSubmissions(ctx context.Context, destinationID string, offset, limit int) (fitconnect.SubmissionList, error)
	// GetSubmission writes the submission's JSON, exactly as the platform
	// answered GET /submissions/{submissionId}, to w.
	GetSubmission(ctx context.Context, submissionID string, w io.Writer) error
	// GetAttachment writes the attachment's compact JWE, as the platform
	// answered GET /submissions/{submissionId}/attachments/{attachmentId}
	// (application/jose), to w.
	GetAttachment(ctx context.Context, submissionID, attachmentID string, w io.Writer) error
	// PostEvent posts a signed SET to the case's event log:
	// POST /cases/{caseId}/events, Content-Type application/jose.
	PostEvent(ctx context.Context, caseID, set string) error
	// EventLog returns the case's event log, the SETs in their compact form:
	// GET /cases/{caseId}/events → {"eventLog": [...]}.
	EventLog(ctx context.Context, caseID string) ([]string, error)
	// PlatformKeys fetches the platform's signature keys (its JWKS), which
	// the SETs it writes (submit-submission) are verified with.
	PlatformKeys(ctx context.Context) (*fitconnect.KeySet, error)
	// RefreshToken is called when the platform refused the token
	// (errUnauthorized) before the collector repeats the call once; the fake
	// counts it, fitconnect's client has renewed the token by itself.
	RefreshToken(ctx context.Context) error
}

// Errors of a platform the collector tells apart.
var (
	// errNotFound: the submission, attachment or case is not (or no longer)
	// there (404).
	errNotFound = errors.New("portal: not found at the platform")
	// errUnauthorized: the access token was refused (401, an expired token).
	errUnauthorized = errors.New("portal: access token refused by the platform")
)

// keys are the destination's private keys: the decryption key (a JWK file or
// a PKCS#11 token) and the key the SETs are signed with.
type keys interface {
	// Decrypter unwraps content encryption keys (RSA-OAEP-256).
	Decrypter() *fitconnect.Decrypter
	// SignSET signs a SET payload as a compact JWS (PS512, typ
	// secevent+jwt, kid of the signing key).
	SignSET(p *fitconnect.SETPayload) (string, error)
}

// destKeys are the keys of package fitconnect the channel was configured
// with.
type destKeys struct {
	dec    *fitconnect.Decrypter
	signer *fitconnect.Signer
}

func (k *destKeys) Decrypter() *fitconnect.Decrypter { return k.dec }

func (k *destKeys) SignSET(p *fitconnect.SETPayload) (string, error) { return k.signer.Sign(p) }

// minKeyBits is the smallest RSA key the channel takes. FIT-Connect asks for
// 4096 bits (fitconnect.MinKeyBits); 2048 is the floor we hold a destination
// to, so that test environments with smaller keys still work.
const minKeyBits = 2048

// loadKeys reads the decryption and signing keys of c (package fitconnect
// checks kty, alg, key_ops and the signing key's kid). A PKCS#11 decryption
// key is handed in by the caller (dec), since opening a token is the
// assembly's.
func loadKeys(c *Config, dec *fitconnect.Decrypter) (*destKeys, error) {
	k := &destKeys{dec: dec}
	if dec == nil {
		raw, err := readSecret("decryption_key_file", c.DecryptionKeyFile)
		if err != nil {
			return nil, err
		}
		if k.dec, err = fitconnect.NewJWKDecrypter(raw); err != nil {
			return nil, fmt.Errorf("portal: decryption_key_file: %w", err)
		}
		if bits := k.dec.Public().N.BitLen(); bits < minKeyBits {
			return nil, fmt.Errorf("portal: decryption_key_file: a %d-bit key, want at least %d bits", bits, minKeyBits)
		}
	}
	raw, err := readSecret("signing_key_file", c.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	if k.signer, err = fitconnect.NewJWKSigner(raw); err != nil {
		return nil, fmt.Errorf("portal: signing_key_file: %w (the JWK needs the kid the platform finds the verification key by)", err)
	}
	if bits := k.signer.Public().N.BitLen(); bits < minKeyBits {
		return nil, fmt.Errorf("portal: signing_key_file: a %d-bit key, want at least %d bits", bits, minKeyBits)
	}
	return k, nil
}

// maxEventLogEntries bounds what is read of one case's event log.
const maxEventLogEntries = 1000
