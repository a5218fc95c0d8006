package officeapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/gateway/routing"
)

// WiringConfig is what `poststelle serve` reads from its configuration.
type WiringConfig struct {
	// OfficesFile is the offices configuration (gateway/offices); empty
	// runs the demo set-up: office "demo", login in
	// <DataDir>/demo-credentials.txt.
	OfficesFile string
	// RulesFile is the routing rule set; empty means the catch-all to the
	// demo office in the demo set-up and "everything to triage" otherwise.
	RulesFile string
	// RulesCheckInterval is how often the rule file's mtime is checked
	// (default 2 s); SIGHUP reloads at once.
	RulesCheckInterval time.Duration
	// RoutingAfterVerification routes on SignaturesVerified instead of
	// MessageReceived, so written-form rules see the verification result.
	// Turn it on only when the verification handler runs.
	RoutingAfterVerification bool
	API                      Config
	DataDir                  string
}

// WiringDeps are the stores serve has opened.
type WiringDeps struct {
	Log    eventstore.Log
	DB     *sql.DB
	Blobs  blob.Backend
	Logger *slog.Logger
	Tenant string
	// Plan is the reply-channel policy (the channel registry's
	// replies.Policy); required.
	Plan replies.PlanFunc
	// Notice is where a newly made demo login is printed, plainly and only
	// that once (serve's stderr); nil prints nothing. The password never
	// goes into the structured log.
	Notice io.Writer
	// Ready decides GET /readyz (see Deps.Ready).
	Ready func(context.Context) error
	// Bundle makes evidence bundles (see Deps.Bundle).
	Bundle BundleFunc
	// NewRetention, when set, makes the retention service that serves the
	// admin retention endpoints (see Deps.Retention) from the offices
	// configuration Wire loads: retention.NewPolicy needs its
	// RetentionRules. Nil answers those endpoints 503.
	NewRetention func(offices.Config) (Retention, error)
	// Owns limits webhook retries to the streams this process owns (see
	// outbox.Deps.Owns); nil owns all.
	Owns outbox.OwnsFunc
}

// Wiring is the office side of the gateway, ready to be added to serve.
type Wiring struct {
	// Handlers go into pipeline.New: routing, queue delivery, webhooks.
	Handlers []pipeline.Handler
	// Inbox is the read model to run with the projection runner.
	Inbox     offices.Inbox
	Directory *offices.Directory
	Notifier  *offices.Notifier
	Rules     *routing.Engine
	Server    *Server
	// Webhooks retries webhook deliveries (Run does); nil when no office
	// has a webhook.
	Webhooks *Webhooks
	// Retention is what WiringDeps.NewRetention made, nil without it.
	Retention Retention
	// Overdue records eEB tasks that passed their due date (Run runs it).
	Overdue *offices.OverdueWatch
	// Demo is the demo login when the demo set-up runs.
	Demo *offices.Credentials
	// DemoCreated reports that the demo login was made at this start.
	DemoCreated bool
}

// Wire loads offices and rules and builds the API, the handlers and the
// read model.
func Wire(cfg WiringConfig, deps WiringDeps) (*Wiring, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	w := &Wiring{Notifier: offices.NewNotifier()}
	if cfg.API.EEBDueAfter < 0 {
		return nil, fmt.Errorf("office_api: eeb_due_after: %s is negative", cfg.API.EEBDueAfter)
	}
	w.Inbox = offices.Inbox{Notifier: w.Notifier, EEBDueAfter: cfg.API.EEBDueAfter}
	var ocfg offices.Config
	var err error
	if cfg.OfficesFile == "" {
		var creds offices.Credentials
		ocfg, creds, w.DemoCreated, err = offices.EnsureDemo(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		w.Demo = &creds
	} else if ocfg, err = offices.LoadConfig(cfg.OfficesFile); err != nil {
		return nil, err
	}
	if w.Directory, err = offices.NewDirectory(ocfg); err != nil {
		return nil, err
	}
	known := func(id string) bool { _, ok := w.Directory.Office(id); return ok }
	switch {
	case cfg.RulesFile != "":
		w.Rules, err = routing.Load(cfg.RulesFile, routing.Options{KnownOffice: known}, deps.Logger)
	case w.Demo != nil:
		var set *routing.Set
		set, err = routing.CatchAll(offices.DemoOffice)
		w.Rules = routing.Static(set)
	default:
		deps.Logger.Warn("no routing rules configured: every message goes to triage")
		var set *routing.Set
		set, err = routing.Parse(nil, routing.Options{})
		w.Rules = routing.Static(set)
	}
	if err != nil {
		return nil, err
	}
	hc := routing.HandlerConfig{Engine: w.Rules, Log: deps.Log}
	route := routing.Handler(hc)
	if cfg.RoutingAfterVerification {
		route = routing.VerifiedHandler(hc)
	}
	w.Handlers = []pipeline.Handler{route, offices.QueueDelivery()}
	w.Overdue = &offices.OverdueWatch{Log: deps.Log, State: deps.DB, Owns: deps.Owns, Logger: deps.Logger.With("component", "eeb-overdue")}
	// The webhook handler runs only where webhooks are configured: every
	// handler costs a durable position update per event.
	if slices.ContainsFunc(ocfg.Offices, func(o offices.Office) bool { return len(o.Webhooks) > 0 }) {
		w.Webhooks, err = NewWebhooks(cfg.API.Webhook, WebhookDeps{Log: deps.Log, Directory: w.Directory, State: deps.DB,
			Logger: deps.Logger.With("component", "webhooks"), Owns: deps.Owns})
		if err != nil {
			return nil, err
		}
		w.Handlers = append(w.Handlers, w.Webhooks.Handler())
	}
	if deps.NewRetention != nil {
		if w.Retention, err = deps.NewRetention(ocfg); err != nil {
			return nil, err
		}
	}
	w.Server, err = New(cfg.API, Deps{Log: deps.Log, DB: deps.DB, Blobs: deps.Blobs, Directory: w.Directory,
		Notifier: w.Notifier, Logger: deps.Logger, Tenant: deps.Tenant, Plan: deps.Plan, Ready: deps.Ready, Bundle: deps.Bundle,
		Retention: w.Retention})
	if err != nil {
		return nil, err
	}
	if err := w.Server.Listen(); err != nil {
		return nil, err
	}
	if w.Demo != nil {
		w.announceDemo(cfg, deps)
	}
	return w, nil
}

// announceDemo says where the demo login is. The password is shown once,
// when it was just made, on Notice; the log only names the file, so that
// logs collected by journald or a log shipper never hold it.
func (w *Wiring) announceDemo(cfg WiringConfig, deps WiringDeps) {
	file := filepath.Join(cfg.DataDir, offices.DemoCredentialsFile)
	api := "http://" + w.Server.Addr().String() + "/offices/demo/messages"
	if w.DemoCreated && deps.Notice != nil {
		fmt.Fprintf(deps.Notice, "\nDemo office login, made now and shown only this once:\n"+
			"  user:     %s\n  password: %s\n  (kept in %s; the office API is %s)\n\n", w.Demo.User, w.Demo.Password, file, api)
	}
	deps.Logger.Info("demo office: the login for the office API and IMAP is in the credentials file",
		"file", file, "user", w.Demo.User, "api", api)
}

// Run serves the API, watches the rule file, records overdue eEB tasks and
// retries webhook deliveries
// until ctx ends; the first task to fail stops the others.
func (w *Wiring) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := []func(context.Context) error{func(ctx context.Context) error { return w.Rules.Watch(ctx, 0) }, w.Server.Run, w.Overdue.Run}
	if w.Webhooks != nil {
		tasks = append(tasks, w.Webhooks.Run)
	}
	errc := make(chan error, len(tasks))
	for _, t := range tasks {
		go func() { errc <- t(ctx) }()
	}
	var first error
	for range tasks {
		err := <-errc
		cancel()
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("office side: %w", first)
	}
	return ctx.Err()
}
