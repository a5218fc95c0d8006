package dialconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// issued is a key pair made at test time, as PEM files and as a tls.Certificate.
type issued struct {
	x        *x509.Certificate
	key      *ecdsa.PrivateKey
	certFile string
	keyFile  string
}

func issue(t *testing.T, dir, name string, parent *issued, usage x509.ExtKeyUsage) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		signer, signerKey = parent.x, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	it := &issued{x: x, key: key, certFile: filepath.Join(dir, name+".pem"), keyFile: filepath.Join(dir, name+".key")}
	os.WriteFile(it.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(it.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return it
}

// TestClientCertificate handshakes with a server that requires a client
// certificate from its CA, as a De-Mail provider's gateway does: with the
// configured certificate the handshake succeeds and the server sees it,
// without one the server refuses.
func TestClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := issue(t, dir, "ca", nil, 0)
	server := issue(t, dir, "server", ca, x509.ExtKeyUsageServerAuth)
	client := issue(t, dir, "client", ca, x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.x)
	srvPair, err := tls.LoadX509KeyPair(server.certFile, server.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvPair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			} else {
				seen <- ""
			}
			c.Close()
		}
	}()
	dial := func(withCert bool) error {
		cfg, err := ClientTLS("localhost", ca.certFile)
		if err != nil {
			t.Fatal(err)
		}
		if withCert {
			if err := ClientCertificate(cfg, client.certFile, client.keyFile); err != nil {
				t.Fatal(err)
			}
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports the server's refusal on the first read.
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		return err
	}
	if err := dial(true); err != nil && err.Error() != "EOF" {
		t.Fatalf("with client certificate: %v", err)
	}
	if cn := <-seen; cn != "client" {
		t.Fatalf("server saw client certificate %q, want client", cn)
	}
	dial(false)
	if cn := <-seen; cn != "" {
		t.Fatalf("server accepted a client without certificate (%q)", cn)
	}
}

func TestClientCertificateConfig(t *testing.T) {
	dir := t.TempDir()
	ca := issue(t, dir, "ca", nil, 0)
	for _, tc := range []struct {
		name, cert, key string
		ok              bool
	}{
		{"neither", "", "", true},
		{"both", ca.certFile, ca.keyFile, true},
		{"cert only", ca.certFile, "", false},
		{"key only", "", ca.keyFile, false},
		{"missing file", filepath.Join(dir, "nope.pem"), ca.keyFile, false},
		{"key for another cert", ca.certFile, issue(t, dir, "other", nil, 0).keyFile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{}
			err := ClientCertificate(cfg, tc.cert, tc.key)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && (len(cfg.Certificates) == 1) != (tc.cert != "") {
				t.Fatalf("certificates = %d", len(cfg.Certificates))
			}
		})
	}
}
