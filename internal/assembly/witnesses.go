package assembly

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
)

// HeadPublisher builds the publisher of serve's witnesses: nil when none are
// configured.
func HeadPublisher(cfg *Config, g *Stores, logger *slog.Logger) (*witness.Publisher, error) {
	wc := cfg.Witnesses
	if wc == nil {
		return nil, nil
	}
	l, ok := g.log.(integrity.AuditedLog)
	if !ok {
		return nil, fmt.Errorf("witnesses: the %s log keeps no signed heads", cfg.EventStore.Backend)
	}
	logger = logger.With("component", "witness")
	p := &witness.Publisher{Signer: g.signer, Interval: wc.Interval, Logger: logger,
		Heads: func(ctx context.Context) ([]integrity.Head, error) {
			return integrity.CurrentHeads(ctx, l, g.signer.Public())
		},
		Record: func(ctx context.Context, o *witness.Outcome) error {
			return recordHeadPublished(ctx, g.log, cfg.Tenant, o)
		}}
	for _, d := range wc.Dir {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("witnesses.dir: %s is not a directory", d)
		}
		p.Witnesses = append(p.Witnesses, &witness.Dir{Path: d})
	}
	if wc.Email != nil {
		// E-mail witnesses go through the e-mail answers' relay.
		out := ChannelSection[smtpout.Config](cfg, channels.SMTPOutSection)
		if out == nil {
			return nil, errors.New("witnesses.email: needs smtp_out, the relay it sends through")
		}
		o, err := smtpout.New(*out, smtpout.Deps{Blobs: g.blobs, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("witnesses.email: smtp_out: %w", err)
		}
		from := wc.Email.From
		if from == "" {
			from = out.From
		}
		p.Witnesses = append(p.Witnesses, &witness.Mail{Relay: o, From: from, To: wc.Email.To})
	}
	for i, h := range wc.HTTP {
		w, err := witness.NewHTTP(h.URL, h.CAFile, h.Timeout)
		if err != nil {
			return nil, fmt.Errorf("witnesses.http[%d]: %w", i, err)
		}
		p.Witnesses = append(p.Witnesses, w)
	}
	switch {
	case wc.TSA != "":
		p.TSA = &tsp.Client{TSAs: []tsp.TSA{{Name: wc.TSA, URL: wc.TSA}}, Logger: logger}
	case len(cfg.Verification.TSAs) > 0:
		p.TSA = &tsp.Client{Attempts: cfg.Verification.TSAAttempts, RetryDelay: cfg.Verification.TSARetryDelay, Logger: logger}
		for _, t := range cfg.Verification.TSAs {
			p.TSA.TSAs = append(p.TSA.TSAs, tsp.TSA{Name: t.Name, URL: t.URL})
		}
	default:
		logger.Warn("witnesses: no TSA configured (witnesses.tsa or verification.tsas); heads are published without a provable time")
	}
	return p, nil
}

// recordHeadPublished appends the HeadPublished event of a round.
func recordHeadPublished(ctx context.Context, l eventstore.Log, tenant string, o *witness.Outcome) error {
	pub := o.Publication
	noteSum := sha256.Sum256(pub.Note)
	ev := &gateway.HeadPublished{NoteSHA256: hex.EncodeToString(noteSum[:]), Witnesses: o.Accepted}
	for _, h := range pub.Heads {
		ev.Heads = append(ev.Heads, gateway.PublishedHead{Partition: h.Partition, Size: h.Size, Root: base64.StdEncoding.EncodeToString(h.Root[:])})
	}
	for name := range o.Failed {
		ev.Failed = append(ev.Failed, name)
	}
	slices.Sort(ev.Failed)
	if pub.Stamp != nil {
		tokSum := sha256.Sum256(pub.Stamp.Raw)
		ev.TSA, ev.TokenSHA256, ev.GenTime = pub.Stamp.TSA, hex.EncodeToString(tokSum[:]), pub.Stamp.Token.Info.GenTime.UTC()
	}
	// One event per round: the note and the time of the round name it.
	id := sha256.Sum256(append(noteSum[:], pub.At.Format(time.RFC3339Nano)...))
	e, err := gateway.Encode(gateway.Meta{ID: "head-" + hex.EncodeToString(id[:16]), Tenant: tenant, Stream: gateway.HeadsStream}, ev)
	if err != nil {
		return err
	}
	_, err = l.Append(ctx, e)
	return err
}
