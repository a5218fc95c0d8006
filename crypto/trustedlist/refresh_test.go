package trustedlist

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist/lotltest"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// listServer serves trusted lists over HTTP on 127.0.0.1.
type listServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newListServer(t testing.TB) *listServer {
	s := &listServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *listServer) put(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

// lists is a LOTL (v6, pinned signer) pointing at DE (v5) and AT (v6),
// each signed by the key the LOTL names for it.
type lists struct {
	srv                    *listServer
	lotlSigner, de, at, ca *lotltest.Signer
}

func newLists(t testing.TB) *lists {
	l := &lists{srv: newListServer(t), lotlSigner: lotltest.NewSigner(t, "Test LOTL signer"),
		de: lotltest.NewSigner(t, "Test DE TL signer"), at: lotltest.NewSigner(t, "Test AT TL signer"), ca: lotltest.NewSigner(t, "Test QC CA")}
	l.publishLOTL(t, 6, 10, l.lotlSigner)
	l.srv.put("/de.xml", l.de.Sign(t, lotltest.National(5, 40, "DE", "Test QC CA (DE) 40", l.ca.Cert)))
	l.srv.put("/at.xml", l.at.Sign(t, lotltest.National(6, 7, "AT", "Test QC CA (AT) 7", l.ca.Cert)))
	return l
}

func (l *lists) publishLOTL(t testing.TB, v, seq int, signer *lotltest.Signer) {
	u := l.srv.URL
	ptrs := []lotltest.Pointer{
		{Territory: "EU", Location: u + "/lotl.xml", MIME: "application/vnd.etsi.tsl+xml", Signers: []*cert.Certificate{l.lotlSigner.Cert}},
		{Territory: "DE", Location: u + "/de.xml", MIME: "application/vnd.etsi.tsl+xml", Signers: []*cert.Certificate{l.de.Cert}},
		{Territory: "DE", Location: u + "/de.pdf", MIME: "application/pdf", Signers: []*cert.Certificate{l.de.Cert}},
		{Territory: "AT", Location: u + "/at.xml", MIME: "application/vnd.etsi.tsl+xml", Signers: []*cert.Certificate{l.at.Cert}},
	}
	l.srv.put("/lotl.xml", signer.Sign(t, lotltest.LOTL(v, seq, time.Now().Add(30*24*time.Hour), ptrs)))
}

func (l *lists) refresher(t testing.TB, dir string, onUpdate func(*Snapshot)) *Refresher {
	t.Helper()
	r, err := NewRefresher(RefreshConfig{LOTLURL: l.srv.URL + "/lotl.xml", CacheDir: dir, Timeout: 2 * time.Second, Interval: 20 * time.Millisecond},
		RefreshDeps{Pinned: []*cert.Certificate{l.lotlSigner.Cert}, OnUpdate: onUpdate})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// summary renders a snapshot as "name=seq@source" for comparison.
func summary(s *Snapshot) string {
	var parts []string
	add := func(name string, tl *TrustedList) {
		src := s.Sources[name]
		src, _, _ = strings.Cut(src, " ")
		parts = append(parts, name+"="+strconv.Itoa(tl.SequenceNumber)+"v"+strconv.Itoa(tl.Version)+"@"+src)
	}
	add(lotlCacheName, s.LOTL)
	for _, tl := range s.Lists {
		add("tl-"+tl.SchemeTerritory, tl)
	}
	return strings.Join(parts, " ")
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	l := newLists(t)
	dir := t.TempDir()
	r := l.refresher(t, dir, nil)

	snap, err := r.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(snap), "lotl=10v6@network tl-DE=40v5@network tl-AT=7v6@network"; got != want {
		t.Fatalf("fresh: %s", got)
	}
	if len(snap.Problems) != 0 || r.Current() != snap {
		t.Errorf("problems %v", snap.Problems)
	}

	// A tampered DE list is refused; the cached copy stays in use.
	good := l.srv.files["/de.xml"]
	l.srv.put("/de.xml", bytes.Replace(good, []byte("(DE) 40"), []byte("(DE) 41"), 1))
	snap, err = r.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if src := snap.Sources["tl-DE"]; !strings.HasPrefix(src, "cache (") || !strings.Contains(src, "digest") {
		t.Errorf("tampered DE source %q", src)
	}
	if n := serviceName(snap, "DE"); n != "Test QC CA (DE) 40" {
		t.Errorf("DE service %q after tampering", n)
	}

	// An older DE list, properly signed, is a rollback: refused.
	l.srv.put("/de.xml", l.de.Sign(t, lotltest.National(5, 39, "DE", "Test QC CA (DE) 39", l.ca.Cert)))
	snap, _ = r.Refresh(ctx)
	if src := snap.Sources["tl-DE"]; !strings.Contains(src, "sequence number older") {
		t.Errorf("rollback source %q", src)
	}

	// A newer one replaces it.
	l.srv.put("/de.xml", l.de.Sign(t, lotltest.National(5, 41, "DE", "Test QC CA (DE) 41", l.ca.Cert)))
	snap, _ = r.Refresh(ctx)
	if n := serviceName(snap, "DE"); n != "Test QC CA (DE) 41" || !strings.HasPrefix(snap.Sources["tl-DE"], "network") {
		t.Errorf("newer DE: %q from %q", n, snap.Sources["tl-DE"])
	}

	// A LOTL signed by a key that is not pinned is refused; the cached LOTL
	// is used.
	l.publishLOTL(t, 6, 11, lotltest.NewSigner(t, "Impostor"))
	snap, err = r.Refresh(ctx)
	if err != nil || snap.LOTL.SequenceNumber != 10 || !strings.Contains(snap.Sources[lotlCacheName], "does not verify") {
		t.Fatalf("impostor LOTL: %v %q", err, snap.Sources[lotlCacheName])
	}

	// Network down: a new refresher (a restart) works from the cache alone.
	l.srv.Close()
	r2 := l.refresher(t, dir, nil)
	snap, err = r2.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(snap); got != "lotl=10v6@cache tl-DE=41v5@cache tl-AT=7v6@cache" {
		t.Fatalf("offline: %s", got)
	}
	for _, tl := range snap.Lists {
		if tl.Signature == nil {
			t.Errorf("%s: cached list not verified", tl.SchemeTerritory)
		}
	}

	// No network and no cache: an error, never an empty trust set.
	if _, err := l.refresher(t, t.TempDir(), nil).Refresh(ctx); err == nil {
		t.Fatal("refresh without network and cache succeeded")
	}
}

func serviceName(s *Snapshot, territory string) string {
	for _, tl := range s.Lists {
		if tl.SchemeTerritory == territory {
			return Name(tl.Providers[0].Services[0].Current.Name)
		}
	}
	return ""
}

// A national list signed by a key the LOTL does not name for it is a
// problem of the snapshot, not an error of the refresh.
func TestRefreshWrongNationalSigner(t *testing.T) {
	l := newLists(t)
	l.srv.put("/at.xml", l.de.Sign(t, lotltest.National(6, 7, "AT", "AT signed by DE", l.ca.Cert)))
	snap, err := l.refresher(t, t.TempDir(), nil).Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Lists) != 1 || len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0], "tl-AT") ||
		!strings.Contains(snap.Problems[0], xmldsig.ErrSignature.Error()) {
		t.Fatalf("lists %d problems %v", len(snap.Lists), snap.Problems)
	}
}

// Run refreshes on its schedule, keeps going while the network is down
// (from the cache), and stops with its context.
func TestRunSchedule(t *testing.T) {
	l := newLists(t)
	updates := make(chan *Snapshot, 16)
	r := l.refresher(t, t.TempDir(), func(s *Snapshot) {
		select {
		case updates <- s:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	next := func() *Snapshot {
		select {
		case s := <-updates:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no refresh")
			return nil
		}
	}
	if s := next(); !strings.HasPrefix(s.Sources[lotlCacheName], "network") {
		t.Fatalf("first refresh from %q", s.Sources[lotlCacheName])
	}
	l.srv.Close()
	for s := next(); !strings.HasPrefix(s.Sources[lotlCacheName], "cache"); s = next() {
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}

func TestRefreshConfig(t *testing.T) {
	pinned := []*cert.Certificate{lotltest.NewSigner(t, "x").Cert}
	tests := []struct {
		name string
		cfg  RefreshConfig
		deps RefreshDeps
	}{
		{"no URL", RefreshConfig{CacheDir: "x"}, RefreshDeps{Pinned: pinned}},
		{"ftp URL", RefreshConfig{LOTLURL: "ftp://127.0.0.1/lotl.xml", CacheDir: "x"}, RefreshDeps{Pinned: pinned}},
		{"no cache dir", RefreshConfig{LOTLURL: "http://127.0.0.1/lotl.xml"}, RefreshDeps{Pinned: pinned}},
		{"nothing pinned", RefreshConfig{LOTLURL: "http://127.0.0.1/lotl.xml", CacheDir: "x"}, RefreshDeps{}},
	}
	for _, tc := range tests {
		if _, err := NewRefresher(tc.cfg, tc.deps); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// While no LOTL can be had at all, Run keeps retrying (with backoff) and
// picks the lists up once they appear.
func TestRunRetriesUntilAvailable(t *testing.T) {
	l := newLists(t)
	lotl := l.srv.files["/lotl.xml"]
	l.srv.mu.Lock()
	delete(l.srv.files, "/lotl.xml")
	l.srv.mu.Unlock()
	updates := make(chan *Snapshot, 1)
	r := l.refresher(t, t.TempDir(), func(s *Snapshot) {
		select {
		case updates <- s:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	time.Sleep(100 * time.Millisecond) // several failed attempts
	if r.Current() != nil {
		t.Fatal("snapshot without a LOTL")
	}
	l.srv.put("/lotl.xml", lotl)
	select {
	case s := <-updates:
		if s.LOTL.SequenceNumber != 10 || len(s.Lists) != 2 {
			t.Errorf("snapshot %s", summary(s))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh after the LOTL appeared")
	}
}

// The LOTL is read in both versions the EU has published (v5, and v6 since
// 2024); national lists of either version are covered by newLists.
func TestRefreshLOTLVersions(t *testing.T) {
	for _, v := range []int{5, 6} {
		l := newLists(t)
		l.publishLOTL(t, v, 12, l.lotlSigner)
		snap, err := l.refresher(t, t.TempDir(), nil).Refresh(context.Background())
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if snap.LOTL.Version != v || len(snap.Lists) != 2 {
			t.Errorf("v%d: %s", v, summary(snap))
		}
	}
	l := newLists(t)
	l.publishLOTL(t, 4, 12, l.lotlSigner)
	if _, err := l.refresher(t, t.TempDir(), nil).Refresh(context.Background()); !errors.Is(err, ErrVersion) {
		t.Errorf("v4 LOTL: %v, want ErrVersion", err)
	}
}
