// Package witness publishes the log's signed tree head outside the gateway's
// data directory, so that cutting off the newest events together with their
// checkpoints, a rewrite or a fork contradicts a head someone else holds
// (poststelle log verify --head). A Publisher signs the current head on a
// schedule, has it timestamped by an RFC 3161 TSA, and hands note and token
// to every configured Witness: a directory on another volume, e-mail to the
// auditors, an HTTP endpoint.
package witness

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// Publication is one signed head as handed to the witnesses.
type Publication struct {
	// Note is the head file: one signed note per partition (integrity.SignHeads).
	Note  []byte
	Heads []integrity.Head
	// Response is an RFC 3161 TimeStampResp over SHA-256(Note), stored as
	// the .tsr beside the note; nil when no TSA answered or none is set.
	Response []byte
	// Stamp is the parsed timestamp behind Response.
	Stamp *tsp.Stamp
	// Size is the number of events the head covers, over all partitions.
	Size int64
	At   time.Time
}

// Witness keeps heads somewhere the gateway's own disk cannot rewrite.
type Witness interface {
	// Name identifies the witness in logs and HeadPublished events.
	Name() string
	Publish(ctx context.Context, p *Publication) error
}

// Outcome reports one round of publication.
type Outcome struct {
	Publication *Publication
	Accepted    []string
	Failed      map[string]error
}

// Publisher signs and publishes the log's head.
type Publisher struct {
	// Heads returns the current heads of the log (integrity.CurrentHeads).
	Heads  func(ctx context.Context) ([]integrity.Head, error)
	Signer crypto.Signer
	// TSA timestamps each head; nil publishes heads without a token.
	TSA       *tsp.Client
	Witnesses []Witness
	// Record, when set, is told about every round in which a witness
	// accepted the head (serve appends a HeadPublished event). Appending
	// moves the log past the head just published; the next head covers it.
	Record   func(ctx context.Context, o *Outcome) error
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// DefaultInterval is how often serve publishes when no interval is set.
const DefaultInterval = time.Hour

// shutdownTimeout bounds the last publication when serve stops.
const shutdownTimeout = 30 * time.Second

// Run publishes at once, then every Interval, and a last time when ctx
// ends. Failures are logged and retried at the next tick; Run never fails.
func (p *Publisher) Run(ctx context.Context) error {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	p.publishLogged(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.publishLogged(ctx)
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			p.publishLogged(last)
			cancel()
			return nil
		}
	}
}

func (p *Publisher) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Publisher) publishLogged(ctx context.Context) {
	o, err := p.Publish(ctx)
	log := p.logger()
	if err != nil {
		log.Error("witness: head not published; retrying at the next tick", "err", err)
		return
	}
	for name, err := range o.Failed {
		log.Error("witness: head not accepted; retrying at the next tick", "witness", name, "size", o.Publication.Size, "err", err)
	}
	if len(o.Accepted) > 0 {
		log.Info("witness: head published", "size", o.Publication.Size, "witnesses", o.Accepted,
			"timestamped", o.Publication.Response != nil)
	}
}

// Publish runs one round: sign the current head, timestamp it, hand it to
// every witness, record the outcome. It fails only when no head could be
// made; a witness's failure is in the Outcome.
func (p *Publisher) Publish(ctx context.Context) (*Outcome, error) {
	pub, err := p.sign(ctx)
	if err != nil {
		return nil, err
	}
	o := &Outcome{Publication: pub, Failed: map[string]error{}}
	for _, w := range p.Witnesses {
		if err := w.Publish(ctx, pub); err != nil {
			o.Failed[w.Name()] = err
			continue
		}
		o.Accepted = append(o.Accepted, w.Name())
	}
	if len(o.Accepted) > 0 && p.Record != nil {
		if err := p.Record(ctx, o); err != nil {
			p.logger().Error("witness: record publication", "err", err)
		}
	}
	return o, nil
}

func (p *Publisher) sign(ctx context.Context) (*Publication, error) {
	heads, err := p.Heads(ctx)
	if err != nil {
		return nil, fmt.Errorf("witness: current head: %w", err)
	}
	text, err := integrity.SignHeads(p.Signer, heads)
	if err != nil {
		return nil, fmt.Errorf("witness: sign head: %w", err)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	pub := &Publication{Note: text, Heads: heads, At: now().UTC()}
	for _, h := range heads {
		pub.Size += h.Size
	}
	if p.TSA != nil {
		// A head without a provable time still catches truncation, so the
		// round goes on; the failure is logged and the next head retried.
		digest := sha256.Sum256(text)
		st, err := p.TSA.Timestamp(ctx, digest[:])
		if err != nil {
			p.logger().Warn("witness: head not timestamped", "err", err)
		} else {
			pub.Stamp, pub.Response = st, GrantedResponse(st.Raw)
		}
	}
	return pub, nil
}

// GrantedResponse wraps a TimeStampToken into the TimeStampResp a TSA sent
// (status granted), the form `openssl ts -reply` and -verify read.
func GrantedResponse(token []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(tsp.StatusGranted) })
		b.AddBytes(token)
	})
	return b.BytesOrPanic()
}

// ParseStamp reads a .tsr: a TimeStampResp, or a bare TimeStampToken.
func ParseStamp(b []byte) (*tsp.Token, error) {
	if resp, err := tsp.ParseResponse(b); err == nil {
		if resp.Token == nil {
			return nil, fmt.Errorf("witness: timestamp response without a token (status %d)", resp.Status)
		}
		return resp.Token, nil
	}
	tok, err := tsp.ParseToken(b)
	if err != nil {
		return nil, errors.New("witness: neither a TimeStampResp nor a TimeStampToken")
	}
	return tok, nil
}
