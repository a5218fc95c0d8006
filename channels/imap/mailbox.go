package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// mailbox is one configured mailbox and its connection state.
type mailbox struct {
	w       *Watcher
	cfg     MailboxConfig
	tls     *tls.Config
	account string // scope of the content key: the same account, any folder
	log     *slog.Logger
	wake    chan struct{}

	mu          sync.Mutex
	tlsState    string
	uidValidity uint32
	tooLarge    map[uint32]bool // UIDs skipped and left in place (per UIDVALIDITY)
}

func newMailbox(w *Watcher, mc MailboxConfig) (*mailbox, error) {
	mc, err := withMailboxDefaults(mc)
	if err != nil {
		return nil, err
	}
	if _, err := mc.password(); err != nil {
		return nil, err
	}
	m := &mailbox{w: w, cfg: mc, account: strings.ToLower(mc.Username + "@" + mc.Host),
		log: w.deps.Logger.With("mailbox", mc.Name), wake: make(chan struct{}, 1), tooLarge: map[uint32]bool{}}
	if mc.TLS != TLSNone {
		if m.tls, err = mc.tlsConfig(); err != nil {
			return nil, err
		}
		// The handshake's outcome is evidence; this callback sees it in
		// both TLS modes.
		m.tls.VerifyConnection = func(cs tls.ConnectionState) error {
			m.mu.Lock()
			m.tlsState = tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
			m.mu.Unlock()
			return nil
		}
	}
	return m, nil
}

// run keeps a session to the mailbox open until ctx ends, reconnecting
// with exponential backoff and jitter.
func (m *mailbox) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		healthy, err := m.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = minBackoff
		}
		delay := backoff/2 + rand.N(backoff/2+1)
		m.log.Warn("imap: session ended, reconnecting", "err", err, "retry_in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session connects, takes in what is waiting and then waits for more.
// healthy reports that the session got as far as selecting the folder.
func (m *mailbox) session(ctx context.Context) (healthy bool, err error) {
	c, err := m.dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	pass, err := m.cfg.password()
	if err != nil {
		return false, err
	}
	if err := c.Login(m.cfg.Username, pass).Wait(); err != nil {
		return false, fmt.Errorf("login as %s: %w", m.cfg.Username, err)
	}
	if m.cfg.Done == DoneMove {
		if err := m.ensureFolder(c, m.cfg.DoneFolder); err != nil {
			return false, err
		}
	}
	sel, err := c.Select(m.cfg.Folder, nil).Wait()
	if err != nil {
		return false, fmt.Errorf("select %s: %w", m.cfg.Folder, err)
	}
	m.noteUIDValidity(sel.UIDValidity)
	for {
		if err := m.drain(ctx, c, sel.UIDValidity); err != nil {
			return true, err
		}
		if err := m.wait(ctx, c); err != nil {
			return true, err
		}
	}
}

func (m *mailbox) dial() (*imapclient.Client, error) {
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	opts := &imapclient.Options{
		TLSConfig: m.tls,
		Dialer:    &net.Dialer{Timeout: 30 * time.Second},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					m.signal()
				}
			},
		},
		WordDecoder: nil,
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch m.cfg.TLS {
	case TLSImplicit:
		c, err = imapclient.DialTLS(addr, opts)
	case TLSStartTLS:
		c, err = imapclient.DialStartTLS(addr, opts)
	default:
		c, err = imapclient.DialInsecure(addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s): %w", addr, m.cfg.TLS, err)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	return c, nil
}

func (m *mailbox) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// ensureFolder creates the done folder unless it exists.
func (m *mailbox) ensureFolder(c *imapclient.Client, name string) error {
	err := c.Create(name, nil).Wait()
	var ie *goimap.Error
	if err == nil || errors.As(err, &ie) && (ie.Code == goimap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exists")) {
		return nil
	}
	return fmt.Errorf("create folder %s: %w", name, err)
}

func (m *mailbox) noteUIDValidity(v uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uidValidity != 0 && m.uidValidity != v {
		// Content keys keep already recorded messages from doubling.
		m.log.Warn("imap: UIDVALIDITY changed; messages seen before will be recognised by content", "old", m.uidValidity, "new", v)
		m.tooLarge = map[uint32]bool{}
	}
	m.uidValidity = v
}

// drain takes in every message of the folder that is not done yet, in UID
// order.
func (m *mailbox) drain(ctx context.Context, c *imapclient.Client, uidValidity uint32) error {
	crit := &goimap.SearchCriteria{NotFlag: []goimap.Flag{goimap.FlagDeleted}}
	if m.cfg.Done == DoneFlag {
		crit.NotFlag = append(crit.NotFlag, goimap.Flag(m.cfg.DoneFlag))
	}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return fmt.Errorf("search %s: %w", m.cfg.Folder, err)
	}
	for _, uid := range data.AllUIDs() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.mu.Lock()
		skip := m.tooLarge[uint32(uid)]
		m.mu.Unlock()
		if skip {
			continue
		}
		if err := m.ingest(ctx, c, uidValidity, uid); err != nil {
			return err
		}
	}
	return nil
}

// wait returns when the server announces new messages, at the poll
// interval, or when the connection or ctx ends.
func (m *mailbox) wait(ctx context.Context, c *imapclient.Client) error {
	timer := time.NewTimer(m.cfg.PollInterval)
	defer timer.Stop()
	var idle *imapclient.IdleCommand
	if c.Caps().Has(goimap.CapIdle) {
		var err error
		if idle, err = c.Idle(); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
	}
	select {
	case <-m.wake:
	case <-timer.C:
	case <-c.Closed():
		return errors.New("connection closed by the server")
	case <-ctx.Done():
		return ctx.Err()
	}
	if idle == nil {
		return nil
	}
	if err := idle.Close(); err != nil {
		return fmt.Errorf("end idle: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return nil
}

// ingest fetches one message, stores and records it, and then marks it
// done. Any failure before the record leaves the message for the next
// round; a failure after it leaves a message that the next round
// recognises as recorded.
func (m *mailbox) ingest(ctx context.Context, c *imapclient.Client, uidValidity uint32, uid goimap.UID) error {
	d := m.w.deps
	f, err := m.fetch(ctx, c, uid)
	var refused *goimap.Error
	switch {
	case err == nil && !f.present:
		m.log.Info("imap: message vanished before it was fetched (expunged elsewhere)", "uid", uid)
		return nil
	case err == nil && f.ref == nil:
		// The server answered the FETCH without the message's bytes: there
		// is nothing to store, and to mark it done would lose it.
		m.skip(uid, "imap: server sent no message body; left in the mailbox", "size", f.size)
		return nil
	case err == nil && f.ref.Size == 0 && f.size > 0:
		// An empty literal for a message the server itself sizes as
		// non-empty is a server that cannot read its own message (go-imap's
		// in-memory server does this for a header it cannot parse).
		m.skip(uid, "imap: server delivered none of the message's bytes; left in the mailbox", "size", f.size)
		return nil
	case errors.Is(err, blob.ErrTooLarge):
		m.skip(uid, "imap: message over the size limit left in the mailbox", "limit", m.w.cfg.MaxMessageBytes)
		return nil
	case errors.As(err, &refused) && refused.Code != goimap.ResponseCodeUnavailable:
		// The server answered NO or BAD for this message (say, a damaged
		// file in its store): skip it rather than stall the mailbox.
		m.skip(uid, "imap: server refused to deliver the message; left in the mailbox", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	ref := *f.ref
	receivedAt := d.Now().UTC()
	msg, err := mailmsg.Walk(ctx, d.Blobs, ref, m.w.cfg.Limits)
	if err != nil {
		return err
	}
	tenant := d.Tenant
	if m.cfg.Tenant != "" {
		tenant = m.cfg.Tenant
	}
	key := gateway.MessageKey(m.w.cfg.Channel, m.account+"/"+ref.SHA256)
	rec := m.receipt(ref, msg, receivedAt, uidValidity, uid, f)
	if m.w.cfg.Adapt != nil {
		if err := m.w.cfg.Adapt(ctx, ref, rec); err != nil {
			return fmt.Errorf("complete the receipt of uid %d: %w", uid, err)
		}
	}
	receipt, err := d.Intake.Record(ctx, tenant, key, rec)
	if errors.Is(err, eventstore.ErrInvalidEvent) {
		m.skip(uid, "imap: the log refused the receipt; message left in the mailbox", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record uid %d: %w", uid, err)
	}
	if d.AfterRecord != nil {
		d.AfterRecord(receipt)
	}
	if err := m.markDone(c, uid); err != nil {
		return err
	}
	m.log.Info("imap: message received", "uid", uid, "event", receipt.EventID, "duplicate", receipt.Duplicate,
		"size", ref.Size, "problems", len(msg.Problems))
	return nil
}

// skip leaves a message in the mailbox for this UIDVALIDITY, logged, so
// that it does not hold up the messages after it; a person must look at it.
func (m *mailbox) skip(uid goimap.UID, msg string, args ...any) {
	m.log.Error(msg, append([]any{"uid", uid}, args...)...)
	m.mu.Lock()
	m.tooLarge[uint32(uid)] = true
	m.mu.Unlock()
}

// fetched is what the server answered to one message's FETCH.
type fetched struct {
	// present is false when the server sent no data for the UID: the
	// message vanished (expunged by someone else).
	present bool
	// ref is the stored BODY[]; nil when the answer held no body.
	ref *blob.Ref
	// size is the server's RFC822.SIZE, -1 when it sent none.
	size     int64
	internal time.Time
}

// fetch streams BODY.PEEK[] of one message into the blob store, with the
// server's RFC822.SIZE to check the delivered bytes against.
func (m *mailbox) fetch(ctx context.Context, c *imapclient.Client, uid goimap.UID) (f fetched, err error) {
	f.size = -1
	cmd := c.Fetch(goimap.UIDSetNum(uid), &goimap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true,
		BodySection: []*goimap.FetchItemBodySection{{Peek: true}}})
	defer func() {
		if cerr := cmd.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("fetch uid %d: %w", uid, cerr)
		}
	}()
	data := cmd.Next()
	if data == nil {
		return f, nil
	}
	f.present = true
	for item := data.Next(); item != nil; item = data.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataInternalDate:
			f.internal = it.Time
		case imapclient.FetchItemDataRFC822Size:
			f.size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil || f.ref != nil {
				continue
			}
			if it.Literal.Size() > m.w.cfg.MaxMessageBytes {
				return f, blob.ErrTooLarge
			}
			ref, err := m.w.deps.Blobs.Put(ctx, it.Literal, m.w.cfg.MaxMessageBytes)
			if err != nil {
				return f, fmt.Errorf("store uid %d: %w", uid, err)
			}
			f.ref = &ref
		}
	}
	return f, nil
}

// sizeProblem names a body whose length differs from the server's own
// RFC822.SIZE: the stored bytes may not be the whole message, so a person
// must compare them with the mailbox.
func (f fetched) sizeProblem() string {
	if f.ref == nil || f.size < 0 || f.ref.Size == f.size {
		return ""
	}
	return fmt.Sprintf("imap: the server delivered %d octets but gives the message's RFC822.SIZE as %d", f.ref.Size, f.size)
}

func (m *mailbox) markDone(c *imapclient.Client, uid goimap.UID) error {
	set := goimap.UIDSetNum(uid)
	if m.cfg.Done == DoneMove {
		if _, err := c.Move(set, m.cfg.DoneFolder).Wait(); err != nil {
			return fmt.Errorf("move uid %d to %s: %w", uid, m.cfg.DoneFolder, err)
		}
		return nil
	}
	err := c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true,
		Flags: []goimap.Flag{goimap.Flag(m.cfg.DoneFlag)}}, nil).Close()
	if err != nil {
		return fmt.Errorf("flag uid %d %s: %w", uid, m.cfg.DoneFlag, err)
	}
	return nil
}

func (m *mailbox) receipt(ref blob.Ref, msg *mailmsg.Message, at time.Time, uidValidity uint32, uid goimap.UID, f fetched) *gateway.MessageReceived {
	m.mu.Lock()
	tlsState := m.tlsState
	m.mu.Unlock()
	env := map[string]string{
		"mailbox":     m.cfg.Name,
		"host":        m.cfg.Host,
		"user":        m.cfg.Username,
		"folder":      m.cfg.Folder,
		"uidValidity": strconv.FormatUint(uint64(uidValidity), 10),
		"uid":         strconv.FormatUint(uint64(uid), 10),
	}
	if !f.internal.IsZero() {
		env["internalDate"] = f.internal.UTC().Format(time.RFC3339)
	}
	var problems []string
	if p := f.sizeProblem(); p != "" {
		problems = append(problems, p)
	}
	return msg.Receipt(mailmsg.Arrival{
		Problems: problems,
		Channel:  m.w.cfg.Channel,
		Raw:      ref,
		At:       at,
		Transport: gateway.TransportEvidence{
			RemoteAddr:  net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port)),
			Coordinates: Coordinates(m.cfg.Name, uidValidity, uint32(uid)),
			Envelope:    env,
			TLS:         tlsState,
		},
	})
}

// Coordinates is the Transport.Coordinates of message uid in the named
// mailbox: "<name>/<UIDVALIDITY>/<UID>".
func Coordinates(mailbox string, uidValidity, uid uint32) string {
	return fmt.Sprintf("%s/%d/%d", mailbox, uidValidity, uid)
}
