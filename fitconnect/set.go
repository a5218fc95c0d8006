package fitconnect

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Every state change of a submission or reply is an event in the case's event
// log (GET /cases/{caseId}/events), written as a Security Event Token (RFC 8417):
// a JWS in compact serialization, alg PS512, typ secevent+jwt, kid the signing
// key's id. The payload has $schema (the SET payload schema), jti (a fresh
// UUID), iss (the platform's URL for its own events, the destination id for a
// destination's), iat, sub ("submission:<id>" or "reply:<id>"), txn
// ("case:<caseId>") and events with exactly one event URI and its details.
const (
	// SETType is the typ header of every FIT-Connect SET (RFC 8417 §2.3).
	SETType = "secevent+jwt"
	// SETPayloadSchema is the payload schema the FIT-Connect docs show in their
	// examples. (A live v2 test platform reportedly answers that 1.0.0 is not
	// supported and writes 1.2.2 itself; SETClaims.Schema overrides.)
	SETPayloadSchema = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"
	// EventPrefix starts every event URI.
	EventPrefix = "https://schema.fitko.de/fit-connect/events/"
	// DefaultMaxSETSize caps one SET. accept-submission grows with the number
	// of attachments (one 22-character tag each); a thousand attachments stay
	// far below it.
	DefaultMaxSETSize = 256 << 10
	maxSigningJWK     = maxJWKSize
)

// Event URIs. Submission events as the docs' event table lists them (author in
// brackets); reply events by the callbacks table (create-, submit-, reject-reply)
// and by analogy (accept-reply, delete-reply), which the public material we
// found did not spell out in full.
const (
	EventCreateSubmission  = EventPrefix + "create-submission"  // platform
	EventSubmitSubmission  = EventPrefix + "submit-submission"  // platform, with the authentication tags
	EventNotifySubmission  = EventPrefix + "notify-submission"  // platform
	EventForwardSubmission = EventPrefix + "forward-submission" // receiving system
	EventRejectSubmission  = EventPrefix + "reject-submission"  // receiving system or platform
	EventAcceptSubmission  = EventPrefix + "accept-submission"  // receiving system
	EventDeleteSubmission  = EventPrefix + "delete-submission"  // platform
	EventCreateReply       = EventPrefix + "create-reply"       // replying system (the destination)
	EventSubmitReply       = EventPrefix + "submit-reply"       // platform
	EventRejectReply       = EventPrefix + "reject-reply"       // the reply's recipient or platform
	EventAcceptReply       = EventPrefix + "accept-reply"       // the reply's recipient
	EventDeleteReply       = EventPrefix + "delete-reply"       // platform
)

// Errors of SET handling.
var (
	// ErrInvalidSET: not a well-formed FIT-Connect SET (header, payload or size).
	ErrInvalidSET = errors.New("fitconnect: invalid SET")
	// ErrSETSignature: the signature does not verify with the key its kid names,
	// or the kid is unknown.
	ErrSETSignature = errors.New("fitconnect: SET signature invalid")
)

// SubjectSubmission, SubjectReply and TxnCase build sub and txn values.
func SubjectSubmission(id string) string { return "submission:" + id }

// SubjectReply is the sub of a reply's events.
func SubjectReply(id string) string { return "reply:" + id }

// TxnCase is the txn of every event of a case.
func TxnCase(caseID string) string { return "case:" + caseID }

// SETPayload is the claims set of a FIT-Connect SET.
type SETPayload struct {
	Schema      string                     `json:"$schema"`
	JTI         string                     `json:"jti"`
	Issuer      string                     `json:"iss"`
	IssuedAt    int64                      `json:"iat"`
	Subject     string                     `json:"sub"`
	Transaction string                     `json:"txn"`
	Events      map[string]json.RawMessage `json:"events"`
}

// AuthenticationTags are the tags (fifth JWE segment, base64url) of a
// submission's metadata, data and attachments: the platform records them in
// submit-submission, the destination repeats them in accept-submission so the
// sender can see the destination read exactly what was sent.
type AuthenticationTags struct {
	Metadata    string            `json:"metadata"`
	Data        string            `json:"data,omitempty"`
	Attachments map[string]string `json:"attachments,omitempty"`
}

// Equal reports whether two sets of tags are the same (attachments as a map).
func (a AuthenticationTags) Equal(b AuthenticationTags) bool {
	if a.Metadata != b.Metadata || a.Data != b.Data || len(a.Attachments) != len(b.Attachments) {
		return false
	}
	for k, v := range a.Attachments {
		if b.Attachments[k] != v {
			return false
		}
	}
	return true
}

// SETClaims are the envelope values of a SET we build.
type SETClaims struct {
	Issuer   string    // the destination id for our events
	Subject  string    // SubjectSubmission(id) or SubjectReply(id)
	CaseID   string    // becomes txn case:<id>
	IssuedAt time.Time // zero means now
	JTI      string    // "" means a fresh random UUID
	Schema   string    // "" means SETPayloadSchema
}

// NewSET builds a payload with one event; details are marshalled as the
// event's object (nil gives {}).
func NewSET(c SETClaims, eventURI string, details any) (*SETPayload, error) {
	if c.Issuer == "" || c.Subject == "" || c.CaseID == "" || !strings.HasPrefix(eventURI, EventPrefix) {
		return nil, fmt.Errorf("%w: issuer, subject, case id and a FIT-Connect event are required", ErrInvalidSET)
	}
	body := json.RawMessage(`{}`)
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return nil, fmt.Errorf("fitconnect: encoding event details: %w", err)
		}
		body = b
	}
	p := &SETPayload{
		Schema:      c.Schema,
		JTI:         c.JTI,
		Issuer:      c.Issuer,
		IssuedAt:    c.IssuedAt.Unix(),
		Subject:     c.Subject,
		Transaction: TxnCase(c.CaseID),
		Events:      map[string]json.RawMessage{eventURI: body},
	}
	if p.Schema == "" {
		p.Schema = SETPayloadSchema
	}
	if c.IssuedAt.IsZero() {
		p.IssuedAt = time.Now().Unix()
	}
	if p.JTI == "" {
		id, err := newUUID(rand.Reader)
		if err != nil {
			return nil, err
		}
		p.JTI = id
	}
	return p, nil
}

// NewAcceptSubmission builds accept-submission for a submission: the destination
// confirms it decrypted and checked everything, listing the tags it read.
func NewAcceptSubmission(c SETClaims, tags AuthenticationTags) (*SETPayload, error) {
	return NewSET(c, EventAcceptSubmission, struct {
		AuthenticationTags AuthenticationTags `json:"authenticationTags"`
	}{tags})
}

// NewRejectSubmission builds reject-submission with the problems found (at
// least one).
func NewRejectSubmission(c SETClaims, problems []Problem) (*SETPayload, error) {
	if len(problems) == 0 {
		return nil, fmt.Errorf("%w: reject-submission needs at least one problem", ErrInvalidSET)
	}
	return NewSET(c, EventRejectSubmission, struct {
		Problems []Problem `json:"problems"`
	}{problems})
}

// Signer signs SETs with the destination's signature key (PS512).
type Signer struct {
	kid    string
	pub    *rsa.PublicKey
	signer jose.Signer
}

// KeyID is the kid the SETs carry.
func (s *Signer) KeyID() string { return s.kid }

// NewJWKSigner reads a private RSA JWK with a kid; alg, when present, must be
// PS512 and key_ops, when present, must allow sign.
func NewJWKSigner(jwk []byte) (*Signer, error) {
	if len(jwk) > maxSigningJWK {
		return nil, fmt.Errorf("%w: JWK larger than %d bytes", ErrInvalidKey, maxSigningJWK)
	}
	k, err := parseRSAJWK(jwk, SignatureAlgorithm, []string{"sign"})
	if err != nil {
		return nil, err
	}
	priv, ok := k.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: signing JWK has no private part", ErrInvalidKey)
	}
	if k.KeyID == "" {
		return nil, fmt.Errorf("%w: signing JWK has no kid", ErrInvalidKey)
	}
	return newSigner(k.KeyID, &priv.PublicKey, priv)
}

// LoadJWKSigner reads a private signing JWK file.
func LoadJWKSigner(path string) (*Signer, error) {
	b, err := readCapped(path, maxSigningJWK)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: reading signing key: %w", err)
	}
	s, err := NewJWKSigner(b)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: signing key %s: %w", path, err)
	}
	return s, nil
}

// NewCryptoSigner signs through a crypto.Signer with an RSA key (a PKCS#11
// key, say), RSASSA-PSS with SHA-512.
func NewCryptoSigner(kid string, cs crypto.Signer) (*Signer, error) {
	if cs == nil || kid == "" {
		return nil, fmt.Errorf("%w: a signer and a kid are required", ErrInvalidKey)
	}
	pub, ok := cs.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: signer holds a %T, want an RSA key", ErrInvalidKey, cs.Public())
	}
	return newSigner(kid, pub, opaqueSigner{cs: cs, pub: pub, kid: kid})
}

func newSigner(kid string, pub *rsa.PublicKey, key any) (*Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(SETType).WithHeader(jose.HeaderKey("kid"), kid)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS512, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: preparing SET signer: %w", err)
	}
	return &Signer{kid: kid, pub: pub, signer: js}, nil
}

// Public is the verification key, e.g. to check its length against a policy.
func (s *Signer) Public() *rsa.PublicKey { return s.pub }

// PublicJWK is the verification key as a public JWK (kid, alg PS512, use sig,
// key_ops verify): what is registered for the destination at the platform.
func (s *Signer) PublicJWK() ([]byte, error) {
	return publicJWK(s.pub, s.kid, SignatureAlgorithm, "sig", "verify")
}

func publicJWK(pub *rsa.PublicKey, kid, alg, use, op string) ([]byte, error) {
	b, err := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("fitconnect: encoding public JWK: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("fitconnect: encoding public JWK: %w", err)
	}
	m["key_ops"] = []string{op}
	return json.Marshal(m)
}

// opaqueSigner lets go-jose sign through a crypto.Signer.
type opaqueSigner struct {
	cs  crypto.Signer
	pub *rsa.PublicKey
	kid string
}

func (o opaqueSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: o.pub, KeyID: o.kid, Algorithm: SignatureAlgorithm, Use: "sig"}
}

func (o opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{jose.PS512} }

func (o opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != jose.PS512 {
		return nil, fmt.Errorf("fitconnect: signer does %s only", SignatureAlgorithm)
	}
	h := crypto.SHA512.New()
	h.Write(payload)
	return o.cs.Sign(rand.Reader, h.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512})
}

// Sign serializes and signs a payload as a compact JWS.
func (s *Signer) Sign(p *SETPayload) (string, error) {
	if p == nil || len(p.Events) != 1 {
		return "", fmt.Errorf("%w: a SET carries exactly one event", ErrInvalidSET)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("fitconnect: encoding SET: %w", err)
	}
	obj, err := s.signer.Sign(b)
	if err != nil {
		return "", fmt.Errorf("fitconnect: signing SET: %w", err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("fitconnect: serializing SET: %w", err)
	}
	return out, nil
}

// KeySet holds the public keys SETs are verified with, by kid: the platform's
// (from its JWKS) and destinations' signature keys. Fill it, then share it:
// ParseSET may run concurrently, Add and AddJWK may not run alongside.
type KeySet struct {
	keys map[string]*rsa.PublicKey
}

// NewKeySet is an empty key set.
func NewKeySet() *KeySet { return &KeySet{keys: map[string]*rsa.PublicKey{}} }

// AddJWK adds one public (or private, reduced to public) RSA signature JWK:
// a kid is required, alg (if present) PS512, key_ops (if present) verify.
func (k *KeySet) AddJWK(jwk []byte) error {
	if len(jwk) > maxJWKSize {
		return fmt.Errorf("%w: JWK larger than %d bytes", ErrInvalidKey, maxJWKSize)
	}
	j, err := parseRSAJWK(jwk, SignatureAlgorithm, []string{"verify"})
	if err != nil {
		return err
	}
	pub, err := publicOf(j)
	if err != nil {
		return err
	}
	if pub.KeyID == "" {
		return fmt.Errorf("%w: signature JWK has no kid", ErrInvalidKey)
	}
	k.keys[pub.KeyID] = pub.Key
	return nil
}

// Add adds a public key under kid.
func (k *KeySet) Add(kid string, pub *rsa.PublicKey) { k.keys[kid] = pub }

// Len is the number of keys.
func (k *KeySet) Len() int { return len(k.keys) }

// ParseJWKSet reads a JWK Set ({"keys":[...]}, RFC 7517 §5) of signature keys,
// capped at 1 MiB. Keys that are not RSA signature keys are skipped (a JWKS
// may also list encryption keys); a set without any usable key is an error.
func ParseJWKSet(b []byte) (*KeySet, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%w: JWK set larger than 1 MiB", ErrInvalidKey)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%w: JWK set: %v", ErrInvalidKey, err)
	}
	ks := NewKeySet()
	for _, raw := range set.Keys {
		_ = ks.AddJWK(raw) // skipping what is not a PS512 verification key
	}
	if ks.Len() == 0 {
		return nil, fmt.Errorf("%w: JWK set has no RSA signature key with a kid", ErrInvalidKey)
	}
	return ks, nil
}

// VerifyOptions restrict ParseSET.
type VerifyOptions struct {
	// MaxSize caps the compact JWS; 0 means DefaultMaxSETSize.
	MaxSize int
	// Issuer, when set, must equal iss.
	Issuer string
}

// SET is a verified FIT-Connect SET.
type SET struct {
	SETPayload
	KeyID string // the kid that verified it
	Raw   string // the compact JWS as received
	Event string // the one event URI of events
	// Details is the event's object.
	Details json.RawMessage
}

// SubmissionID is the id in sub "submission:<id>" ("" for other subjects).
func (s *SET) SubmissionID() string {
	id, _ := strings.CutPrefix(s.Subject, "submission:")
	if id == s.Subject {
		return ""
	}
	return id
}

// ReplyID is the id in sub "reply:<id>" ("" for other subjects).
func (s *SET) ReplyID() string {
	id, _ := strings.CutPrefix(s.Subject, "reply:")
	if id == s.Subject {
		return ""
	}
	return id
}

// CaseID is the id in txn "case:<id>".
func (s *SET) CaseID() string {
	id, _ := strings.CutPrefix(s.Transaction, "case:")
	return id
}

// AuthenticationTags reads authenticationTags from the event's details
// (submit-submission, accept-submission, and their reply counterparts).
// ok is false when the event has none.
func (s *SET) AuthenticationTags() (tags AuthenticationTags, ok bool, err error) {
	var d struct {
		Tags *AuthenticationTags `json:"authenticationTags"`
	}
	if err := json.Unmarshal(s.Details, &d); err != nil {
		return AuthenticationTags{}, false, fmt.Errorf("%w: event details: %v", ErrInvalidSET, err)
	}
	if d.Tags == nil {
		return AuthenticationTags{}, false, nil
	}
	return *d.Tags, true, nil
}

// Problems reads problems from the event's details (reject-submission,
// reject-reply; accept-* may carry some as well).
func (s *SET) Problems() ([]Problem, error) {
	var d struct {
		Problems []Problem `json:"problems"`
	}
	if err := json.Unmarshal(s.Details, &d); err != nil {
		return nil, fmt.Errorf("%w: event details: %v", ErrInvalidSET, err)
	}
	return d.Problems, nil
}

// PeekSET reads the payload of a compact SET without verifying anything but
// its shape and size (DefaultMaxSETSize): to find the events of a submission
// or reply in an event log, and to tell ours from the platform's. Nothing may
// be decided on what it returns before ParseSET verified the same token.
func PeekSET(compact string) (*SETPayload, error) {
	compact = strings.TrimSpace(compact)
	if len(compact) > DefaultMaxSETSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidSET, len(compact), DefaultMaxSETSize)
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrInvalidSET, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidSET, err)
	}
	var p SETPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidSET, err)
	}
	return &p, nil
}

// ParseSET verifies a compact SET against keys and returns its claims. It
// insists on alg PS512, typ secevent+jwt, a kid present in keys, a valid
// signature, the claims jti, iss, iat, sub, txn and exactly one event.
func ParseSET(compact string, keys *KeySet, opts VerifyOptions) (*SET, error) {
	max := opts.MaxSize
	if max <= 0 {
		max = DefaultMaxSETSize
	}
	compact = strings.TrimSpace(compact)
	if len(compact) > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidSET, len(compact), max)
	}
	if strings.Count(compact, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrInvalidSET)
	}
	obj, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.PS512})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSET, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrInvalidSET, len(obj.Signatures))
	}
	h := obj.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != SETType {
		return nil, fmt.Errorf("%w: typ %q, want %s", ErrInvalidSET, typ, SETType)
	}
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidSET)
	}
	if keys == nil {
		return nil, fmt.Errorf("%w: no keys to verify with", ErrSETSignature)
	}
	pub, ok := keys.keys[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrSETSignature, truncate(h.KeyID, 64))
	}
	payload, err := obj.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSETSignature, err)
	}
	var p SETPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidSET, err)
	}
	switch {
	case p.JTI == "", p.Issuer == "", p.IssuedAt <= 0, p.Subject == "", !strings.HasPrefix(p.Transaction, "case:"):
		return nil, fmt.Errorf("%w: jti, iss, iat, sub and txn case:<id> are required", ErrInvalidSET)
	case len(p.Events) != 1:
		return nil, fmt.Errorf("%w: %d events, want exactly one", ErrInvalidSET, len(p.Events))
	case opts.Issuer != "" && p.Issuer != opts.Issuer:
		return nil, fmt.Errorf("%w: issuer %q, want %q", ErrInvalidSET, truncate(p.Issuer, 128), opts.Issuer)
	}
	s := &SET{SETPayload: p, KeyID: h.KeyID, Raw: compact}
	for uri, d := range p.Events {
		s.Event, s.Details = uri, d
	}
	if len(s.Details) == 0 || s.Details[0] != '{' {
		return nil, fmt.Errorf("%w: event details are not an object", ErrInvalidSET)
	}
	return s, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("fitconnect: generating a UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}
