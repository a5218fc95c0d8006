// Package imap takes in the authority's mailboxes over IMAP: for each
// configured mailbox it fetches every message not yet taken in, stores the
// raw RFC 5322 bytes as fetched, appends MessageReceived, and only then
// marks the message done on the server (moves it to a folder or sets a
// flag). It waits with IDLE where the server offers it and polls otherwise,
// reconnects with backoff, and runs each mailbox on its own so that one
// failing mailbox does not stop the others.
//
// Exactly once, across crashes at any point: the set of messages still to
// take in is what the server shows as not done, so nothing recorded-but-not-
// marked is lost; and the message key is the account plus the SHA-256 of
// the raw bytes, so a message fetched again after a crash between record and
// mark, or a copy that reappears under a new UID or UIDVALIDITY, is
// recognised as recorded and only marked. No local state file is needed;
// UIDVALIDITY and UID are recorded as evidence.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/dialconf"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// TLS modes.
const (
	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
	TLSNone     = "none"
)

// Done actions.
const (
	DoneMove = "move"
	DoneFlag = "flag"
)

// Config configures the mailboxes to take in.
type Config struct {
	Mailboxes []MailboxConfig `yaml:"mailboxes"`
	// MaxMessageBytes caps one message (default 64 MiB). A larger message
	// is left in the mailbox and reported in the log.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// Limits bound the MIME walk of each message.
	Limits mailmsg.Limits `yaml:"-"`
	// Channel is the channel the receipts are recorded on and their
	// message keys are scoped to (default imap). The De-Mail channel takes
	// in its provider gateway's mailbox with this watcher.
	Channel gateway.Channel `yaml:"-" json:"-"`
	// Adapt, when set, completes each receipt before it is recorded, from
	// the stored raw message (the De-Mail channel adds the provider's
	// evidence). An error leaves the message in the mailbox for the next
	// round, like a failed record.
	Adapt func(ctx context.Context, raw blob.Ref, rec *gateway.MessageReceived) error `yaml:"-" json:"-"`
}

// MailboxConfig is one mailbox.
type MailboxConfig struct {
	// Name identifies the mailbox in logs and evidence (default
	// username@host/folder).
	Name string `yaml:"name"`
	Host string `yaml:"host"`
	// Port defaults to 993 for implicit TLS and 143 otherwise.
	Port int `yaml:"port"`
	// TLS is "implicit" (default), "starttls", or "none", which is allowed
	// only for a loopback host.
	TLS string `yaml:"tls"`
	// CAFile adds PEM roots for a server with a private CA.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile (both or neither) hold the PEM client
	// certificate and key presented to a server that requires one, such as
	// a De-Mail provider's gateway.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	Username string `yaml:"username"`
	// PasswordFile or PasswordEnv (exactly one) holds the password; it is
	// read at each login and never logged.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Folder is the folder to take in (default INBOX).
	Folder string `yaml:"folder"`
	// Done is "move" (default) or "flag".
	Done string `yaml:"done"`
	// DoneFolder receives messages taken in (default Poststelle-Eingegangen),
	// created when missing.
	DoneFolder string `yaml:"done_folder"`
	// DoneFlag marks messages taken in (default $PoststelleReceived).
	DoneFlag string `yaml:"done_flag"`
	// PollInterval is how often to look for new messages without IDLE, and
	// how often to refresh IDLE (default 1 minute).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Tenant overrides IntakeDeps.Tenant for this mailbox.
	Tenant string `yaml:"tenant"`
}

// Watcher takes in the configured mailboxes.
type Watcher struct {
	cfg   Config
	deps  gateway.IntakeDeps
	boxes []*mailbox
}

// New checks the configuration.
func New(cfg Config, deps gateway.IntakeDeps) (*Watcher, error) {
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("imap: %w", err)
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.Channel == "" {
		cfg.Channel = gateway.ChannelIMAP
	}
	w := &Watcher{cfg: cfg, deps: deps}
	names := map[string]bool{}
	for i, mc := range cfg.Mailboxes {
		m, err := newMailbox(w, mc)
		if err != nil {
			return nil, fmt.Errorf("imap: mailboxes[%d]: %w", i, err)
		}
		if names[m.cfg.Name] {
			return nil, fmt.Errorf("imap: mailboxes[%d]: name %q used twice", i, m.cfg.Name)
		}
		names[m.cfg.Name] = true
		w.boxes = append(w.boxes, m)
	}
	return w, nil
}

// Run takes in every mailbox until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, m := range w.boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func withMailboxDefaults(mc MailboxConfig) (MailboxConfig, error) {
	mc.TLS = strings.ToLower(mc.TLS)
	if mc.TLS == "" {
		mc.TLS = TLSImplicit
	}
	if mc.Folder == "" {
		mc.Folder = "INBOX"
	}
	if mc.Done == "" {
		mc.Done = DoneMove
	}
	if mc.DoneFolder == "" {
		mc.DoneFolder = "Poststelle-Eingegangen"
	}
	if mc.DoneFlag == "" {
		mc.DoneFlag = "$PoststelleReceived"
	}
	if mc.PollInterval <= 0 {
		mc.PollInterval = time.Minute
	}
	if mc.Port == 0 {
		mc.Port = 143
		if mc.TLS == TLSImplicit {
			mc.Port = 993
		}
	}
	if mc.Name == "" {
		mc.Name = mc.Username + "@" + mc.Host + "/" + mc.Folder
	}
	switch {
	case mc.Host == "":
		return mc, errors.New("host is required")
	case mc.Username == "":
		return mc, errors.New("username is required")
	case (mc.PasswordFile == "") == (mc.PasswordEnv == ""):
		return mc, errors.New("set exactly one of password_file and password_env")
	case mc.TLS != TLSImplicit && mc.TLS != TLSStartTLS && mc.TLS != TLSNone:
		return mc, fmt.Errorf("tls %q: want implicit, starttls or none", mc.TLS)
	case (mc.CertFile == "") != (mc.KeyFile == ""):
		return mc, errors.New("set both cert_file and key_file, or neither")
	case mc.TLS == TLSNone && mc.CertFile != "":
		return mc, errors.New("cert_file needs tls implicit or starttls")
	case mc.TLS == TLSNone && !dialconf.IsLoopback(mc.Host):
		return mc, fmt.Errorf("tls none is allowed only for a loopback host, not %q", mc.Host)
	case mc.Done != DoneMove && mc.Done != DoneFlag:
		return mc, fmt.Errorf("done %q: want move or flag", mc.Done)
	case mc.Done == DoneMove && strings.EqualFold(mc.DoneFolder, mc.Folder):
		return mc, errors.New("done_folder must differ from folder")
	}
	return mc, nil
}

func (mc MailboxConfig) password() (string, error) {
	return dialconf.Password(mc.PasswordFile, mc.PasswordEnv)
}

func (mc MailboxConfig) tlsConfig() (*tls.Config, error) {
	cfg, err := dialconf.ClientTLS(mc.Host, mc.CAFile)
	if err != nil {
		return nil, err
	}
	if err := dialconf.ClientCertificate(cfg, mc.CertFile, mc.KeyFile); err != nil {
		return nil, err
	}
	return cfg, nil
}
