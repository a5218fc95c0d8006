package erstest

import (
	"context"
	"crypto"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/trust"
)

// Year is 365 days, the unit of the simulated decade.
const Year = 365 * 24 * time.Hour

// Life is an evidence record's simulated life over data objects: built at
// T0 by TSA 1 (SHA-256), its timestamp renewed at T0+10y by TSA 2 under a
// new root because TSA 1's certificate is about to expire, and its hash
// tree renewed to SHA-512 at T0+10y+1h.
type Life struct {
	T0                       time.Time
	Data                     [][]byte
	CA1, CA2                 *CA
	TSA1, TSA2               *TSA
	Store                    *trust.Store
	Built, Renewed, Rehashed []*ers.EvidenceRecord
}

// RenewedAt and RehashedAt are the times of the two renewals after T0.
const (
	RenewedAt  = 10 * Year
	RehashedAt = 10*Year + time.Hour
)

// NewLife lives a life over data. TSA 1's certificate runs out 60 days
// after T0+10y, so that DefaultPolicy's 180-day margin asks for the
// timestamp renewal at T0+10y.
func NewLife(ctx context.Context, t0 time.Time, data [][]byte) (*Life, error) {
	day := 24 * time.Hour
	l := &Life{T0: t0, Data: data, Store: trust.NewStore()}
	var err error
	if l.CA1, err = NewCA("Poststelle Test Root 1", t0.Add(-day), t0.Add(30*Year)); err != nil {
		return nil, err
	}
	if l.TSA1, err = l.CA1.NewTSA("Poststelle Test TSA 1", t0.Add(-day), t0.Add(10*Year+60*day)); err != nil {
		return nil, err
	}
	if l.CA2, err = NewCA("Poststelle Test Root 2", t0.Add(10*Year-day), t0.Add(40*Year)); err != nil {
		return nil, err
	}
	if l.TSA2, err = l.CA2.NewTSA("Poststelle Test TSA 2", t0.Add(10*Year-day), t0.Add(20*Year)); err != nil {
		return nil, err
	}
	for _, ca := range []*CA{l.CA1, l.CA2} {
		c, err := cert.Parse(ca.Cert.Raw)
		if err != nil {
			return nil, err
		}
		l.Store.AddCertificate(c, ca.Cert.Subject.CommonName)
	}
	digests := func(h crypto.Hash) [][]byte {
		var out [][]byte
		for _, d := range data {
			x := h.New()
			x.Write(d)
			out = append(out, x.Sum(nil))
		}
		return out
	}
	l.TSA1.Now = func() time.Time { return t0 }
	if l.Built, err = ers.Build(ctx, l.TSA1, crypto.SHA256, digests(crypto.SHA256)); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	l.TSA2.Now = func() time.Time { return t0.Add(RenewedAt) }
	if l.Renewed, err = ers.TimestampRenewal(ctx, l.TSA2, l.Built...); err != nil {
		return nil, fmt.Errorf("timestamp renewal: %w", err)
	}
	l.TSA2.Now = func() time.Time { return t0.Add(RehashedAt) }
	var items []ers.RenewalItem
	for i, d := range digests(crypto.SHA512) {
		items = append(items, ers.RenewalItem{Record: l.Renewed[i], Digest: d})
	}
	if l.Rehashed, err = ers.HashTreeRenewal(ctx, l.TSA2, crypto.SHA512, items...); err != nil {
		return nil, fmt.Errorf("hash-tree renewal: %w", err)
	}
	return l, nil
}
