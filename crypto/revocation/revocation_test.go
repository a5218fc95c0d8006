package revocation

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/trust"
)

func newClient(t testing.TB, cfg Config, now func() time.Time) *Client {
	t.Helper()
	cfg.Enabled = true
	c, err := New(cfg, Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOCSPAgainstOpenSSL(t *testing.T) {
	s := newServers(t)
	p := s.pki
	tests := []struct {
		name       string
		signer     string
		leaf       string
		cfg        Config
		wantStatus string
		wantReason int
		wantErr    error
		wantNote   string
	}{
		{name: "CA signs, good, POST", signer: "ca", leaf: "good", wantStatus: trust.OCSPGood, wantReason: -1},
		{name: "CA signs, revoked", signer: "ca", leaf: "revoked", wantStatus: trust.OCSPRevoked, wantReason: 1},
		{name: "GET, SHA-256 CertID", signer: "ca", leaf: "good", cfg: Config{OCSPGet: true, OCSPHash: "sha256"}, wantStatus: trust.OCSPGood, wantReason: -1},
		{name: "delegated responder", signer: "responder", leaf: "revoked", wantStatus: trust.OCSPRevoked, wantReason: 1, wantNote: "id-pkix-ocsp-nocheck"},
		{name: "responder without id-kp-OCSPSigning", signer: "noeku", leaf: "good", wantErr: ErrResponder},
		{name: "responder of another CA", signer: "rogueresp", leaf: "good", wantErr: ErrResponder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.ocsp.mu.Lock()
			s.ocsp.signer = tc.signer
			s.ocsp.mu.Unlock()
			gets := s.ocsp.gets.Load()
			c := newClient(t, tc.cfg, nil)
			r, ev, err := c.OCSP(context.Background(), s.ocspURL, p.cert[tc.leaf], p.cert["ca"])
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if ev == nil || len(ev.DER) == 0 {
					t.Error("refused response not returned as evidence")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Responses[0]; got.Status != tc.wantStatus || got.Reason != tc.wantReason {
				t.Errorf("status %s reason %d, want %s %d", got.Status, got.Reason, tc.wantStatus, tc.wantReason)
			}
			if ev.Kind != trust.EvidenceOCSP || ev.URL != s.ocspURL || ev.FetchedAt.IsZero() || !bytes.Equal(ev.DER, s.ocsp.last) {
				t.Errorf("evidence %+v", ev)
			}
			if tc.wantNote != "" && !strings.Contains(strings.Join(ev.Notes, ";"), tc.wantNote) {
				t.Errorf("notes %q, want %q", ev.Notes, tc.wantNote)
			}
			if tc.wantNote == "" && len(ev.Notes) != 0 {
				t.Errorf("unexpected notes %q (openssl echoes the nonce)", ev.Notes)
			}
			if h := r.Responses[0].HashAlgorithm; tc.cfg.OCSPHash == "sha256" && h != crypto.SHA256 {
				t.Errorf("CertID hash %v, want SHA-256", h)
			}
			if tc.cfg.OCSPGet && s.ocsp.gets.Load() != gets+1 {
				t.Error("request not sent by GET")
			}
		})
	}
}

// A response captured earlier and replayed carries another request's nonce.
func TestOCSPReplayedNonce(t *testing.T) {
	s := newServers(t)
	c := newClient(t, Config{}, nil)
	if _, _, err := c.OCSP(context.Background(), s.ocspURL, s.pki.cert["good"], s.pki.cert["ca"]); err != nil {
		t.Fatal(err)
	}
	replay := httptest.NewServer(staticHandler(s.ocsp.last))
	defer replay.Close()
	_, _, err := c.OCSP(context.Background(), replay.URL, s.pki.cert["good"], s.pki.cert["ca"])
	if !errors.Is(err, ErrNonce) {
		t.Fatalf("replayed response: %v, want nonce mismatch", err)
	}
}

// A pre-produced response without nonce is accepted with a note, or
// refused under RequireNonce.
func TestOCSPWithoutNonce(t *testing.T) {
	s := newServers(t)
	d := s.pki.dir
	run(t, d, nil, "ocsp", "-issuer", "ca.pem", "-cert", "good.pem", "-no_nonce", "-reqout", "nononce.req")
	run(t, d, nil, "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key",
		"-reqin", "nononce.req", "-respout", "nononce.resp", "-nmin", "60")
	srv := httptest.NewServer(staticHandler(s.pki.read("nononce.resp")))
	defer srv.Close()
	_, ev, err := newClient(t, Config{}, nil).OCSP(context.Background(), srv.URL, s.pki.cert["good"], s.pki.cert["ca"])
	if err != nil || !strings.Contains(strings.Join(ev.Notes, ";"), "did not echo the nonce") {
		t.Fatalf("err %v notes %v", err, ev)
	}
	_, _, err = newClient(t, Config{RequireNonce: true}, nil).OCSP(context.Background(), srv.URL, s.pki.cert["good"], s.pki.cert["ca"])
	if !errors.Is(err, ErrNonce) {
		t.Fatalf("require_nonce: %v", err)
	}
}

func TestOCSPFreshness(t *testing.T) {
	s := newServers(t)
	tests := []struct {
		name    string
		nextMin string
		now     time.Time
		wantErr bool
	}{
		{name: "within nextUpdate", nextMin: "60", now: time.Now().Add(30 * time.Minute)},
		{name: "past nextUpdate", nextMin: "60", now: time.Now().Add(2 * time.Hour), wantErr: true},
		{name: "thisUpdate in the future", nextMin: "60", now: time.Now().Add(-time.Hour), wantErr: true},
		{name: "no nextUpdate, young", now: time.Now().Add(time.Hour)},
		{name: "no nextUpdate, older than max_age", now: time.Now().Add(25 * time.Hour), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.ocsp.mu.Lock()
			s.ocsp.nextMin = tc.nextMin
			s.ocsp.mu.Unlock()
			c := newClient(t, Config{}, func() time.Time { return tc.now })
			_, _, err := c.OCSP(context.Background(), s.ocspURL, s.pki.cert["good"], s.pki.cert["ca"])
			if tc.wantErr != errors.Is(err, ErrStale) {
				t.Fatalf("err %v, want stale %v", err, tc.wantErr)
			}
		})
	}
}

func staticHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
}

// Hostile or broken responders: each ends in a clear error, in bounded time.
func TestOCSPBadResponders(t *testing.T) {
	s := newServers(t)
	block := make(chan struct{})
	tests := []struct {
		name    string
		handler http.Handler
		want    string
	}{
		{"garbage", staticHandler([]byte("<html>hello</html>")), "malformed OCSPResponse"},
		{"tryLater", staticHandler([]byte{0x30, 0x03, 0x0a, 0x01, 0x03}), "tryLater"},
		{"unauthorized", staticHandler([]byte{0x30, 0x03, 0x0a, 0x01, 0x06}), "unauthorized"},
		{"oversize", staticHandler(bytes.Repeat([]byte{0x30}, DefaultMaxOCSPBytes+1)), "exceeds the cap"},
		{"HTTP 500", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }), "HTTP status 500"},
		{"hangs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
		}), "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c := newClient(t, Config{Timeout: 300 * time.Millisecond}, nil)
			_, _, err := c.OCSP(context.Background(), srv.URL, s.pki.cert["good"], s.pki.cert["ca"])
			if tc.name == "hangs" {
				close(block)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := newClient(t, Config{}, nil).OCSP(context.Background(), "ldap://127.0.0.1/x", s.pki.cert["good"], s.pki.cert["ca"]); err == nil {
		t.Error("ldap responder URL accepted")
	}
}

func TestCRLFetchAndCache(t *testing.T) {
	s := newServers(t)
	p := s.pki
	dir := t.TempDir()
	now := time.Now()
	c := newClient(t, Config{CacheDir: dir}, func() time.Time { return now })
	crl, ev, err := c.CRL(context.Background(), s.crlURL, p.cert["ca"])
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := crl.Lookup(p.cert["revoked"].SerialNumber); !ok || e.Reason != 1 {
		t.Errorf("revoked entry %+v %v", e, ok)
	}
	if _, ok := crl.Lookup(p.cert["good"].SerialNumber); ok {
		t.Error("good certificate listed")
	}
	if ev.Kind != trust.EvidenceCRL || ev.URL != s.crlURL || ev.FromCache || len(ev.DER) == 0 {
		t.Errorf("evidence %+v", ev)
	}
	// Second use: from memory, no fetch.
	if _, ev, err = c.CRL(context.Background(), s.crlURL, p.cert["ca"]); err != nil || !ev.FromCache || s.crlHits.Load() != 1 {
		t.Fatalf("second fetch: err %v cache %v hits %d", err, ev != nil && ev.FromCache, s.crlHits.Load())
	}
	// A new client (restart) with the server gone: from disk.
	s.crlSrv.Close()
	c2 := newClient(t, Config{CacheDir: dir}, func() time.Time { return now })
	if _, ev, err = c2.CRL(context.Background(), s.crlURL, p.cert["ca"]); err != nil || !ev.FromCache {
		t.Fatalf("disk cache: %v", err)
	}
	// Past nextUpdate (7 days) the cache is not used: the fetch fails now.
	later := now.Add(8 * 24 * time.Hour)
	c3 := newClient(t, Config{CacheDir: dir}, func() time.Time { return later })
	if _, _, err = c3.CRL(context.Background(), s.crlURL, p.cert["ca"]); err == nil {
		t.Fatal("expired cached CRL used")
	}
}

func TestCRLRefused(t *testing.T) {
	s := newServers(t)
	p := s.pki
	rogue := pemToDER(t, p.read("roguecrl.pem"))
	s.extraMux.Handle("/rogue.crl", staticHandler(rogue))
	s.extraMux.Handle("/big.crl", staticHandler(bytes.Repeat([]byte{0x30}, 2048)))
	s.extraMux.Handle("/garbage.crl", staticHandler([]byte("not a CRL")))
	tests := []struct {
		name, url string
		cfg       Config
		want      string
	}{
		{"signed by another CA", s.crlSrv.URL + "/rogue.crl", Config{}, "issuer name does not match"},
		{"oversize", s.crlSrv.URL + "/big.crl", Config{MaxCRLBytes: 1024}, "exceeds the cap"},
		{"garbage", s.crlSrv.URL + "/garbage.crl", Config{}, "parse CRL"},
		{"ldap", "ldap://127.0.0.1/cn=ca?certificateRevocationList", Config{}, "ldap distribution points are not supported"},
		{"https", "https://127.0.0.1/ca.crl", Config{}, "only http"},
		{"not found", s.crlSrv.URL + "/missing.crl", Config{}, "HTTP status 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.cfg, nil)
			_, _, err := c.CRL(context.Background(), tc.url, p.cert["ca"])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if c.crls.get(tc.url, time.Now()) != nil {
				t.Error("refused CRL cached")
			}
		})
	}
}

func TestCacheByteCap(t *testing.T) {
	s := newServers(t)
	der := *s.crlBody.Load()
	c := newClient(t, Config{}, nil)
	e1, err := c.newCRLEntry("http://127.0.0.1/a", der, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := c.newCRLEntry("http://127.0.0.1/b", der, time.Now())
	e3, _ := c.newCRLEntry("http://127.0.0.1/c", der, time.Now())
	cache := newCRLCache(2*e1.size(), "")
	cache.put(e1)
	cache.put(e2)
	cache.get(e1.url, time.Now()) // e1 most recently used
	cache.put(e3)
	if cache.get(e2.url, time.Now()) != nil || cache.get(e1.url, time.Now()) == nil || cache.get(e3.url, time.Now()) == nil {
		t.Error("least recently used entry not evicted")
	}
	if cache.used > cache.max {
		t.Errorf("used %d > max %d", cache.used, cache.max)
	}
	tiny := newCRLCache(10, "")
	tiny.put(e1)
	if tiny.get(e1.url, time.Now()) != nil || tiny.used != 0 {
		t.Error("entry larger than the cache kept")
	}
}

// FetchRevocation falls back to the CRL when the responder is down, and
// trust validation uses what it fetched.
func TestValidateOnline(t *testing.T) {
	s := newServers(t)
	p := s.pki
	store := trust.NewStore()
	store.AddCertificate(p.cert["ca"], "test")
	c := newClient(t, Config{}, nil)
	at := time.Now()
	tests := []struct {
		name     string
		leaf     string
		online   bool
		ocspDown bool
		// storeSource sets the source on the store instead of the input.
		storeSource bool
		wantInd     string
		wantSub     string
		wantKind    []string
	}{
		{name: "offline: no revocation data", leaf: "good", wantInd: trust.Indeterminate, wantSub: trust.SubTryLater},
		{name: "good via OCSP", leaf: "good", online: true, wantInd: trust.Passed, wantKind: []string{trust.EvidenceOCSP}},
		{name: "revoked via OCSP", leaf: "revoked", online: true, wantInd: trust.Indeterminate, wantSub: trust.SubRevokedNoPOE, wantKind: []string{trust.EvidenceOCSP}},
		{name: "revoked via CRL, responder down", leaf: "revoked", online: true, ocspDown: true, wantInd: trust.Indeterminate, wantSub: trust.SubRevokedNoPOE, wantKind: []string{trust.EvidenceCRL}},
		{name: "OCSP unknown, good via CRL", leaf: "stranger", online: true, wantInd: trust.Passed, wantKind: []string{trust.EvidenceOCSP, trust.EvidenceCRL}},
		{name: "store default source", leaf: "good", storeSource: true, wantInd: trust.Passed, wantKind: []string{trust.EvidenceOCSP}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf := p.cert[tc.leaf]
			if tc.ocspDown {
				leaf = p.cert["revokeddown"]
			}
			in := trust.Input{Leaf: leaf, Time: at}
			if tc.online {
				in.Online = c
			}
			st := store
			if tc.storeSource {
				st = store.WithRevocationSource(c)
			}
			res := st.ValidateContext(context.Background(), in)
			if res.Indication != tc.wantInd || res.SubIndication != tc.wantSub {
				t.Fatalf("%s/%s, want %s/%s: %+v", res.Indication, res.SubIndication, tc.wantInd, tc.wantSub, res.Checks)
			}
			var kinds []string
			for _, ev := range res.Fetched {
				kinds = append(kinds, ev.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.wantKind, ",") {
				t.Errorf("fetched %v, want %v", kinds, tc.wantKind)
			}
			var listed int
			for _, ch := range res.Checks {
				if ch.Name == "revocationFetched" && ch.Result == trust.Info && strings.Contains(ch.Detail, "http://127.0.0.1") {
					listed++
				}
			}
			if listed != len(res.Fetched) {
				t.Errorf("%d fetched objects, %d listed in the checks", len(res.Fetched), listed)
			}
		})
	}
}

var _ trust.RevocationSource = (*Client)(nil)

// Concurrent verifications needing the same CRL download it once.
func TestCRLFetchedOnceForConcurrentCallers(t *testing.T) {
	s := newServers(t)
	release := make(chan struct{})
	var hits atomic.Int32
	crl := *s.crlBody.Load()
	s.extraMux.Handle("/slow.crl", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		w.Write(crl)
	}))
	c := newClient(t, Config{}, nil)
	const callers = 8
	u := s.crlSrv.URL + "/slow.crl"
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, _, err := c.CRL(context.Background(), u, s.pki.cert["ca"])
			errs <- err
		}()
	}
	// Release the download once every other caller waits for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("callers did not join the download in progress")
		}
		c.mu.Lock()
		f := c.inflight[u]
		n := 0
		if f != nil {
			n = f.waiters
		}
		c.mu.Unlock()
		if n == callers-1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
}
