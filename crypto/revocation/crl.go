package revocation

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
)

// CRL returns the CRL published at dpURL for certificates of issuer, from
// the cache while it is current (until its nextUpdate), else fetched. A
// CRL must verify with issuer's key to be used or cached; one already past
// its nextUpdate is returned with a note (it still proves revocations, and
// the validation policy decides whether it is fresh enough) and fetched
// again after StaleRetry.
func (c *Client) CRL(ctx context.Context, dpURL string, issuer *cert.Certificate) (*trust.CRL, *trust.FetchedEvidence, error) {
	if strings.HasPrefix(strings.ToLower(dpURL), "ldap") {
		return nil, nil, fmt.Errorf("revocation: CRL %s: ldap distribution points are not supported", dpURL)
	}
	if _, err := httpURL(dpURL); err != nil {
		return nil, nil, fmt.Errorf("revocation: CRL: %w", err)
	}
	now := c.now()
	if e := c.crls.get(dpURL, now); e != nil {
		if err := e.crl.CheckSignatureFrom(issuer); err == nil {
			ev := c.crlEvidence(e, issuer, now)
			ev.FromCache = true
			return e.crl, ev, nil
		}
		// Same URL, another issuer (or a re-keyed CA): fetch afresh.
	}
	e, err := c.fetchShared(ctx, dpURL, now)
	if err != nil {
		return nil, nil, fmt.Errorf("revocation: CRL %s: %w", dpURL, err)
	}
	ev := c.crlEvidence(e, issuer, now)
	if err := e.crl.CheckSignatureFrom(issuer); err != nil {
		c.log.WarnContext(ctx, "CRL refused", "url", dpURL, "issuer", subjectName(issuer), "err", err)
		return nil, ev, fmt.Errorf("revocation: CRL %s: %w", dpURL, err)
	}
	if e.crl.ThisUpdate.After(now.Add(c.cfg.ClockSkew)) {
		return nil, ev, fmt.Errorf("revocation: CRL %s: %w: thisUpdate %s is in the future", dpURL, ErrStale, e.crl.ThisUpdate.Format(time.RFC3339))
	}
	c.crls.put(e)
	c.log.DebugContext(ctx, "CRL fetched", "url", dpURL, "bytes", len(e.der), "entries", len(e.crl.Entries))
	return e.crl, ev, nil
}

func (c *Client) crlEvidence(e *crlEntry, issuer *cert.Certificate, now time.Time) *trust.FetchedEvidence {
	ev := &trust.FetchedEvidence{Kind: trust.EvidenceCRL, Subject: subjectName(issuer), URL: e.url, FetchedAt: e.fetchedAt, DER: e.der}
	switch nu := e.crl.NextUpdate; {
	case nu.IsZero() && now.Sub(e.crl.ThisUpdate) > c.cfg.MaxAge:
		ev.Notes = append(ev.Notes, "CRL has no nextUpdate and thisUpdate is older than "+c.cfg.MaxAge.String())
	case !nu.IsZero() && nu.Add(c.cfg.ClockSkew).Before(now):
		ev.Notes = append(ev.Notes, "CRL is past its nextUpdate "+nu.Format(time.RFC3339))
	}
	return ev
}

func (c *Client) fetchCRL(ctx context.Context, dpURL string, now time.Time) (*crlEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dpURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/pkix-crl")
	body, err := c.do(ctx, req, c.cfg.MaxCRLBytes)
	if err != nil {
		return nil, err
	}
	return c.newCRLEntry(dpURL, body, now.UTC())
}

func (c *Client) newCRLEntry(dpURL string, der []byte, fetchedAt time.Time) (*crlEntry, error) {
	crl, err := trust.ParseCRL(der)
	if err != nil {
		return nil, err
	}
	return &crlEntry{url: dpURL, der: crl.Raw, crl: crl, fetchedAt: fetchedAt, expires: c.expiry(crl, fetchedAt)}, nil
}

// expiry is when a cached CRL must be fetched again: its nextUpdate, or
// StaleRetry after the fetch when that has passed, or MaxAge after the
// fetch when the CRL has none.
func (c *Client) expiry(crl *trust.CRL, fetchedAt time.Time) time.Time {
	switch {
	case crl.NextUpdate.IsZero():
		return fetchedAt.Add(c.cfg.MaxAge)
	case crl.NextUpdate.After(fetchedAt):
		return crl.NextUpdate
	default:
		return fetchedAt.Add(c.cfg.StaleRetry)
	}
}

// flight is one CRL fetch in progress that other callers wait for.
type flight struct {
	done    chan struct{}
	waiters int // guarded by Client.mu; for tests
	e       *crlEntry
	err     error
}

// fetchShared fetches dpURL once however many verifications need it at the
// same time: a CA's CRL can be megabytes, and a burst of messages signed
// under the same CA should not download it once each. Waiters share the
// first caller's result, including its failure.
func (c *Client) fetchShared(ctx context.Context, dpURL string, now time.Time) (*crlEntry, error) {
	c.mu.Lock()
	if f, ok := c.inflight[dpURL]; ok {
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.e, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[dpURL] = f
	c.mu.Unlock()
	f.e, f.err = c.fetchCRL(ctx, dpURL, now)
	c.mu.Lock()
	delete(c.inflight, dpURL)
	c.mu.Unlock()
	close(f.done)
	return f.e, f.err
}
