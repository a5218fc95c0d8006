// Package assembly builds the gateway from its configuration: the log, the
// blob store, the state database, the pipeline and projections, the
// channels, the office-facing servers, the witnesses and the reply
// scheduler. `poststelle serve` is Build then Run; the benchmarks use it
// too, so that what they measure is what an administrator runs.
package assembly

import (
	"context"
	"crypto"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/poststelle/poststelle/channels"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/kafkalog"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/office/officeapi"
	"github.com/poststelle/poststelle/office/officeimap"
	"github.com/poststelle/poststelle/office/submission"
	"github.com/poststelle/poststelle/office/webui"
)

// Stores are the opened stores every subcommand shares.
type Stores struct {
	cfg    *Config
	logger *slog.Logger
	signer crypto.Signer
	log    eventstore.Log
	blobs  blob.Backend
	state  *sql.DB
}

// Log is the event log.
func (g *Stores) Log() eventstore.Log { return g.log }

// Blobs is the store of raw messages.
func (g *Stores) Blobs() blob.Backend { return g.blobs }

// State is the state database: read models and subscription positions.
func (g *Stores) State() *sql.DB { return g.state }

// Signer is the gateway's signing key.
func (g *Stores) Signer() crypto.Signer { return g.signer }

// Close closes the state database, the log and the blob store.
func (g *Stores) Close() error {
	var errs []error
	if g.state != nil {
		errs = append(errs, g.state.Close())
	}
	if g.log != nil {
		errs = append(errs, g.log.Close())
	}
	if c, ok := g.blobs.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Open opens the key, the log, the blob store and the state database.
func Open(ctx context.Context, cfg *Config, logger *slog.Logger) (*Stores, error) {
	g := &Stores{cfg: cfg, logger: logger}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	signer, created, err := keys.LoadOrGenerate(cfg.Keys.SigningKey, cfg.Keys.PublicKey)
	if err != nil {
		return nil, err
	}
	fp, err := keys.Fingerprint(signer.Public())
	if err != nil {
		return nil, err
	}
	if created {
		logger.Info("created the gateway's signing key; record its fingerprint apart from the data directory", "key", cfg.Keys.SigningKey,
			"public_key", cfg.Keys.PublicKey, "fingerprint", fp)
	}
	if cfg.Keys.Fingerprint != "" && fp != cfg.Keys.Fingerprint {
		return nil, fmt.Errorf("the signing key %s has fingerprint %s, but keys.fingerprint pins %s", cfg.Keys.SigningKey, fp, cfg.Keys.Fingerprint)
	}
	g.signer = signer
	if g.log, err = openLog(ctx, cfg, signer, logger); err != nil {
		return nil, err
	}
	if g.blobs, err = openBlobs(ctx, cfg, logger, true); err != nil {
		g.Close()
		return nil, err
	}
	if g.state, err = openState(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func openLog(ctx context.Context, cfg *Config, signer crypto.Signer, logger *slog.Logger) (eventstore.Log, error) {
	if cfg.EventStore.Backend == "kafka" {
		k := cfg.EventStore.Kafka
		return kafkalog.Open(ctx, kafkalog.Config{Brokers: k.Brokers, Topic: k.Topic, Partitions: k.Partitions,
			ReplicationFactor: k.ReplicationFactor, Group: k.Group, CheckpointInterval: k.CheckpointInterval,
			Signer: signer, Logger: logger, SnapshotPath: filepath.Join(cfg.DataDir, "kafka-fold.snapshot")})
	}
	return sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(cfg.DataDir, "log.db"), Signer: signer, Logger: logger})
}

// openState opens the state database: read models and subscription
// positions. It commits with synchronous=NORMAL: a power cut may undo its
// newest transactions, never corrupt it, and everything in it is derived from
// the log, where handlers append with deterministic ids and projections keep
// their position in the same transaction — so undone work is simply redone.
// The log itself stays synchronous=FULL.
func openState(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// clusterShare is how this process shares work with the other gateways of
// its log. On Kafka the handlers' positions live on the cluster, so that a
// gateway taking a partition over continues where its previous owner
// stopped (each gateway has its own state database), and the retry
// schedules act only on the partitions this process owns in the group
// "<group>.outbox". The embedded log has one process: positions in the
// state database, every schedule its own (nil ownership).
func (g *Gateway) clusterShare(ctx context.Context) (pubsub.Offsets, *ownership, error) {
	if kl, ok := g.log.(*kafkalog.Log); ok {
		return kl.Offsets(), &ownership{kl.Ownership("outbox")}, nil
	}
	offsets, err := pubsub.NewSQLOffsets(ctx, g.state)
	return offsets, nil, err
}

// mirrorQueues copies each office's queue stream to its own topic, for the
// departments that consume it with their own Kafka clients (docs/offices.md).
// A failure (a broker away) restarts it after a pause instead of stopping
// the gateway.
func (g *Gateway) mirrorQueues(ctx context.Context, reg *gateway.Registry) error {
	kl := g.log.(*kafkalog.Log)
	topic := g.cfg.EventStore.Kafka.Topic
	cfg := kafkalog.MirrorConfig{Name: "queues", Prefix: offices.QueueTopicPrefix,
		Topic:  func(stream string) string { return offices.QueueTopic(topic, stream) },
		Record: func(e *eventstore.Event) ([]byte, []byte, error) { return offices.EncodeQueueRecord(reg, e) }}
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := kl.Mirror(ctx, cfg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.logger.Warn("queue topics: mirror stopped; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// ownership wraps kafkalog.Ownership so that a nil one owns everything.
type ownership struct{ *kafkalog.Ownership }

func (o *ownership) owns() outbox.OwnsFunc {
	if o == nil {
		return nil
	}
	return o.Owns
}

// Deps are what the gateway needs beyond its configuration.
type Deps struct {
	// Logger gets the structured log (default slog.Default()).
	Logger *slog.Logger
	// Notice gets what a person at the terminal must see once and the log
	// must not keep (a new demo login); nil shows nothing.
	Notice io.Writer
	// Version names this build in the evidence it produces.
	Version string
}

// Gateway is the assembled gateway: every part built and every listener
// bound, nothing running until Run.
type Gateway struct {
	*Stores
	cfg    *Config
	logger *slog.Logger
	// crash kills the process after a record in test builds (crashpoints.go).
	crash  *crashpoint
	tasks  []task
	pipe   *pipeline.Pipeline
	intake *gateway.Intake
	// evidence records the delivery evidence channels receive (see
	// gateway.EvidenceRecorder), linked through projection.References.
	evidence *gateway.EvidenceRecorder
	office   *officeapi.Wiring
	// bundle makes evidence bundles for the office API and the web UI.
	bundle officeapi.BundleFunc
	// inbound are the running inbound channels.
	inbound map[gateway.Channel]gateway.Inbound
	// outboundNames are the channels answers can go out on.
	outboundNames []gateway.Channel
	imapd         *officeimap.Server
	submit        *submission.Server
	// metrics and ready are the operations side (ops.go).
	metrics *metrics.Metrics
	ready   *metrics.Readiness
	opsLn   net.Listener
	ui      *webui.Server
	// tsaLn and tsaKey are the gateway's own TSA (tsaseal.go), nil without.
	tsaLn  net.Listener
	tsaKey *SigningKey
}

// task is one long-lived part of the gateway.
type task struct {
	name string
	run  func(context.Context) error
}

func (g *Gateway) add(name string, run func(context.Context) error) {
	g.tasks = append(g.tasks, task{name: name, run: run})
}

// Build opens the stores and builds everything cfg configures. The
// listeners are bound when it returns, so a port in use fails here.
func Build(ctx context.Context, cfg *Config, deps Deps) (_ *Gateway, err error) {
	logger, notice := deps.Logger, deps.Notice
	if logger == nil {
		logger = slog.Default()
	}
	stores, err := Open(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Stores: stores, cfg: cfg, logger: logger, inbound: map[gateway.Channel]gateway.Inbound{}}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	reg := gateway.NewRegistry()
	if err := g.buildOps(ctx, reg); err != nil {
		return nil, err
	}
	offsets, owner, err := g.clusterShare(ctx)
	if err != nil {
		return nil, err
	}
	// The local TSA is bound before the handlers, which may stamp with it.
	if cfg, err = g.buildTSAServer(ctx, cfg); err != nil {
		return nil, err
	}
	g.cfg = cfg
	if seal, err := cfg.OpenSeal(ctx, logger); err != nil {
		return nil, err
	} else if seal != nil {
		// Opened here only to fail early and to make the demo seal on the
		// first start; the evidence command opens it when it seals.
		if err := seal.Close(); err != nil {
			return nil, fmt.Errorf("evidence.seal: %w", err)
		}
	}
	handlers, err := verification.Handlers(ctx, cfg.Verification, verification.Deps{Blobs: g.blobs,
		Logger: logger.With("component", "verification"), Verifier: "poststelle " + deps.Version})
	if err != nil {
		return nil, fmt.Errorf("verification: %w", err)
	}
	// The reply policy comes from the channel registry: each channel's
	// route and which channels have an outbound.
	policy, err := cfg.Channels().Policy()
	if err != nil {
		return nil, err
	}
	bundle, err := bundleFunc(ctx, cfg, g.Stores, deps.Version, logger)
	if err != nil {
		return nil, err
	}
	g.bundle = bundle
	ret := &retentionWiring{g: g, reg: reg, owner: owner}
	office, err := officeapi.Wire(officeapi.WiringConfig{OfficesFile: cfg.Offices, RulesFile: cfg.Routing.Rules,
		RoutingAfterVerification: cfg.Routing.AfterVerification, API: cfg.OfficeAPI, DataDir: cfg.DataDir},
		officeapi.WiringDeps{Log: g.log, DB: g.state, Blobs: g.blobs, Logger: logger, Tenant: cfg.Tenant, Notice: notice,
			Plan: policy.Plan, Ready: g.ready.Check, Owns: owner.owns(), Bundle: bundle, NewRetention: ret.make})
	if err != nil {
		return nil, fmt.Errorf("offices: %w", err)
	}
	if ret.erasing() {
		// Completes an erasure that was recorded but interrupted before
		// the keys were destroyed, here or on a node that died.
		handlers = append(handlers, ret.service.Handler())
	}
	// A partitioned log has no one order of arrival: queue places come
	// from the office's own stream there, triage places from the triage
	// stream (offices.Inbox.QueuedOrder).
	office.Inbox.QueuedOrder = owner != nil
	handlers = append(handlers, office.Handlers...)
	if owner != nil {
		// The triage queue's places come from the log there too; on one
		// partition the order of folding is the log's, and the five more
		// subscriptions would only cost.
		handlers = append(handlers, offices.TriageQueue()...)
	}
	runner := &projection.Runner{Log: g.log, DB: g.state, Registry: reg, Logger: logger}
	intake := &gateway.Intake{Log: g.log}
	g.intake = intake
	// The index is set up now, so that evidence arriving before its first
	// run finds the table; the recorder catches it up before it gives a
	// reference up as unknown. The outbound sides record evidence too, so
	// it is built before them.
	if err := runner.Setup(ctx, projection.References{}); err != nil {
		return nil, fmt.Errorf("references projection: %w", err)
	}
	g.evidence = projection.NewEvidenceRecorder(runner)
	outbound, err := g.buildOutbound()
	if err != nil {
		return nil, err
	}
	for _, reg := range cfg.Channels().All() {
		if outbound[reg.Name] != nil {
			g.outboundNames = append(g.outboundNames, reg.Name)
		}
	}
	sender, err := replies.New(cfg.Replies, replies.Deps{Log: g.log, Registry: reg, State: g.state, Outbound: outbound,
		Logger: logger.With("component", "replies"), Owns: owner.owns()})
	if err != nil {
		return nil, fmt.Errorf("replies: %w", err)
	}
	handlers = append(handlers, sender.Handler())
	g.office = office
	officeIMAP, err := officeimap.New(cfg.OfficeIMAP, officeimap.Deps{Directory: office.Directory, State: g.state, Log: g.log,
		Blobs: g.blobs, DataDir: cfg.DataDir, Logger: logger.With("component", "officeimap"), Changed: office.Notifier.Changed})
	if err != nil {
		return nil, fmt.Errorf("office_imap: %w", err)
	}
	submit, err := submission.New(cfg.Submission, submission.Deps{Directory: office.Directory, Log: g.log,
		State: g.state, Blobs: g.blobs, Logger: logger.With("component", "submission"), Plan: policy.Plan})
	if err != nil {
		return nil, fmt.Errorf("smtp_submission: %w", err)
	}
	g.imapd, g.submit = officeIMAP, submit
	pcfg := pipeline.Config{Log: g.log, Offsets: offsets, Registry: reg, Logger: logger}
	if owner == nil {
		// The positions are rows of state.db, whose one connection the
		// projections need: written behind, not once per handled event.
		pcfg.OffsetWriteInterval = 100 * time.Millisecond
	}
	pipe, err := pipeline.New(pcfg, handlers...)
	if err != nil {
		return nil, err
	}
	g.pipe = pipe
	if err := g.buildWebUI(ctx, runner, office, policy.Plan); err != nil {
		return nil, err
	}
	heads, err := HeadPublisher(cfg, g.Stores, logger)
	if err != nil {
		return nil, err
	}

	g.crash = newCrashpoint(logger) // nil unless built with -tags crashpoints
	g.add("pipeline", func(ctx context.Context) error { return pipe.Run(ctx) })
	g.add("messages projection", func(ctx context.Context) error { return runner.Run(ctx, projection.Messages{}) })
	g.add("office inbox", func(ctx context.Context) error { return runner.Run(ctx, office.Inbox) })
	g.add("references projection", func(ctx context.Context) error { return runner.Run(ctx, projection.References{}) })
	g.add("office api", office.Run)
	g.add("reply retries", sender.Run)
	if ret.service != nil {
		g.add("retention", ret.service.Run)
	}
	if owner != nil {
		g.add("schedule ownership", owner.Run)
		g.add("queue topics", func(ctx context.Context) error { return g.mirrorQueues(ctx, reg) })
	}
	g.add("office imap", officeIMAP.Run)
	g.add("smtp submission", submit.Run)
	g.add("announcer", func(ctx context.Context) error { return announce(ctx, g.log, reg, logger) })
	g.ready.Projections = []string{projection.Messages{}.Name(), office.Inbox.Name(), projection.References{}.Name()}
	if heads != nil {
		g.add("witnesses", heads.Run)
	}
	if err := g.buildPreservation(ctx, reg, owner); err != nil {
		return nil, err
	}
	if err := g.buildInbound(); err != nil {
		return nil, err
	}
	return g, nil
}

// buildWebUI builds the web UI when configured: its search index runs as
// one more projection, woken with the office inbox's notifier, and it
// verifies the log with the gateway's own public key.
func (g *Gateway) buildWebUI(ctx context.Context, runner *projection.Runner, office *officeapi.Wiring, plan replies.PlanFunc) error {
	if g.cfg.WebUI == nil {
		return nil
	}
	index := webui.Index{Notifier: office.Notifier}
	if err := runner.Setup(ctx, index); err != nil {
		return fmt.Errorf("web_ui: index: %w", err)
	}
	audited, _ := g.log.(integrity.AuditedLog)
	ui, err := webui.New(*g.cfg.WebUI, webui.Deps{Log: g.log, DB: g.state, Blobs: g.blobs, Directory: office.Directory,
		Notifier: office.Notifier, Logger: g.logger.With("component", "webui"), Tenant: g.cfg.Tenant, Plan: plan,
		PublicKey: g.signer.Public(), Audited: audited, Bundle: g.bundle})
	if err != nil {
		return err
	}
	if err := ui.Listen(); err != nil {
		return err
	}
	g.ui = ui
	g.add("web ui index", func(ctx context.Context) error { return runner.Run(ctx, index) })
	g.add("web ui", ui.Run)
	return nil
}

// WebUIAddr is the web UI's bound address, nil when it does not run.
func (g *Gateway) WebUIAddr() net.Addr {
	if g.ui == nil {
		return nil
	}
	return g.ui.Addr()
}

// buildInbound builds the inbound side of every registered channel whose
// section the configuration has, each with the same intake.
func (g *Gateway) buildInbound() error {
	for _, reg := range g.cfg.Channels().All() {
		if reg.Inbound == nil {
			continue
		}
		sec, ok := g.cfg.sections[reg.Inbound.Section.Key]
		if !ok {
			continue
		}
		in, err := reg.Inbound.Build(sec, gateway.IntakeDeps{Intake: g.intake, Evidence: g.evidence, Blobs: g.blobs,
			Log: g.log, State: g.state, Logger: g.logger.With("channel", string(reg.Name)), Tenant: g.cfg.Tenant, AfterRecord: g.crash.hook()})
		if err != nil {
			return fmt.Errorf("%s: %w", reg.Inbound.Section.Key, err)
		}
		if in == nil {
			continue
		}
		g.inbound[reg.Name] = in
		g.add(string(reg.Name), in.Run)
	}
	return nil
}

// buildOutbound builds the outbound side of every registered channel whose
// section the configuration has: answers go back on the sender's channel,
// one Outbound per channel. A channel without one fails its answers
// permanently, to triage.
func (g *Gateway) buildOutbound() (map[gateway.Channel]replies.Outbound, error) {
	outbound := map[gateway.Channel]replies.Outbound{}
	for _, reg := range g.cfg.Channels().All() {
		if reg.Outbound == nil {
			continue
		}
		sec, ok := g.cfg.sections[reg.Outbound.Section.Key]
		if !ok {
			continue
		}
		o, err := reg.Outbound.Build(sec, channels.OutboundDeps{Blobs: g.blobs, Logger: g.logger.With("component", reg.Outbound.Section.Key),
			Evidence: g.evidence, Tenant: g.cfg.Tenant})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reg.Outbound.Section.Key, err)
		}
		if o != nil {
			outbound[reg.Name] = o
		}
	}
	return outbound, nil
}

// Run runs every part until ctx ends or one of them fails, which stops the
// others. It does not close the stores: Close does.
func (g *Gateway) Run(ctx context.Context) error {
	cfg, logger := g.cfg, g.logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tasks taskGroup
	for _, t := range g.tasks {
		tasks.Go(ctx, cancel, t.name, t.run)
	}
	logger.Info("poststelle is running", "data_dir", cfg.DataDir, "eventstore", cfg.EventStore.Backend, "inbound", g.inboundNames(),
		"answers", g.outboundNames, "offices", officesSource(cfg))
	return tasks.Wait()
}

// Running is closed once every pipeline handler has subscribed.
func (g *Gateway) Running() <-chan struct{} { return g.pipe.Running() }

// Intake records messages into the log as a channel adapter does.
func (g *Gateway) Intake() *gateway.Intake { return g.intake }

// OfficeAPIAddr is the office API's bound address.
func (g *Gateway) OfficeAPIAddr() net.Addr { return g.office.Server.Addr() }

// OfficeIMAPAddr is the office IMAP server's bound address.
func (g *Gateway) OfficeIMAPAddr() net.Addr { return g.imapd.Addr() }

// SubmissionAddr is the SMTP submission endpoint's bound address.
func (g *Gateway) SubmissionAddr() net.Addr { return g.submit.Addr() }

// SMTPAddr is the receiving SMTP server's bound address, nil when none is
// configured.
func (g *Gateway) SMTPAddr() net.Addr { return g.InboundAddr(gateway.ChannelSMTP) }

// InboundAddr is the bound address of a channel's inbound listener, nil
// when the channel runs none (not configured, or a collector like IMAP).
func (g *Gateway) InboundAddr(ch gateway.Channel) net.Addr {
	if l, ok := g.inbound[ch].(interface{ Addr() net.Addr }); ok {
		return l.Addr()
	}
	return nil
}

// inboundNames lists the running inbound channels, with their address where
// they listen, for the start-up line.
func (g *Gateway) inboundNames() []string {
	var names []string
	for _, reg := range g.cfg.Channels().All() {
		if _, ok := g.inbound[reg.Name]; !ok {
			continue
		}
		name := string(reg.Name)
		if a := g.InboundAddr(reg.Name); a != nil {
			name += " " + a.String()
		}
		names = append(names, name)
	}
	return names
}

func officesSource(cfg *Config) string {
	if cfg.Offices == "" {
		return "demo (login in " + filepath.Join(cfg.DataDir, "demo-credentials.txt") + ")"
	}
	return cfg.Offices
}

// announce logs each new event, so that an operator sees the gateway work.
func announce(ctx context.Context, l eventstore.Log, reg *gateway.Registry, logger *slog.Logger) error {
	return l.Subscribe(ctx, "announce", func(ctx context.Context, p int32) (int64, error) { return l.End(ctx, p) },
		func(ctx context.Context, e eventstore.Event) error {
			attrs := []any{"type", e.Type, "stream", e.Stream, "offset", e.Position.Offset}
			if p, err := reg.Decode(&e); err == nil {
				switch m := p.(type) {
				case *gateway.MessageReceived:
					attrs = append(attrs, "channel", m.Channel, "from", m.From.Address, "subject", m.Subject, "bytes", m.Raw.Size, "parts", len(m.Parts))
				case *gateway.MessageRouted:
					attrs = append(attrs, "offices", m.Offices, "rule", m.Rule)
				case *gateway.SignaturesVerified:
					attrs = append(attrs, "signatures", len(m.Signatures), "written_form", m.WrittenFormSatisfied, "reason", m.WrittenFormReason)
				case *gateway.TimestampApplied:
					attrs = append(attrs, "tsa", m.TSA, "gen_time", m.GenTime)
				case *gateway.ProcessingFailed:
					attrs = append(attrs, "handler", m.Handler, "error", m.Error)
				}
			}
			logger.Info("event recorded", attrs...)
			return nil
		})
}

// taskGroup runs long-lived tasks; the first to fail stops the others.
type taskGroup struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (t *taskGroup) Go(ctx context.Context, cancel context.CancelFunc, name string, f func(context.Context) error) {
	t.wg.Go(func() {
		err := f(ctx)
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			t.mu.Lock()
			t.errs = append(t.errs, fmt.Errorf("%s: %w", name, err))
			t.mu.Unlock()
			cancel()
		}
	})
}

func (t *taskGroup) Wait() error {
	t.wg.Wait()
	return errors.Join(t.errs...)
}
