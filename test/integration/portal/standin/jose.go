package standin

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The URIs of the events of a case's event log (docs.fitko.de,
// "Ereignisprotokoll / Events").
const (
	eventPrefix           = "https://schema.fitko.de/fit-connect/events/"
	EventCreateSubmission = eventPrefix + "create-submission"
	EventSubmitSubmission = eventPrefix + "submit-submission"
	EventAcceptSubmission = eventPrefix + "accept-submission"
	EventRejectSubmission = eventPrefix + "reject-submission"
	// The reply events: the public v1 material names no reply events; these
	// follow the form of the submission events (the Rückkanal documentation
	// describes replies as submissions in the other direction).
	EventSubmitReply = eventPrefix + "submit-reply"
	EventAcceptReply = eventPrefix + "accept-reply"
	EventRejectReply = eventPrefix + "reject-reply"
)

// ProblemTypePrefix is the prefix of the problems in a reject-submission
// event (docs.fitko.de, "Einreichung überprüfen").
const ProblemTypePrefix = eventPrefix + "problems/"

// SETPayloadSchema is the $schema of a SET payload FITKO documents (set-payload
// 1.0.0; the live platform writes later 1.x versions, which the stand-in
// accepts too).
const SETPayloadSchema = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"

// PlatformIssuer is the iss of the SETs the platform (Zustelldienst) writes.
const PlatformIssuer = "https://api.fitko.de/fit-connect/"

// SETType is the typ header of a SET (RFC 8417 §2.3).
const SETType = "secevent+jwt"

// The size caps of what the stand-in parses.
const (
	maxSET       = 256 << 10
	maxJOSEHead  = 8 << 10
	maxSETClaims = 128 << 10
)

var (
	setSchemaRE = regexp.MustCompile(`^https://schema\.fitko\.de/fit-connect/set-payload/1\.[0-9]+\.[0-9]+/set-payload\.schema\.json$`)
	subjectRE   = regexp.MustCompile(`^(submission|reply):([0-9a-fA-F-]{36})$`)
	txnRE       = regexp.MustCompile(`^case:([0-9a-fA-F-]{36})$`)
)

// CompactJWE is the outside of a JWE in compact serialization (RFC 7516
// §7.1): what the platform can see without the key.
type CompactJWE struct {
	Alg, Enc, Kid, Zip, Cty string
	// Tag is the fifth segment, the base64url authentication tag, which the
	// SETs carry as the JWE's "authentication tag".
	Tag string
}

// ParseCompactJWE checks that s is a compact JWE as FIT-Connect requires
// (RSA-OAEP-256 key encryption, A256GCM content encryption; docs.fitko.de,
// "Verschlüsselte Übertragung") and returns its outside.
func ParseCompactJWE(s string) (CompactJWE, error) {
	var j CompactJWE
	if s == "" {
		return j, errors.New("empty")
	}
	parts := strings.Split(s, ".")
	if len(parts) != 5 {
		return j, fmt.Errorf("%d segments, want 5", len(parts))
	}
	for i, p := range parts {
		if p == "" && i != 3 { // the ciphertext of an empty plaintext is empty
			return j, fmt.Errorf("segment %d is empty", i+1)
		}
		if _, err := base64.RawURLEncoding.DecodeString(p); err != nil {
			return j, fmt.Errorf("segment %d is not base64url", i+1)
		}
	}
	if len(parts[0]) > maxJOSEHead {
		return j, errors.New("header too large")
	}
	head, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h struct {
		Alg string `json:"alg"`
		Enc string `json:"enc"`
		Kid string `json:"kid"`
		Zip string `json:"zip"`
		Cty string `json:"cty"`
	}
	if err := json.Unmarshal(head, &h); err != nil {
		return j, fmt.Errorf("header: %w", err)
	}
	if h.Alg != "RSA-OAEP-256" {
		return j, fmt.Errorf("alg %q, want RSA-OAEP-256", h.Alg)
	}
	if h.Enc != "A256GCM" {
		return j, fmt.Errorf("enc %q, want A256GCM", h.Enc)
	}
	if h.Zip != "" && h.Zip != "DEF" {
		return j, fmt.Errorf("zip %q", h.Zip)
	}
	if tag, _ := base64.RawURLEncoding.DecodeString(parts[4]); len(tag) != 16 {
		return j, errors.New("the A256GCM tag must be 16 bytes")
	}
	return CompactJWE{Alg: h.Alg, Enc: h.Enc, Kid: h.Kid, Zip: h.Zip, Cty: h.Cty, Tag: parts[4]}, nil
}

// authTag is the authentication tag of a JWE already checked by
// ParseCompactJWE.
func authTag(jwe string) string {
	if i := strings.LastIndexByte(jwe, '.'); i >= 0 {
		return jwe[i+1:]
	}
	return ""
}

// SETClaims are the claims of a FIT-Connect SET (RFC 8417 §2.2 and FITKO's
// set-payload schema).
type SETClaims struct {
	Schema string                     `json:"$schema"`
	JTI    string                     `json:"jti"`
	Iss    string                     `json:"iss"`
	Iat    int64                      `json:"iat"`
	Sub    string                     `json:"sub"`
	Txn    string                     `json:"txn"`
	Events map[string]json.RawMessage `json:"events"`
}

// SET is a parsed, not yet verified Security Event Token.
type SET struct {
	Kid    string
	Claims SETClaims
	// Event is the one event's URI, Payload its payload.
	Event   string
	Payload json.RawMessage
	// SubjectKind is "submission" or "reply", SubjectID its id; CaseID is
	// txn's id.
	SubjectKind, SubjectID, CaseID string
	jws                            *jose.JSONWebSignature
}

// SignSET signs claims as a SET with key (PS512, typ secevent+jwt, kid), in
// compact serialization.
func SignSET(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS512, Key: key},
		(&jose.SignerOptions{}).WithType(SETType).WithHeader("kid", kid))
	if err != nil {
		return "", fmt.Errorf("set signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("set claims: %w", err)
	}
	obj, err := sig.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing the set: %w", err)
	}
	return obj.CompactSerialize()
}

// ParseSET parses a compact SET and checks its form as FITKO's "SET
// validation" page asks: header typ secevent+jwt, alg PS512, a kid; claims
// $schema (set-payload 1.x), jti (a UUID), iss, iat, sub
// (submission:<uuid> or reply:<uuid>), txn (case:<uuid>) and exactly one
// event. The signature is checked by Verify.
func ParseSET(compact string) (*SET, error) {
	if len(compact) > maxSET {
		return nil, errors.New("set: too large")
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("set: %d segments, want 3 (compact JWS)", len(parts))
	}
	if len(parts[0]) > maxJOSEHead {
		return nil, errors.New("set: header too large")
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("set: header is not base64url")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("set: header: %w", err)
	}
	str := func(m map[string]json.RawMessage, k string) (string, bool) {
		var v string
		raw, ok := m[k]
		if !ok || json.Unmarshal(raw, &v) != nil {
			return "", false
		}
		return v, true
	}
	if typ, _ := str(h, "typ"); typ != SETType {
		return nil, fmt.Errorf("set: typ %q, want %s", typ, SETType)
	}
	if alg, _ := str(h, "alg"); alg != "PS512" {
		return nil, fmt.Errorf("set: alg %q, want PS512", alg)
	}
	kid, ok := str(h, "kid")
	if !ok || kid == "" {
		return nil, errors.New("set: no kid")
	}
	if len(parts[1]) > maxSETClaims*4/3+4 {
		return nil, errors.New("set: claims too large")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("set: claims are not base64url")
	}
	set := &SET{Kid: kid}
	if err := checkClaims(payload, set); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.PS512})
	if err != nil {
		return nil, fmt.Errorf("set: %w", err)
	}
	set.jws = jws
	return set, nil
}

func checkClaims(payload []byte, set *SET) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return fmt.Errorf("set: claims: %w", err)
	}
	for _, k := range []string{"$schema", "jti", "iss", "iat", "sub", "txn", "events"} {
		if _, ok := raw[k]; !ok {
			return fmt.Errorf("set: claim %s missing", k)
		}
	}
	var c struct {
		Schema string                     `json:"$schema"`
		JTI    string                     `json:"jti"`
		Iss    string                     `json:"iss"`
		Iat    json.RawMessage            `json:"iat"`
		Sub    string                     `json:"sub"`
		Txn    string                     `json:"txn"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("set: claims: %w", err)
	}
	if !setSchemaRE.MatchString(c.Schema) {
		return fmt.Errorf("set: $schema %q is not a set-payload 1.x schema", c.Schema)
	}
	if !isUUID(c.JTI) {
		return fmt.Errorf("set: jti %q is not a UUID", c.JTI)
	}
	if c.Iss == "" {
		return errors.New("set: empty iss")
	}
	// iat is a NumericDate (RFC 7519 §2); FITKO's schema wants an integer.
	var iat int64
	if err := json.Unmarshal(c.Iat, &iat); err != nil || iat <= 0 {
		return fmt.Errorf("set: iat %q is not a positive integer (NumericDate)", c.Iat)
	}
	m := subjectRE.FindStringSubmatch(c.Sub)
	if m == nil || !isUUID(m[2]) {
		return fmt.Errorf("set: sub %q is neither submission:<uuid> nor reply:<uuid>", c.Sub)
	}
	t := txnRE.FindStringSubmatch(c.Txn)
	if t == nil || !isUUID(t[1]) {
		return fmt.Errorf("set: txn %q is not case:<uuid>", c.Txn)
	}
	if len(c.Events) != 1 {
		return fmt.Errorf("set: %d events, want exactly one", len(c.Events))
	}
	set.Claims = SETClaims{Schema: c.Schema, JTI: c.JTI, Iss: c.Iss, Iat: iat, Sub: c.Sub, Txn: c.Txn, Events: c.Events}
	for uri, p := range c.Events {
		set.Event, set.Payload = uri, p
	}
	set.SubjectKind, set.SubjectID, set.CaseID = m[1], m[2], t[1]
	return nil
}

// Verify checks the SET's signature with pub.
func (s *SET) Verify(pub *rsa.PublicKey) error {
	if s.jws == nil {
		return errors.New("set: not parsed")
	}
	if _, err := s.jws.Verify(pub); err != nil {
		return fmt.Errorf("set: signature: %w", err)
	}
	return nil
}

// AuthenticationTags are the tags of a submission's (or reply's) JWEs as the
// submit and accept events carry them.
type AuthenticationTags struct {
	Metadata    string            `json:"metadata"`
	Data        string            `json:"data,omitempty"`
	Attachments map[string]string `json:"attachments"`
}

// EventProblem is one problem of a reject event (RFC 7807 in form).
type EventProblem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

// checkAccept checks an accept event's payload: authenticationTags with a
// metadata tag and an attachments object (FITKO's accept-submission payload).
func checkAccept(payload json.RawMessage) (AuthenticationTags, error) {
	var p struct {
		AuthenticationTags *AuthenticationTags `json:"authenticationTags"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return AuthenticationTags{}, fmt.Errorf("accept payload: %w", err)
	}
	if p.AuthenticationTags == nil || p.AuthenticationTags.Metadata == "" {
		return AuthenticationTags{}, errors.New("accept payload: authenticationTags with metadata missing")
	}
	if p.AuthenticationTags.Attachments == nil {
		p.AuthenticationTags.Attachments = map[string]string{}
	}
	return *p.AuthenticationTags, nil
}

// checkReject checks a reject event's payload: a non-empty problems list,
// each with a type under ProblemTypePrefix, a title, a detail and an
// instance (docs.fitko.de, "Einreichung überprüfen": type and instance are
// to be taken over exactly as documented).
func checkReject(payload json.RawMessage) ([]EventProblem, error) {
	var p struct {
		Problems []EventProblem `json:"problems"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("reject payload: %w", err)
	}
	if len(p.Problems) == 0 {
		return nil, errors.New("reject payload: no problems")
	}
	for i, pr := range p.Problems {
		name, ok := strings.CutPrefix(pr.Type, ProblemTypePrefix)
		if !ok || name == "" {
			return nil, fmt.Errorf("reject payload: problem %d: type %q is not under %s", i, pr.Type, ProblemTypePrefix)
		}
		if pr.Title == "" || pr.Detail == "" || pr.Instance == "" {
			return nil, fmt.Errorf("reject payload: problem %d needs title, detail and instance", i)
		}
	}
	return p.Problems, nil
}

// platformEventLocked writes a platform SET into a case's event log. s.mu is
// held.
func (s *Server) platformEventLocked(caseID, sub, event string, payload any) {
	cl := s.cases[caseID]
	if cl == nil {
		return
	}
	claims := map[string]any{
		"$schema": SETPayloadSchema, "jti": NewUUID(), "iss": PlatformIssuer,
		"iat": s.opt.Now().Unix(), "sub": sub, "txn": "case:" + caseID,
		"events": map[string]any{event: payload},
	}
	set, err := SignSET(s.platform, s.platformKid, claims)
	if err != nil {
		s.opt.Logger.Error("signing a platform event", "event", event, "err", err)
		return
	}
	cl.Events = append(cl.Events, set)
}

// clockSkew is how far in the future a SET's iat may be.
const clockSkew = time.Minute
