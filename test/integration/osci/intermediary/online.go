package intermediary

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"golang.org/x/crypto/ocsp"
)

// maxOCSPResponse caps an OCSP answer; a responder's is a few KiB.
const maxOCSPResponse = 64 << 10

// online is the inspection's online check (OSCI 1.2 OnlineResult): the OCSP
// responder the certificate names in its Authority Information Access is asked, and
// its answer, verified against the issuer, gives "ok" or "revoked" with the response
// kept for the process card. Only responders on loopback addresses are asked (this is
// a test fixture; the sample PKI's certificates name Governikus' responder, which is
// not); without one, or when the
// answer is unknown or does not verify, there is no online result, as when an
// intermediary made no online check.
func (s *Server) online(ctx context.Context, c, issuer *x509.Certificate) (string, []byte) {
	responder := loopbackResponder(c.OCSPServer)
	if responder == "" {
		return "", nil
	}
	raw, resp, err := s.askOCSP(ctx, responder, c, issuer)
	if err != nil {
		s.log.Info("intermediary: no online result", "subject", c.Subject.String(), "responder", responder, "err", err)
		return "", nil
	}
	switch resp.Status {
	case ocsp.Good:
		return "ok", raw
	case ocsp.Revoked:
		return "revoked", raw
	default:
		s.log.Info("intermediary: OCSP status unknown", "subject", c.Subject.String(), "responder", responder)
		return "", nil
	}
}

func loopbackResponder(urls []string) string {
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" {
			continue
		}
		if ip := net.ParseIP(p.Hostname()); ip != nil && ip.IsLoopback() {
			return u
		}
	}
	return ""
}

func (s *Server) askOCSP(ctx context.Context, responder string, c, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	req, err := ocsp.CreateRequest(c, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return nil, nil, fmt.Errorf("building the OCSP request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(req))
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hresp, err := s.cfg.HTTP.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("asking the OCSP responder: %w", err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the OCSP responder answered HTTP %d", hresp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, maxOCSPResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the OCSP answer: %w", err)
	}
	if len(raw) > maxOCSPResponse {
		return nil, nil, fmt.Errorf("the OCSP answer exceeds %d bytes", maxOCSPResponse)
	}
	resp, err := ocsp.ParseResponseForCert(raw, c, issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("the OCSP answer: %w", err)
	}
	return raw, resp, nil
}
