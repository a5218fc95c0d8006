package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/gateway/offices"
)

// session is one logged-in browser. The id only ever travels in the
// HttpOnly cookie; the CSRF token goes into every form and must come back
// with every POST.
type session struct {
	id      string
	csrf    string
	p       offices.Principal
	started time.Time
	seen    time.Time
}

// sessions keeps the sessions of one server in memory: a restart logs
// everybody out, which is the safe direction.
type sessions struct {
	mu        sync.Mutex
	byID      map[string]*session
	idle, max time.Duration
	now       func() time.Time
}

const maxSessions = 10000

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: idle, max: max, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a new session for p; a fresh id at every login, so that an
// id planted before the login is worth nothing after it.
func (s *sessions) start(p offices.Principal) *session {
	now := s.now()
	ss := &session{id: randomToken(), csrf: randomToken(), p: p, started: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		s.expireLocked(now)
	}
	if len(s.byID) >= maxSessions {
		// Full of live sessions: drop the oldest rather than refuse logins.
		var oldest *session
		for _, x := range s.byID {
			if oldest == nil || x.seen.Before(oldest.seen) {
				oldest = x
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[ss.id] = ss
	return ss
}

// get returns the live session of an id and marks it used.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if now.Sub(ss.seen) > s.idle || now.Sub(ss.started) > s.max {
		delete(s.byID, id)
		return nil, false
	}
	ss.seen = now
	cp := *ss
	return &cp, true
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

func (s *sessions) expireLocked(now time.Time) {
	for id, ss := range s.byID {
		if now.Sub(ss.seen) > s.idle || now.Sub(ss.started) > s.max {
			delete(s.byID, id)
		}
	}
}

// sameToken compares tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// limiter counts failed logins per key (user name, client address) in a
// fixed window: a key with too many failures is locked until its window
// ends, whether or not the next password is right.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string]*failures
}

type failures struct {
	n     int
	since time.Time
}

const maxLimiterKeys = 100000

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, fails: map[string]*failures{}}
}

// locked reports whether any of the keys is locked.
func (l *limiter) locked(keys ...string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if f, ok := l.fails[k]; ok {
			if now.Sub(f.since) > l.window {
				delete(l.fails, k)
				continue
			}
			if f.n >= l.limit(k) {
				return true
			}
		}
	}
	return false
}

// limit is a key's allowance: an address gets four times a user's, since
// many people may share one (a town hall behind one NAT).
func (l *limiter) limit(key string) int {
	if strings.HasPrefix(key, "addr:") {
		return 4 * l.max
	}
	return l.max
}

// fail counts a failed login against every key.
func (l *limiter) fail(keys ...string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxLimiterKeys {
		for k, f := range l.fails {
			if now.Sub(f.since) > l.window {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := l.fails[k]
		if !ok || now.Sub(f.since) > l.window {
			if len(l.fails) >= maxLimiterKeys {
				continue // still full: the other keys keep counting
			}
			f = &failures{since: now}
			l.fails[k] = f
		}
		f.n++
	}
}

// succeed forgets the user's failures (not the address's: one right
// password must not reset an address that guesses many users).
func (l *limiter) succeed(user string) {
	l.mu.Lock()
	delete(l.fails, user)
	l.mu.Unlock()
}
