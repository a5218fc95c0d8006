package egvpenterprise

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/egvprecord"
)

// Metadata keys of the connector's receipts.
const (
	// MetaMessageID is Enterprise's id of the message (what receiveMessage and
	// commitReceivedMessage name), MetaUserID the Enterprise account.
	MetaMessageID = "egvpEnterprise.messageId"
	MetaUserID    = "egvpEnterprise.userId"
	// MetaOriginChecks lists what the proof of origin rests on, "; "-joined.
	MetaOriginChecks = "egvpEnterprise.originChecks"
	// MetaTransportCertificate is the transport signature's certificate (base64 DER),
	// under the key the OSCI channel keeps it (oscichannel.MetaOriginatorSignature),
	// where the verification projection looks for it for the Prüfprotokoll.
	MetaTransportCertificate = "osci.originatorSignatureCertificate"
)

// exportTransportCertificate is where the export keeps the transport signature's
// certificate; maxCertificateBytes caps what is read of it.
const (
	exportTransportCertificate = "certificates/originator_transportsignatur.crt"
	maxCertificateBytes        = 64 << 10
)

// AddressPrefix starts the From address of a received message: "safe:" and the
// sender's SAFE-ID, the address an answer is sent to.
const AddressPrefix = "safe:"

// The bounds of a messageZIP as it is opened.
const (
	maxZIPEntries = 4096
	// maxUnpackFactor bounds the declared uncompressed size of a ZIP's files to this
	// many times the message cap (XML compresses well; a bomb more).
	maxUnpackFactor = 8
	// maxRemembered bounds the ids this process gave up on.
	maxRemembered = 100_000
)

// Inbound polls an Enterprise mailbox. It implements gateway.Inbound.
type Inbound struct {
	cfg      Config
	egvp     egvp.Config
	deps     gateway.IntakeDeps
	client   *egvpsoap.Client
	interval time.Duration
	remote   string
	log      *slog.Logger

	mu sync.Mutex
	// pending polls the state of answers Enterprise had not sent yet (nil unless
	// the outbound side is on and evidence is recorded).
	pending *Pending
	// left are the ids this process gave up on (too large, refused by the log): they
	// stay uncommitted in Enterprise, for the operator, and are not fetched again.
	left map[string]bool
}

// New builds the inbound side of cfg; nil when cfg sets no poll_interval.
func New(cfg Config, deps gateway.IntakeDeps) (*Inbound, error) {
	if cfg.PollInterval <= 0 {
		return nil, nil
	}
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	ecfg, err := cfg.egvpConfig()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint)
	in := &Inbound{cfg: cfg, egvp: ecfg, deps: deps, client: c, interval: cfg.PollInterval, remote: u.Host,
		log: deps.Logger.With("channel", "egvp", "transport", "egvp-enterprise"), left: map[string]bool{}}
	in.pending = newPending(cfg, c, deps.Log, deps.Evidence, in.log)
	return in, nil
}

// newClient is the web service client of cfg, its password read, its TLS trust the
// configured CA when there is one.
func newClient(cfg Config) (*egvpsoap.Client, error) {
	pw, err := cfg.password()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("egvp_enterprise: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("egvp_enterprise: ca_file: no PEM certificate in %s", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// The messageZIP comes base64-encoded: four bytes for three, and the envelope.
	maxResp := cfg.maxBytes()/3*4 + 1<<20
	return &egvpsoap.Client{Endpoint: cfg.Endpoint, HTTP: &http.Client{Timeout: cfg.timeout(), Transport: tr},
		Username: cfg.Username, Password: pw, MaxResponseBytes: maxResp}, nil
}

// Run polls until ctx ends.
func (in *Inbound) Run(ctx context.Context) error {
	t := time.NewTicker(in.interval)
	defer t.Stop()
	for {
		if err := in.Poll(ctx); err != nil && ctx.Err() == nil {
			in.log.Warn("polling EGVP Enterprise", "err", err)
		}
		if in.pending != nil {
			if err := in.pending.Poll(ctx); err != nil && ctx.Err() == nil {
				in.log.Warn("polling the states of pending answers", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll takes every uncommitted message once. A message that fails stays
// uncommitted and is taken again at the next poll.
func (in *Inbound) Poll(ctx context.Context) error {
	ids, err := in.client.GetUncommittedMessageIDs(ctx, in.cfg.UserID)
	if err != nil {
		return fmt.Errorf("egvp_enterprise: listing the uncommitted messages: %w", err)
	}
	var errs []error
	for _, u := range ids {
		if ctx.Err() != nil {
			break
		}
		if in.isLeft(u.MessageID) {
			continue
		}
		if err := in.take(ctx, u.MessageID); err != nil {
			in.log.Warn("message not taken; it stays uncommitted", "messageId", u.MessageID, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (in *Inbound) isLeft(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.left[id]
}

func (in *Inbound) leave(id, why string, err error) {
	in.mu.Lock()
	if len(in.left) < maxRemembered {
		in.left[id] = true
	}
	in.mu.Unlock()
	in.log.Error("message left uncommitted in EGVP Enterprise for the operator", "messageId", id, "reason", why, "err", err)
}

// take receives one message, stores it, records it and commits it, in that order. The
// messageZIP streams into a temporary file (a ZIP is read from its end), from which it
// is stored and opened; it is never held in memory.
func (in *Inbound) take(ctx context.Context, id string) error {
	f, err := os.CreateTemp("", "egvp-enterprise-*.zip")
	if err != nil {
		return fmt.Errorf("receiving %s: %w", id, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	max := in.cfg.maxBytes()
	lw := &limitWriter{w: f, left: max}
	size, err := in.client.ReceiveMessageTo(ctx, in.cfg.UserID, id, lw)
	if lw.exceeded || errors.Is(err, egvpsoap.ErrTooLarge) {
		if err == nil || lw.exceeded {
			err = fmt.Errorf("receiving %s: more than %d bytes", id, max)
		}
		in.leave(id, "too large", err)
		return err
	}
	if err != nil {
		return fmt.Errorf("receiving %s: %w", id, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("receiving %s: %w", id, err)
	}
	ref, err := in.deps.Blobs.Put(ctx, f, max)
	if err != nil {
		return fmt.Errorf("storing %s: %w", id, err)
	}
	msg, eeb := in.receipt(ctx, ref, id, f, size)
	key := gateway.MessageKey(gateway.ChannelEGVP, "enterprise:"+in.cfg.UserID+"/"+id)
	rc, err := in.deps.Intake.Record(ctx, in.deps.Tenant, key, msg)
	if errors.Is(err, eventstore.ErrInvalidEvent) {
		in.leave(id, "refused by the log", err)
		return err
	}
	if err != nil {
		return fmt.Errorf("recording %s: %w", id, err)
	}
	in.sentAnswers().LinkReturningEEB(ctx, eeb, in.log)
	if in.deps.AfterRecord != nil {
		in.deps.AfterRecord(rc)
	}
	code, err := in.client.CommitReceivedMessage(ctx, in.cfg.UserID, id)
	if err != nil {
		return fmt.Errorf("committing %s (recorded as %s; it will be received again and recognised): %w", id, rc.Stream, err)
	}
	in.log.Info("message received", "messageId", id, "stream", rc.Stream, "duplicate", rc.Duplicate, "commit", code,
		"bytes", size, "problems", len(msg.Problems))
	return nil
}

// limitWriter writes at most left bytes and then refuses, remembering that it did.
type limitWriter struct {
	w        io.Writer
	left     int64
	exceeded bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.exceeded = true
		return 0, errors.New("egvp_enterprise: the messageZIP exceeds max_message_bytes")
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// receipt builds the MessageReceived of a stored messageZIP. Whatever cannot be read
// is a problem of a message that is recorded all the same. A returning eEB of one of
// our answers (sent by either transport) comes with the evidence that links it there,
// recorded once the message is; one of no answer of ours is a problem.
func (in *Inbound) receipt(ctx context.Context, raw blob.Ref, id string, data io.ReaderAt, size int64) (*gateway.MessageReceived, *gateway.DeliveryEvidenceRecorded) {
	msg := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, Raw: raw, ReceivedAt: in.deps.Now().UTC(),
		Transport: gateway.TransportEvidence{RemoteAddr: in.remote, Coordinates: in.cfg.UserID + "/" + id},
		Metadata:  map[string]string{MetaMessageID: id, MetaUserID: in.cfg.UserID},
		To:        []gateway.Address{{Address: AddressPrefix + in.cfg.UserID}}}
	zr, err := openZIP(data, size, in.cfg.maxBytes())
	if err != nil {
		msg.Problems = append(msg.Problems, fmt.Sprintf("egvp-enterprise: the messageZIP is not readable: %v", err))
		return msg, nil
	}
	in.parts(ctx, zr, msg)
	m, err := egvp.ReadExport(ctx, zr, in.egvp, egvp.Limits{})
	if err != nil {
		msg.Problems = append(msg.Problems, fmt.Sprintf("egvp: %v", err))
		return msg, nil
	}
	replyID := in.sentAnswers().CheckReturningEEB(ctx, m)
	egvprecord.Apply(msg, m)
	msg.SenderMessageID = m.MessageID
	// The Zugang is when the message reached the mailbox at the intermediary, as the
	// process card in the export says, not when Enterprise handed it on.
	if !m.Received.IsZero() {
		msg.ReceivedAt = m.Received.UTC()
	}
	if m.SenderSafeID != "" {
		msg.From.Address = AddressPrefix + m.SenderSafeID
	}
	if c := m.Card; c != nil {
		msg.From.Name = strings.TrimSpace(strings.Join([]string{c.FirstName, c.Name}, " "))
		if c.Organisation != "" && msg.From.Name == "" {
			msg.From.Name = c.Organisation
		}
	}
	if m.RecipientSafeID != "" && m.RecipientSafeID != in.cfg.UserID {
		msg.To = append(msg.To, gateway.Address{Address: AddressPrefix + m.RecipientSafeID})
	}
	msg.Metadata[MetaOriginChecks] = strings.Join(m.Origin.Checks, "; ")
	if der := transportCertificate(zr, m.Origin.CertificateSHA256); der != nil {
		msg.Metadata[MetaTransportCertificate] = base64.StdEncoding.EncodeToString(der)
	}
	if replyID == "" {
		return msg, nil
	}
	return msg, egvprecord.ReturningEEBEvidence(m, replyID, msg, "application/zip")
}

// sentAnswers is the record a returning eEB is checked against.
func (in *Inbound) sentAnswers() egvprecord.SentAnswers {
	return egvprecord.SentAnswers{Evidence: in.deps.Evidence, Tenant: in.deps.Tenant}
}

// transportCertificate is the DER of the export's transport certificate when it is
// the one whose SHA-256 the proof of origin names (the certificate in the envelope),
// nil otherwise.
func transportCertificate(zr *zip.Reader, sha string) []byte {
	if sha == "" {
		return nil
	}
	f, err := zr.Open(exportTransportCertificate)
	if err != nil {
		return nil
	}
	defer f.Close()
	der, err := io.ReadAll(io.LimitReader(f, maxCertificateBytes+1))
	if err != nil || len(der) > maxCertificateBytes {
		return nil
	}
	if b, _ := pem.Decode(der); b != nil {
		der = b.Bytes
	}
	if sum := sha256.Sum256(der); hex.EncodeToString(sum[:]) != sha {
		return nil
	}
	return der
}

// parts stores the message's documents (attachments/, paths a.1, a.2, ...) and EGVP
// contents (additionals/, paths e.1, ...) as parts.
func (in *Inbound) parts(ctx context.Context, zr *zip.Reader, msg *gateway.MessageReceived) {
	n := map[string]int{}
	for _, f := range zr.File {
		dir, name := path.Split(f.Name)
		prefix := map[string]string{egvp.ExportAttachments + "/": "a", "additionals/": "e"}[dir]
		if prefix == "" || name == "" {
			continue
		}
		n[prefix]++
		p := gateway.Part{Path: fmt.Sprintf("%s.%d", prefix, n[prefix]), Filename: name, Kind: "attachment", MediaType: mediaType(name)}
		rc, err := f.Open()
		if err == nil {
			p.Blob, err = in.deps.Blobs.Put(ctx, rc, in.cfg.maxBytes())
			rc.Close()
		}
		if err != nil {
			p.Problems = append(p.Problems, fmt.Sprintf("egvp-enterprise: storing %s: %v", f.Name, err))
		}
		msg.Parts = append(msg.Parts, p)
	}
}

func mediaType(name string) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}

// openZIP opens a messageZIP within bounds: the number of files, their declared
// sizes (archive/zip refuses a file that inflates beyond its declared size), and
// their names, which must be relative slash paths.
func openZIP(data io.ReaderAt, size, maxBytes int64) (*zip.Reader, error) {
	zr, err := zip.NewReader(data, size)
	if err != nil {
		return nil, err
	}
	if len(zr.File) > maxZIPEntries {
		return nil, fmt.Errorf("%d files, more than %d", len(zr.File), maxZIPEntries)
	}
	var total uint64
	seen := map[string]bool{}
	for _, f := range zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		if !fs.ValidPath(name) || strings.Contains(f.Name, `\`) {
			return nil, fmt.Errorf("file name %.100q is not a relative path", f.Name)
		}
		if seen[name] {
			return nil, fmt.Errorf("file %.100q appears twice", f.Name)
		}
		seen[name] = true
		total += f.UncompressedSize64
		if total > uint64(maxBytes)*maxUnpackFactor {
			return nil, fmt.Errorf("the files unpack to more than %d bytes", uint64(maxBytes)*maxUnpackFactor)
		}
	}
	return zr, nil
}
