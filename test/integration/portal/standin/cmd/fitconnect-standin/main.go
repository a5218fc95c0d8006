// Command fitconnect-standin serves the FIT-Connect stand-in (package
// standin) on a loopback address for tests that run it as a process:
//
//	go run ./test/integration/portal/standin/cmd/fitconnect-standin -listen 127.0.0.1:0 -state DIR
//
// It provisions a sender and two destinations, writes what a client needs
// into DIR/standin.json (URLs, client ids and secrets, destination ids, the
// destinations' public keys and, for the destination's own software, its
// private decryption and signing JWKs) and, for a gateway configuration,
// the first destination's files: destination-client-secret,
// destination-decryption.jwk.json, destination-signing.jwk.json; the
// sender's secret in sender-client-secret. Its address goes to DIR/addr last,
// so a caller waits for that file. The fault hooks are under /_standin/
// (standin.ControlHandler) with the secret from standin.json. Keys are kept
// in DIR/keys.json (or -keys) and reused.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/poststelle/poststelle/test/integration/portal/standin"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fitconnect-standin:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	state := flag.String("state", "", "directory for standin.json, addr and the key files (required)")
	keysPath := flag.String("keys", "", "file of the generated keys (default DIR/keys.json)")
	ttl := flag.Duration("token-ttl", 30*time.Minute, "lifetime of an access token")
	flag.Parse()
	if *state == "" {
		return errors.New("-state is required")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %s: the stand-in listens on loopback only", *listen)
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return err
	}
	if *keysPath == "" {
		*keysPath = filepath.Join(*state, "keys.json")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	keys, err := standin.LoadOrGenerateKeys(*keysPath)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	srv, setup, err := standin.Provision(keys, base, standin.Options{TokenTTL: *ttl, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	secret := standin.NewUUID()
	setup.Control = &standin.Control{URL: base + "/_standin", Secret: secret}
	if err := writeState(*state, setup); err != nil {
		return err
	}
	api, control := srv.Handler(), srv.ControlHandler(secret)
	hs := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/_standin/") {
				control.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if err := writeFile(filepath.Join(*state, "addr"), []byte(ln.Addr().String()+"\n")); err != nil {
		return err
	}
	log.Info("fitconnect-standin serving", "addr", ln.Addr().String(), "state", *state)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

func writeState(dir string, setup *standin.Setup) error {
	data, err := json.MarshalIndent(setup, "", "  ")
	if err != nil {
		return err
	}
	d := setup.Destinations[0]
	files := map[string][]byte{
		"standin.json":              data,
		"sender-client-secret":      []byte(setup.Sender.ClientSecret + "\n"),
		"destination-client-secret": []byte(d.Party.ClientSecret + "\n"),
	}
	for name, key := range map[string]standin.JWK{"destination-decryption.jwk.json": d.DecryptionKey, "destination-signing.jwk.json": d.SigningKey} {
		b, err := json.MarshalIndent(key, "", "  ")
		if err != nil {
			return err
		}
		files[name] = b
	}
	for name, b := range files {
		if err := writeFile(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes atomically (temporary file, rename), 0600.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
