package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/adapters/smtpout"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/witness"
	"github.com/poststelle/poststelle/gateway"
)

// runLogHead is `poststelle log head`: the log's current signed tree head,
// for an auditor to keep and check the log against later.
func runLogHead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("log head", stderr)
	lf := addLogFlags(fs, cfgPath)
	out := fs.String("out", "", "write the head to this `file` (atomically) instead of stdout")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	l, cfg, err := lf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: open log:", err)
		return exitUsage
	}
	defer l.Close()
	signer, err := keys.LoadSigner(cfg.Keys.SigningKey)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle: the head is signed with the gateway key:", err)
		return exitUsage
	}
	heads, err := integrity.CurrentHeads(ctx, l, signer.Public())
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	text, err := integrity.SignHeads(signer, heads)
	if err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	if *out == "" {
		stdout.Write(text)
		return exitOK
	}
	if err := witness.WriteFile(*out, text); err != nil {
		fmt.Fprintln(stderr, "poststelle:", err)
		return exitFailed
	}
	var size int64
	for _, h := range heads {
		size += h.Size
	}
	fmt.Fprintf(stderr, "head of %d events in %d partition(s) written to %s\n", size, len(heads), *out)
	return exitOK
}

// headFiles is the repeatable --head flag.
type headFiles []string

func (h *headFiles) String() string     { return strings.Join(*h, ",") }
func (h *headFiles) Set(v string) error { *h = append(*h, v); return nil }

// savedHead is one --head file with its heads and timestamp.
type savedHead struct {
	file  string
	heads []integrity.Head
}

// headVerification checks the log against --head files while log verify
// reads it. A nil *headVerification checks nothing.
type headVerification struct {
	saved []savedHead
	check *integrity.HeadCheck
}

// loadHeads reads and checks the --head files: their signatures with pub,
// their log, and the timestamp token beside each when there is one. It
// prints what is wrong and returns the exit code when verification must stop.
func loadHeads(files []string, pub crypto.PublicKey, logID string, stdout, stderr io.Writer) (*headVerification, int) {
	if len(files) == 0 {
		return nil, exitOK
	}
	hv := &headVerification{}
	var all []integrity.Head
	for _, f := range files {
		text, err := readCapped(f, integrity.MaxHeadFile)
		if err != nil {
			fmt.Fprintln(stderr, "poststelle: --head:", err)
			return nil, exitUsage
		}
		heads, err := integrity.ParseHeads(text, pub)
		if err != nil {
			fmt.Fprintf(stdout, "BROKEN: head %s: %v\n", f, err)
			return nil, exitFailed
		}
		if msg, ok := checkStamp(f, text); !ok {
			fmt.Fprintf(stdout, "BROKEN: head %s: %s\n", f, msg)
			return nil, exitFailed
		} else if msg != "" {
			fmt.Fprintf(stdout, "head %s: %s\n", f, msg)
		}
		hv.saved = append(hv.saved, savedHead{file: f, heads: heads})
		all = append(all, heads...)
	}
	check, err := integrity.NewHeadCheck(logID, all)
	if err != nil {
		fmt.Fprintf(stdout, "BROKEN: %v\n", err)
		return nil, exitFailed
	}
	hv.check = check
	return hv, exitOK
}

// stampPath is where the timestamp of a head file lies: x.note → x.tsr,
// anything else → FILE.tsr.
func stampPath(file string) string {
	if s, ok := strings.CutSuffix(file, ".note"); ok {
		return s + ".tsr"
	}
	return file + ".tsr"
}

// checkStamp verifies the timestamp token beside a head file, if there is
// one: it must be intact and cover exactly the file's bytes. The TSA's
// certificate chain is left to `poststelle verify`, which knows the trust
// anchors.
func checkStamp(file string, note []byte) (string, bool) {
	path := stampPath(file)
	raw, err := readCapped(path, tsp.MaxTokenSize)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true
	}
	if err != nil {
		return err.Error(), false
	}
	tok, err := witness.ParseStamp(raw)
	if err != nil {
		return fmt.Sprintf("timestamp %s: %v", path, err), false
	}
	res := tok.Verify(tsp.VerifyOptions{Data: note})
	if !res.Valid {
		var failed []string
		for _, c := range res.Checks {
			if c.Outcome != cms.Passed {
				failed = append(failed, fmt.Sprintf("%s: %s", c.ID, c.Detail))
			}
		}
		return fmt.Sprintf("timestamp %s does not verify for this head: %s", path, strings.Join(failed, "; ")), false
	}
	tsa := "an unnamed TSA"
	if res.TSACertificate != nil {
		tsa = res.TSACertificate.Subject.String()
	}
	return fmt.Sprintf("timestamped at %s by %s (%s)", tok.Info.GenTime.UTC().Format("2006-01-02T15:04:05Z"), tsa, path), true
}

func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// wrap adds the head check to the per-event callback of VerifyLog.
func (hv *headVerification) wrap(each func(*eventstore.Event) error) func(*eventstore.Event) error {
	if hv == nil {
		return each
	}
	return func(e *eventstore.Event) error {
		if each != nil {
			if err := each(e); err != nil {
				return err
			}
		}
		return hv.check.Add(e)
	}
}

// report prints the verdict on every head; false when one is inconsistent.
func (hv *headVerification) report(stdout io.Writer, partitions int32) bool {
	if hv == nil {
		return true
	}
	problems := hv.check.Finish(partitions)
	for _, s := range hv.saved {
		for _, h := range s.heads {
			if i := slices.IndexFunc(problems, func(p *integrity.HeadProblem) bool { return p.Head == h }); i >= 0 {
				fmt.Fprintf(stdout, "BROKEN: head %s (partition %d, %d events): %s\n", s.file, h.Partition, h.Size, problems[i].Reason)
				continue
			}
			fmt.Fprintf(stdout, "head %s: partition %d extends it consistently (%d → %d events)\n", s.file, h.Partition, h.Size, hv.check.Size(h.Partition))
		}
	}
	return len(problems) == 0
}

// headPublisher builds the publisher of serve's witnesses: nil when none are
// configured.
func headPublisher(cfg *Config, g *gatewayParts, logger *slog.Logger) (*witness.Publisher, error) {
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
		if cfg.SMTPOut == nil {
			return nil, errors.New("witnesses.email: needs smtp_out, the relay it sends through")
		}
		o, err := smtpout.New(*cfg.SMTPOut, smtpout.Deps{Blobs: g.blobs, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("witnesses.email: smtp_out: %w", err)
		}
		from := wc.Email.From
		if from == "" {
			from = cfg.SMTPOut.From
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
