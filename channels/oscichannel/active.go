package oscichannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// Active is the active recipient: it polls the authority's mailbox at the
// intermediary. Each poll lists the waiting deliveries by their process cards and
// fetches each in a dialog of its own (initDialog, fetchDelivery, exitDialog); the
// answer is stored as received before it is opened, and the exitDialog that
// acknowledges the delivery is sent only once its receipt is recorded. A delivery that
// could not be recorded is left in the mailbox and fetched again; one that is too
// large or that the log refuses is left there for the operator and not fetched again
// by this process.
type Active struct {
	c        *core
	client   *osci.Client
	interval time.Duration
	log      *slog.Logger
	// done and left are the message ids this process has acknowledged or given up on,
	// so that a poll does not fetch them again; bounded, since the intermediary's
	// mailbox, not this memory, is what counts.
	done, left *idSet
}

// maxRemembered bounds the ids kept per set.
const maxRemembered = 100_000

// NewActive builds the active recipient of cfg.
func NewActive(cfg Config, deps gateway.IntakeDeps) (*Active, error) {
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, err
	}
	c, err := newCore(cfg, deps)
	if err != nil {
		return nil, err
	}
	interval := cfg.PollInterval
	if interval <= 0 {
		interval = time.Minute
	}
	return &Active{c: c, client: c.client(), interval: interval,
		log:  deps.Logger.With("channel", "egvp", "role", "active"),
		done: newIDSet(maxRemembered), left: newIDSet(maxRemembered)}, nil
}

// client is the OSCI client of the authority at the intermediary. Its spool is
// temporary files: the dialogs' answers are not evidence, and a delivery's raw answer
// is copied into the blob store before it is opened.
func (c *core) client() *osci.Client {
	return &osci.Client{URL: c.cfg.Intermediary.URL, HTTP: &http.Client{Timeout: 10 * time.Minute},
		IntermediaryCipher: c.interCipher, IntermediarySignature: c.interSig,
		Signer: c.signature.Key, SignatureCertificate: c.signature.Cert, Method: c.cfg.method(),
		Decrypter: c.decrypter(), CipherCertificate: c.cipher.Cert, Limits: c.lim, Spool: osci.DirSpool{}}
}

// Run polls until ctx ends.
func (a *Active) Run(ctx context.Context) error {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		if err := a.Poll(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("polling the intermediary", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll fetches every delivery waiting now.
func (a *Active) Poll(ctx context.Context) error {
	ids, err := a.waiting(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := a.fetch(ctx, id); err != nil {
			a.log.Warn("delivery left at the intermediary", "messageId", id, "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// waiting lists the message ids of the mailbox's process cards not yet taken here.
func (a *Active) waiting(ctx context.Context) ([]string, error) {
	d, err := a.client.InitDialog(ctx)
	if err != nil {
		return nil, fmt.Errorf("osci: opening the listing dialog: %w", err)
	}
	r, err := d.FetchProcessCard(ctx, nil, 0)
	var fe *osci.FeedbackError
	if errors.As(err, &fe) && fe.Code == osci.CodeNoProcessCard {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("osci: listing the mailbox: %w", err)
	}
	var ids []string
	if r != nil {
		for _, b := range r.Envelope.ProcessCards() {
			if b.MessageID != "" && !a.done.has(b.MessageID) && !a.left.has(b.MessageID) {
				ids = append(ids, b.MessageID)
			}
		}
		r.Close()
	}
	if err := d.Exit(ctx); err != nil {
		return nil, fmt.Errorf("osci: closing the listing dialog: %w", err)
	}
	return ids, nil
}

// fetch takes one delivery in a dialog of its own, so that its exitDialog
// acknowledges it alone.
func (a *Active) fetch(ctx context.Context, id string) error {
	d, err := a.client.InitDialog(ctx)
	if err != nil {
		return err
	}
	r, err := d.FetchDelivery(ctx, id)
	var fe *osci.FeedbackError
	switch {
	case errors.As(err, &fe) && fe.Code == osci.CodeNoDelivery:
		// Taken already (a process card outlives its delivery in the mailbox).
		a.done.add(id)
		return d.Exit(ctx)
	case errors.Is(err, osci.ErrTooLarge):
		a.left.add(id)
		return fmt.Errorf("over the channel's size limit: %w", err)
	case err != nil:
		return err
	}
	defer r.Close()
	ref, err := a.keep(ctx, r.Raw)
	if err != nil {
		return err
	}
	v, rc, err := a.c.record(ctx, ref, opened{req: r.Request, remote: a.c.cfg.Intermediary.URL})
	switch v {
	case retryLater:
		// No exitDialog: the delivery stays in the mailbox and the next poll fetches it.
		return fmt.Errorf("not recorded: %w", err)
	case refusedByLog:
		a.left.add(id)
		return fmt.Errorf("refused by the log: %w", err)
	}
	a.log.Info("delivery recorded", "messageId", id, "stream", rc.Stream, "duplicate", rc.Duplicate)
	if err := d.Exit(ctx); err != nil {
		// Recorded; the next poll fetches it again and Record reports a duplicate.
		return fmt.Errorf("acknowledging: %w", err)
	}
	a.done.add(id)
	return nil
}

// keep stores the answer that carried a delivery, as received, in the blob store.
func (a *Active) keep(ctx context.Context, raw osci.Spooled) (blob.Ref, error) {
	rc, err := raw.Open()
	if err != nil {
		return blob.Ref{}, fmt.Errorf("reopening the answer: %w", err)
	}
	defer rc.Close()
	ref, err := a.c.deps.Blobs.Put(ctx, rc, a.c.cfg.maxBytes())
	if err != nil {
		return blob.Ref{}, fmt.Errorf("storing the answer: %w", err)
	}
	return ref, nil
}

// idSet is a bounded set of ids, the oldest forgotten first.
type idSet struct {
	max   int
	order []string
	m     map[string]bool
}

func newIDSet(max int) *idSet { return &idSet{max: max, m: map[string]bool{}} }

func (s *idSet) has(id string) bool { return s.m[id] }

func (s *idSet) add(id string) {
	if s.m[id] {
		return
	}
	if len(s.order) >= s.max {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
	s.order = append(s.order, id)
	s.m[id] = true
}
