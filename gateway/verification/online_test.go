package verification

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/trustedlist/lotltest"
)

func TestOnlineConfigYAML(t *testing.T) {
	src := `
online:
  enabled: true
  timeout: 5s
  max_ocsp_bytes: 65536
  max_crl_bytes: 8388608
  cache_bytes: 33554432
  cache_dir: /var/cache/poststelle/revocation
  ocsp_get: true
  ocsp_hash: sha256
trusted_list_refresh:
  lotl_url: https://ec.europa.eu/tools/lotl/eu-lotl.xml
  pinned_certs: [/etc/poststelle/lotl-signers.pem]
  cache_dir: /var/cache/poststelle/tl
  refresh_interval: 6h
  territories: [DE]
`
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	o, r := cfg.Online, cfg.TrustedListRefresh
	if !o.Enabled || o.Timeout != 5*time.Second || o.MaxCRLBytes != 8<<20 || o.CacheDir == "" || !o.OCSPGet || o.OCSPHash != "sha256" {
		t.Errorf("online %+v", o)
	}
	if !r.Enabled() || r.Interval != 6*time.Hour || len(r.PinnedCerts) != 1 || r.CacheDir == "" || r.Territories[0] != "DE" {
		t.Errorf("refresh %+v", r)
	}
	var def Config
	if def.Online.Enabled || def.TrustedListRefresh.Enabled() {
		t.Error("online fetching must be off by default")
	}
}

// The refreshed lists become the verifier's trust; with the network gone, a
// restart takes them from the cache.
func TestTrustedListRefreshWiring(t *testing.T) {
	lotlSigner, deSigner, ca := lotltest.NewSigner(t, "LOTL signer"), lotltest.NewSigner(t, "DE signer"), lotltest.NewSigner(t, "QC CA")
	files := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	files["/lotl.xml"] = lotlSigner.Sign(t, lotltest.LOTL(6, 3, time.Now().Add(24*time.Hour), []lotltest.Pointer{
		{Territory: "DE", Location: srv.URL + "/de.xml", MIME: "application/vnd.etsi.tsl+xml", Signers: []*cert.Certificate{deSigner.Cert}}}))
	files["/de.xml"] = deSigner.Sign(t, lotltest.National(5, 40, "DE", "QC CA", ca.Cert))
	pinned := filepath.Join(t.TempDir(), "lotl-signers.pem")
	if err := os.WriteFile(pinned, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lotlSigner.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		TrustedListRefresh: trustedlist.RefreshConfig{LOTLURL: srv.URL + "/lotl.xml", CacheDir: t.TempDir(), Interval: time.Hour},
		TLSigners:          []string{pinned}, // pinned_certs default to the tl_signers
	}
	start := func() *verifier {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		v := &verifier{cfg: cfg, deps: Deps{Logger: slog.New(slog.DiscardHandler)}, trust: trust.NewStore()}
		if err := v.startOnline(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		return v
	}
	hasCA := func(v *verifier) bool {
		for _, a := range v.currentTrust().Anchors() {
			if a.Cert.Equal(ca.Cert) && a.Source == "TL DE #40" && len(a.Services) == 1 {
				return true
			}
		}
		return false
	}
	if v := start(); !hasCA(v) {
		t.Fatal("refreshed DE list not in the trust store")
	}
	srv.Close()
	if v := start(); !hasCA(v) {
		t.Fatal("cached DE list not used with the network down")
	}
}
