// Command poststelle is the digital mailroom gateway: one binary that
// receives, records, verifies, routes and answers, and the tools to audit its
// log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/gateway/routing"
	"github.com/poststelle/poststelle/internal/assembly"
	"github.com/poststelle/poststelle/office/officeapi"
)

// version names this build in the evidence it produces.
const version = "0.1.0"

// Config is the gateway's YAML configuration (internal/assembly builds the
// gateway from it).
type Config = assembly.Config

// loadConfig reads path ("" means none: all defaults) and validates it.
func loadConfig(path string) (*Config, error) { return assembly.LoadConfig(path) }

// serve runs everything configured until ctx ends. notice gets what a person
// at the terminal must see once and the log must not keep (a new demo login).
func serve(ctx context.Context, cfg *Config, logger *slog.Logger, notice io.Writer) error {
	g, err := assembly.Build(ctx, cfg, assembly.Deps{Logger: logger, Notice: notice, Version: version})
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Run(ctx)
}

const usage = `poststelle — the digital mailroom for public authorities

Usage:
  poststelle serve [--config FILE]           run the gateway (no config: embedded demo in ./data)
  poststelle log verify [flags]              check the whole event log; exit 0 intact, 1 broken
  poststelle log replay [flags]              print events as JSON lines (a progress bar on a terminal)
  poststelle log prove --stream ID [flags]   prove one message's events are in the log
  poststelle log check-proof --key PUB FILE  verify such a proof offline
  poststelle log head [--out FILE]           the signed tree head, to keep for log verify --head
  poststelle evidence ID --out FILE          the evidence bundle of one message (ASiC-E, sealed)
  poststelle evidence verify FILE [--key PUB] [--trust PEM]  check a bundle offline
  poststelle evidence renew --dir DIR        renew RFC 4998 evidence records (timestamps, hash trees)
  poststelle evidence records --out DIR      export serve's evidence records (NAME.ers beside NAME)
  poststelle keys init [--config FILE]       create the gateway's signing key
  poststelle bench [flags]                   measure append and verify rates
  poststelle route test --config FILE MSG.eml show which offices a message goes to, and why
  poststelle hash-password < PASSWORD-LINE   an argon2id password_hash for the offices configuration
  poststelle ready [--config FILE]           exit 0 if the node's ops listener answers /readyz with 200
  poststelle help                            show this text

Start with:  poststelle serve
then send a mail:  swaks --server 127.0.0.1:2525 --to poststelle@example.org
and look:         poststelle log replay

Every command takes --config FILE (YAML; see README.md). Run a command with
-h for its flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by the subcommands.
const (
	exitOK     = 0
	exitFailed = 1 // the check failed (a broken log, an invalid signature)
	exitUsage  = 2 // unusable input or usage
)

// run executes a command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "log":
		if len(rest) == 0 {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		return runLog(ctx, rest[0], rest[1:], stdout, stderr)
	case "keys":
		if len(rest) == 0 || rest[0] != "init" {
			fmt.Fprintln(stderr, "usage: poststelle keys init [--config FILE]")
			return exitUsage
		}
		return runKeysInit(rest[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "route":
		return runRoute(rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr)
	case "evidence":
		return runEvidence(ctx, rest, stdout, stderr)
	case "hash-password":
		return runHashPassword(os.Stdin, stdout, stderr)
	case "ready":
		return runReady(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "poststelle: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// newFlags returns a flag set whose errors go to stderr and which knows --config.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("poststelle "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "YAML configuration `file` (default: none, the embedded demo set-up)")
	return fs, cfg
}

// parse parses flags; it returns false with the exit code when the caller
// should stop.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs, cfgPath := newFlags("serve", stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	logger := newLogger(stderr, cfg.LogLevel)
	// SIGHUP (systemctl reload) re-reads the routing rules file, where one
	// is configured (gateway/routing watches for it). Without this handler
	// a SIGHUP to a gateway with no rules file would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }()
	go func() {
		for range hup {
			logger.Info("SIGHUP: the routing rules file is re-read when one is configured; nothing else is reloaded", "rules", cfg.Routing.Rules)
		}
	}()
	if err := serve(ctx, cfg, logger, stderr); err != nil {
		logger.Error("gateway stopped", "err", err)
		return exitFailed
	}
	logger.Info("gateway stopped")
	return exitOK
}

func runKeysInit(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("keys init", stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitUsage
	}
	s, err := keysGenerate(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	fp, err := keys.Fingerprint(s.Public())
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "signing key: %s\npublic key (give this to auditors): %s\nfingerprint (record it apart from the data, pin it as keys.fingerprint): %s\n",
		cfg.Keys.SigningKey, cfg.Keys.PublicKey, fp)
	return exitOK
}

// runRoute is `poststelle route test --config FILE MESSAGE.eml`. FILE is the
// gateway configuration (its routing.rules is used) or a rule file itself.
func runRoute(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: poststelle route test --config FILE MESSAGE.eml")
		return exitUsage
	}
	fs, cfgPath := newFlags("route test", stderr)
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if *cfgPath == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: poststelle route test --config FILE MESSAGE.eml")
		return exitUsage
	}
	rules := *cfgPath
	if cfg, err := loadConfig(*cfgPath); err == nil && cfg.Routing.Rules != "" {
		rules = cfg.Routing.Rules
	}
	return routing.TestCommand(stdout, rules, fs.Arg(0), officeapi.ParseEML)
}
