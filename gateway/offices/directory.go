package offices

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Role is what a principal may do.
type Role string

// The roles.
const (
	RoleOffice   Role = "office"
	RoleMailroom Role = "mailroom"
	RoleAdmin    Role = "admin"
	RoleAuditor  Role = "auditor"
)

// Principal is an authenticated user.
type Principal struct {
	User string
	Role Role
	// Offices lists the offices an office member belongs to.
	Offices []string
}

// Member reports whether p belongs to the office.
func (p *Principal) Member(officeID string) bool {
	return p != nil && p.Role == RoleOffice && slices.Contains(p.Offices, officeID)
}

// CanRead reports whether p may see the office's messages.
func (p *Principal) CanRead(officeID string) bool {
	if p == nil {
		return false
	}
	switch p.Role {
	case RoleAdmin, RoleAuditor:
		return true
	case RoleOffice:
		return p.Member(officeID)
	}
	return false
}

// CanAct reports whether p may acknowledge and answer the office's messages:
// only its members, since these are the office's legal acts.
func (p *Principal) CanAct(officeID string) bool { return p.Member(officeID) }

// CanViewTriage reports whether p may see the triage queue.
func (p *Principal) CanViewTriage() bool {
	return p != nil && (p.Role == RoleMailroom || p.Role == RoleAdmin || p.Role == RoleAuditor)
}

// CanAssign reports whether p may route a message to an office by hand.
func (p *Principal) CanAssign() bool {
	return p != nil && (p.Role == RoleMailroom || p.Role == RoleAdmin)
}

// CanManageRetention reports whether p may set and release legal holds and
// erase a message's contents: admins only, since an erasure cannot be
// undone and a hold overrides the retention rules.
func (p *Principal) CanManageRetention() bool { return p != nil && p.Role == RoleAdmin }

// CanReadRetention reports whether p may see a message's retention, hold
// and erasure: admins and auditors.
func (p *Principal) CanReadRetention() bool {
	return p != nil && (p.Role == RoleAdmin || p.Role == RoleAuditor)
}

// ErrUnauthenticated is returned for every failed authentication, whatever
// the reason, so that a caller cannot learn which users exist.
var ErrUnauthenticated = errors.New("offices: authentication failed")

// Directory authenticates users against the configuration. It is safe for
// concurrent use.
type Directory struct {
	cfg      Config
	accounts map[string]*account
	tokens   map[[32]byte]*account

	// Verified passwords are remembered, keyed by an HMAC under a key that
	// lives only in this process, so that HTTP Basic clients do not pay a
	// bcrypt or argon2 computation on every request.
	cacheKey [32]byte
	mu       sync.Mutex
	cache    map[string]cacheEntry
	now      func() time.Time
}

type account struct {
	principal Principal
	password  *passwordHash
}

type cacheEntry struct {
	mac     [32]byte
	expires time.Time
}

const (
	cacheTTL     = 5 * time.Minute
	cacheEntries = 10000
	// MaxPasswordBytes caps a password; bcrypt ignores bytes beyond 72 and
	// refuses more, so longer ones are refused before hashing.
	MaxPasswordBytes = 72
)

// NewDirectory indexes a validated configuration.
func NewDirectory(cfg Config) (*Directory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("offices: %w", err)
	}
	d := &Directory{cfg: cfg, accounts: map[string]*account{}, tokens: map[[32]byte]*account{},
		cache: map[string]cacheEntry{}, now: time.Now}
	if _, err := rand.Read(d.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("offices: cache key: %w", err)
	}
	add := func(m Member, role Role, office string) error {
		a := d.accounts[m.User]
		if a == nil {
			a = &account{principal: Principal{User: m.User, Role: role}}
			d.accounts[m.User] = a
		}
		if office != "" {
			a.principal.Offices = append(a.principal.Offices, office)
		}
		if m.PasswordHash != "" {
			ph, err := parsePasswordHash(m.PasswordHash)
			if err != nil {
				return err
			}
			if a.password != nil && a.password.raw != ph.raw {
				return fmt.Errorf("offices: user %q has two different password hashes", m.User)
			}
			a.password = ph
		}
		if m.TokenHash != "" {
			th, _ := parseTokenHash(m.TokenHash)
			if prev, ok := d.tokens[th]; ok && prev != a {
				return fmt.Errorf("offices: users %q and %q share a token", prev.principal.User, m.User)
			}
			d.tokens[th] = a
		}
		return nil
	}
	for _, o := range cfg.Offices {
		for _, m := range o.Members {
			if err := add(m, RoleOffice, o.ID); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range []struct {
		role Role
		ms   []Member
	}{{RoleMailroom, cfg.Mailroom}, {RoleAdmin, cfg.Admins}, {RoleAuditor, cfg.Auditors}} {
		for _, m := range l.ms {
			if err := add(m, l.role, ""); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// Config returns the configuration the directory was built from.
func (d *Directory) Config() Config { return d.cfg }

// Office returns a configured office.
func (d *Directory) Office(id string) (Office, bool) { return d.cfg.Office(id) }

// Authenticate checks a user's password.
func (d *Directory) Authenticate(ctx context.Context, user, password string) (Principal, error) {
	if err := ctx.Err(); err != nil {
		return Principal{}, err
	}
	if len(password) == 0 || len(password) > MaxPasswordBytes || len(user) > 128 {
		return Principal{}, ErrUnauthenticated
	}
	a := d.accounts[user]
	if a == nil || a.password == nil {
		// Spend the same time as a real check, so response times do not
		// tell which users exist.
		bcrypt.CompareHashAndPassword([]byte(timingDummy), []byte(password))
		return Principal{}, ErrUnauthenticated
	}
	mac := d.mac(user, password)
	if d.cached(user, mac) {
		return a.principal.clone(), nil
	}
	if !a.password.verify(password) {
		return Principal{}, ErrUnauthenticated
	}
	d.remember(user, mac)
	return a.principal.clone(), nil
}

// AuthenticateToken checks a bearer token.
func (d *Directory) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if err := ctx.Err(); err != nil {
		return Principal{}, err
	}
	if len(token) < 16 || len(token) > 512 {
		return Principal{}, ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(token))
	a := d.tokens[sum]
	if a == nil {
		return Principal{}, ErrUnauthenticated
	}
	return a.principal.clone(), nil
}

func (p Principal) clone() Principal {
	p.Offices = slices.Clone(p.Offices)
	return p
}

func (d *Directory) mac(user, password string) [32]byte {
	m := hmac.New(sha256.New, d.cacheKey[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (d *Directory) cached(user string, mac [32]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.cache[user]
	if !ok || d.now().After(e.expires) {
		return false
	}
	return subtle.ConstantTimeCompare(e.mac[:], mac[:]) == 1
}

func (d *Directory) remember(user string, mac [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cache) >= cacheEntries {
		clear(d.cache)
	}
	d.cache[user] = cacheEntry{mac: mac, expires: d.now().Add(cacheTTL)}
}

// timingDummy is a bcrypt hash (cost 10) of a random string nobody knows.
const timingDummy = "$2a$10$Ng0Vm640JBWEmeiNiYFna.yZ7GC6xIDzijaT3Paq2CnXSwxTv4KoO"

// passwordHash is a parsed password_hash.
type passwordHash struct {
	raw string
	// argon2id parameters; zero for bcrypt.
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

func parsePasswordHash(s string) (*passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, fmt.Errorf("bcrypt: %w", err)
		}
		return &passwordHash{raw: s}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	}
	return nil, errors.New("not a bcrypt ($2a$/$2b$) or argon2id ($argon2id$) hash")
}

// parseArgon2id reads the PHC string format:
// $argon2id$v=19$m=65536,t=3,p=2$<salt>$<key> (unpadded base64).
func parseArgon2id(s string) (*passwordHash, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[2] != "v=19" {
		return nil, errors.New("argon2id: want $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	ph := &passwordHash{raw: s}
	for _, kv := range strings.Split(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id: parameter %q: %w", kv, err)
		}
		switch k {
		case "m":
			ph.memory = uint32(n)
		case "t":
			ph.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, errors.New("argon2id: p above 255")
			}
			ph.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id: unknown parameter %q", k)
		}
	}
	// Bounds keep a hostile configuration from making each login cost
	// gigabytes or minutes.
	if ph.memory < 8*1024 || ph.memory > 1<<20 || ph.time < 1 || ph.time > 20 || ph.threads < 1 || ph.threads > 16 {
		return nil, errors.New("argon2id: parameters out of range (m 8 MiB–1 GiB, t 1–20, p 1–16)")
	}
	var err error
	if ph.salt, err = base64.RawStdEncoding.DecodeString(f[4]); err != nil || len(ph.salt) < 8 {
		return nil, errors.New("argon2id: bad salt")
	}
	if ph.key, err = base64.RawStdEncoding.DecodeString(f[5]); err != nil || len(ph.key) < 16 || len(ph.key) > 64 {
		return nil, errors.New("argon2id: bad key")
	}
	return ph, nil
}

func (ph *passwordHash) verify(password string) bool {
	if ph.memory == 0 {
		return bcrypt.CompareHashAndPassword([]byte(ph.raw), []byte(password)) == nil
	}
	k := argon2.IDKey([]byte(password), ph.salt, ph.time, ph.memory, ph.threads, uint32(len(ph.key)))
	return subtle.ConstantTimeCompare(k, ph.key) == 1
}

func parseTokenHash(s string) ([32]byte, error) {
	var out [32]byte
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return out, errors.New(`want "sha256:" and 64 hex digits`)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return out, errors.New(`want "sha256:" and 64 hex digits`)
	}
	copy(out[:], b)
	return out, nil
}

// HashPasswordArgon2id returns an argon2id hash (PHC string, m=64 MiB,
// t=3, p=2, 16-byte salt, 32-byte key) for a password_hash field: the
// recommended form for people who log in to the web UI.
func HashPasswordArgon2id(password string) (string, error) {
	if len(password) == 0 || len(password) > MaxPasswordBytes {
		return "", fmt.Errorf("offices: password must be 1 to %d bytes", MaxPasswordBytes)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("offices: salt: %w", err)
	}
	const memory, time, threads = 64 * 1024, 3, 2
	key := argon2.IDKey([]byte(password), salt, time, memory, threads, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", memory, time, threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// HashPassword returns a bcrypt hash for a password_hash field.
func HashPassword(password string) (string, error) {
	if len(password) == 0 || len(password) > MaxPasswordBytes {
		return "", fmt.Errorf("offices: password must be 1 to %d bytes", MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("offices: hash password: %w", err)
	}
	return string(h), nil
}

// HashToken returns the token_hash of a bearer token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewToken makes a random bearer token (256 bits, URL-safe).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("offices: make token: %w", err)
	}
	return "pst_" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Lookup returns the principal of a configured user without checking a
// credential: for a login an identity provider has already authenticated.
// A user the configuration does not list gets ErrUnauthenticated, so the
// provider authenticates and the configuration alone authorises.
func (d *Directory) Lookup(ctx context.Context, user string) (Principal, error) {
	if err := ctx.Err(); err != nil {
		return Principal{}, err
	}
	a := d.accounts[user]
	if user == "" || len(user) > 128 || a == nil {
		return Principal{}, ErrUnauthenticated
	}
	return a.principal.clone(), nil
}
