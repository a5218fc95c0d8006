// Package dialconf holds the connection settings the adapters share: where a
// password comes from, which hosts count as loopback (the only place plain
// text is allowed), and TLS client settings with an optional private CA and
// an optional client certificate.
package dialconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
)

// maxSecretFile caps a password file; a password is a line.
const maxSecretFile = 64 << 10

// Password reads a secret from the environment variable env when set, else
// from file. Trailing newlines are dropped. Callers read it at each use and
// never log it.
func Password(file, env string) (string, error) {
	if env != "" {
		p, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("password variable %s is not set", env)
		}
		return p, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("password file %s is larger than %d bytes", file, maxSecretFile)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ClientTLS returns TLS settings for dialing serverName (TLS 1.2 or newer),
// trusting the PEM certificates in caFile instead of the system roots when
// caFile is set.
func ClientTLS(serverName, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// ClientCertificate makes cfg present the PEM certificate chain in certFile
// with the private key in keyFile to a server that asks for a client
// certificate. Both empty leaves cfg as it is; one without the other is an
// error. The key is read once, here, and never logged.
func ClientCertificate(cfg *tls.Config, certFile, keyFile string) error {
	if certFile == "" && keyFile == "" {
		return nil
	}
	if certFile == "" || keyFile == "" {
		return fmt.Errorf("client certificate: set both cert_file and key_file")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load client certificate %s: %w", certFile, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return nil
}
